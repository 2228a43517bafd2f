"""Requests held open inside an app: a framework's session object, from a real request.

Django's and Pyramid's session tests work on a session *object*: they make
one (``SessionStore()``, a session factory called on a request), use it, make
another one for the same session key, and so on. Behind sessionshare a
session object exists only inside a request the middleware serves, so a
:class:`Browser` sends such a request through the whole WSGI stack -- the
sessionshare middleware, the framework and its session middleware -- to a
view that hands its ``request.session`` to the test (:func:`hand_over`) and
waits. The test then uses the very object a view would use, while its
request is open; :meth:`HeldRequest.finish` lets the view return, and the
middleware persists the session and sets its cookie as at the end of any
request, which the browser keeps for its next request.

Each request runs in a thread of its own (as a threaded server would run
it); the test's thread and the request's never touch the session at the same
time: the view only waits while the test works.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import pytest
import webob

from sessionshare import MemoryStore, RedisStore
from sessionshare.store import SessionStore

#: Where the view finds the request it is to hand over (the environ passes through the
#: middleware untouched, as every WSGI middleware passes what it does not know).
HELD_KEY = "sessionshare.tests.held"
#: Seconds any side waits for the other before the test fails, rather than hang.
PATIENCE = 30.0


class HeldRequest:
    """One request, held open in its view until :meth:`finish`."""

    def __init__(self, app: Callable[..., Any], path: str, cookie: str, host: str) -> None:
        self.handed: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.release = threading.Event()
        self.response: webob.Response | None = None
        self.error: BaseException | None = None
        self.path = path
        headers = {"Accept": "text/html", "Host": host}
        if cookie:
            headers["Cookie"] = cookie
        self._request = webob.Request.blank(path, headers=headers, environ={HELD_KEY: self})
        self._app = app
        self._thread = threading.Thread(target=self._serve, name=f"held {path}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.response = self._request.get_response(self._app)
        except BaseException as exc:  # reported to the test's thread below
            self.error = exc
        finally:
            self.handed.put(("answered", None))

    def session(self) -> Any:
        """The session object the view handed over (the request is then open)."""
        try:
            kind, value = self.handed.get(timeout=PATIENCE)
        except queue.Empty:
            raise AssertionError(
                f"GET {self.path}: the view did not answer in {PATIENCE} s") from None
        if kind == "session":
            return value
        self._thread.join(PATIENCE)
        if self.error is not None:
            raise AssertionError(f"GET {self.path} raised before reaching the view") \
                from self.error
        assert self.response is not None
        raise AssertionError(
            f"GET {self.path} was answered {self.response.status} without reaching the "
            f"view: {self.response.text[:300]!r}"
        )

    @property
    def open(self) -> bool:
        return not self.release.is_set()

    def finish(self) -> webob.Response:
        """Let the view return; the response, once the middleware has sent it."""
        self.release.set()
        self._thread.join(PATIENCE)
        if self._thread.is_alive():
            raise AssertionError(f"GET {self.path}: no response {PATIENCE} s after the view")
        if self.error is not None:
            raise AssertionError(f"GET {self.path} raised as it ended") from self.error
        assert self.response is not None
        return self.response


def hand_over(environ: dict[str, Any], session: Any) -> None:
    """Called by the view: give ``session`` to the test and wait until it is done."""
    held: HeldRequest = environ[HELD_KEY]
    held.handed.put(("session", session))
    if not held.release.wait(PATIENCE):
        raise RuntimeError("the test never finished with the session it was handed")


class Browser:
    """One browser: its cookies for one app, and the requests it has open there."""

    def __init__(self, app: Callable[..., Any], host: str) -> None:
        self.app = app
        self.host = host
        self.cookies: dict[str, str] = {}
        self.requests: list[HeldRequest] = []

    def open(self, path: str) -> HeldRequest:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        held = HeldRequest(self.app, path, cookie, self.host)
        self.requests.append(held)
        return held

    def finish(self, held: HeldRequest) -> webob.Response:
        """End ``held`` and keep the cookies its response sets."""
        response = held.finish()
        for header in response.headers.getall("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if not morsel.value or morsel["max-age"] in ("0", "-1"):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def finish_all(self) -> list[webob.Response]:
        """End every request still open; each must end as a user's would, not in a 5xx
        (the middleware persists the session there, after the test's assertions)."""
        responses = [self.finish(held) for held in self.requests if held.open]
        failed = [f"{response.status}: {response.text[:300]!r}" for response in responses
                  if response.status_code >= 500]
        assert not failed, f"a request the test held ended in {failed}"
        return responses


def store_of(kind: str, request: pytest.FixtureRequest) -> SessionStore:
    """The shared store a row of a framework's tests runs on: ``memory``, or ``redis``
    (the suite's real server). The caller closes it."""
    if kind == "redis":
        return RedisStore.from_url(request.getfixturevalue("redis_url"))
    return MemoryStore()
