"""``python -m benchmarks.trace``: how many of the library's files one request walks through.

A reader follows a request through the code: each file it passes is one
more module to open, and each switch between files one more jump. This
counts both, with ``sys.settrace``, for two requests of a WSGI deployment
on a memory store (no I/O to trace):

- the IdP's **sign-in POST** that completes a pending hand-off (the app signs
  the user in; the answer becomes the 303 back to the remote);
- a remote's **authenticated GET** of a protected page (one store read).

Only frames in ``sessionshare/`` count; a switch is a call or return that
moves from one library file to another. The figures are structure, not
speed: they do not drift with the machine.

    python -m benchmarks.trace
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import webtest

import sessionshare
from sessionshare import IdpAuthMiddleware, MemoryStore, RemoteSessionMiddleware, SyncKey

ROOT = str(Path(sessionshare.__file__).parent) + "/"
IDP, SHOP = "http://id.test", "http://shop.test"


def _idp_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        environ["sessionshare.session"]["user"] = "alice"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _shop_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ.get("REMOTE_USER")).encode()]


class Walk:
    """The library files one traced call passes through, and the switches between them."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.switches = 0
        self._last: str | None = None

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event in ("call", "return"):
            name = frame.f_code.co_filename
            if name.startswith(ROOT):
                if name not in self.files:
                    self.files.append(name)
                if self._last is not None and name != self._last:
                    self.switches += 1
                self._last = name
        return self._trace if event == "call" else None

    def run(self, call: Callable[[], Any]) -> Any:
        sys.settrace(self._trace)
        try:
            return call()
        finally:
            sys.settrace(None)

    def report(self, what: str) -> str:
        names = ", ".join(f[len(ROOT):] for f in self.files)
        return f"{what}: {len(self.files)} files, {self.switches} switches\n  {names}"


def measure() -> tuple[Walk, Walk]:
    key, store = SyncKey.generate(), MemoryStore(clock=time.time)
    common: dict[str, Any] = {"store": store, "key": key, "cookie_secure": False,
                              "quiet_startup": True}
    idp = webtest.TestApp(IdpAuthMiddleware(_idp_app, app_url=IDP,
                                            known_remote_hosts=[SHOP], **common),
                          extra_environ={"HTTP_HOST": "id.test"})
    shop = webtest.TestApp(RemoteSessionMiddleware(_shop_app, app_url=SHOP,
                                                   idp_url=IDP + "/login", **common),
                           extra_environ={"HTTP_HOST": "shop.test"})
    html = {"Accept": "text/html"}
    away = shop.get("/orders", headers=html, status=302)
    login = urlsplit(away.location)
    target = f"{login.path}?{login.query}"
    idp.get(target, headers=html)  # the form: the hand-off is pending
    sign_in = Walk()
    back = sign_in.run(lambda: idp.post(target, {"u": "alice"}, headers=html, status=303))
    callback = urlsplit(back.location)
    token = parse_qs(callback.query)["token"][0]
    shop.get(f"{callback.path}?token={quote(token)}", headers=html, status=303)
    read = Walk()
    page = read.run(lambda: shop.get("/orders", headers=html, status=200))
    assert page.text == "alice", page.text
    return sign_in, read


def main() -> int:
    sign_in, read = measure()
    print(sign_in.report("IdP sign-in POST (completes a pending hand-off)"))
    print(read.report("remote authenticated GET"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
