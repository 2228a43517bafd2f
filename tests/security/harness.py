"""What every security test asserts, and a raw WSGI call for the fuzzers.

The rules (DESIGN section 5 and the developer guide): hostile input gets a
4xx -- never a 5xx, an exception escaping to the server, a ``Location`` off
the allow-list, or a session handed to someone. The helpers here check each
rule the same way everywhere:

- :func:`call` runs a real middleware on a hand-built environ, the way a WSGI
  server would (bytes-as-latin-1 strings, PEP 3333), and checks the WSGI
  contract on the way back;
- :func:`browser_origin` resolves a ``Location`` the way a browser does
  (WHATWG URL: blanks stripped, tab and newline dropped, ``\\`` read as
  ``/`` for http(s)), so "same origin" is decided by a model of the
  browser, not by the code under test; the Chromium test checks the model;
- :func:`check_idp_location` / :func:`check_remote_location` are the
  allow-list rule for each side.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from asgibridge import WsgiToAsgi

from sessionshare import AllowList, asgi

__all__ = [
    "Reply",
    "browser_origin",
    "call",
    "check_idp_location",
    "check_remote_location",
    "environ_for",
    "is_same_origin_location",
    "login_prefix",
]

_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,512}")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    @property
    def location(self) -> str | None:
        return self.header("Location")


def environ_for(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    *,
    host: str = "shop.test",
    cookie: str | None = None,
    accept: str | None = "text/html",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PEP 3333 environ as a server builds it (``path`` already percent-decoded)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    environ.update(extra or {})
    return environ


def call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> Reply:
    """Run ``app`` once like a WSGI server; an exception is a test failure, not a reply.

    An ASGI middleware runs through tests/asgibridge.py, like a Deployment's.
    """
    if isinstance(app, asgi.SessionMiddleware):
        app = WsgiToAsgi(app)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        assert not started or exc_info is not None, "start_response called twice"
        started.append((status, headers))
        return lambda data: None

    body_iter = app(environ, start_response)
    try:
        body = b"".join(body_iter)
    finally:
        close = getattr(body_iter, "close", None)
        if close is not None:
            close()
    assert started, "the middleware never started a response"
    status, headers = started[-1]
    assert re.fullmatch(r"[1-5][0-9][0-9] .+", status), status
    for name, value in headers:
        # A header value with CR or LF would let input split the response.
        assert isinstance(name, str) and isinstance(value, str)
        assert "\r" not in value and "\n" not in value, (name, value)
        value.encode("latin-1")
    return Reply(int(status[:3]), headers, body)


def browser_origin(location: str, base_origin: str) -> str | None:
    """The origin a browser lands on for ``location`` served by ``base_origin``.

    A model of the WHATWG URL parser for http(s) bases, enough to decide
    "same origin or not": None stands for "another origin, or unusable".
    """
    text = location.strip(_C0_OR_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    scheme_match = _SCHEME.match(text)
    if scheme_match is not None:
        return None  # absolute URL: judged by the allow-list, never "same origin" here
    text = text.replace("\\", "/")  # special schemes read a backslash as a slash
    if text.startswith("//"):
        return None  # scheme-relative: the next part is a host
    return base_origin


def is_same_origin_location(location: str | None, base_origin: str) -> bool:
    return location is not None and browser_origin(location, base_origin) == base_origin


def check_idp_location(reply: Reply, allow: AllowList, idp_origin: str) -> None:
    """The IdP's rule: no Location, the IdP's own page, or ``<allowed callback>?token=T``."""
    location = reply.location
    if location is None:
        return
    if browser_origin(location, idp_origin) == idp_origin:
        assert "token=" not in location, location
        return
    callback, sep, token = location.partition("?token=")
    assert sep and _TOKEN.fullmatch(token), f"IdP redirected off the list: {location!r}"
    allowed = allow.check_callback(callback)
    assert allowed.url == callback, f"IdP redirected to a non-canonical form: {location!r}"


def check_remote_location(reply: Reply, remote_origin: str, login_prefix: str) -> None:
    """A remote's rule: no Location, the IdP login with its own callback, or same origin."""
    location = reply.location
    if location is None:
        return
    if location.startswith(login_prefix):
        state = location[len(login_prefix):]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", state), location
        return
    assert is_same_origin_location(location, remote_origin), (
        f"remote redirected off its origin: {location!r}"
    )


def login_prefix(idp_login: str, remote_origin: str, callback_path: str) -> str:
    """The start of every login URL a remote may send a browser to."""
    return f"{idp_login}?callback={quote(remote_origin + callback_path, safe='')}&state="
