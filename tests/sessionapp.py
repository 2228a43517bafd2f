"""A bare WSGI app behind a :class:`SessionManager`, for the session and manager tests.

Each request runs one handler ``(session, environ) -> result`` and answers
its result as JSON; ``session_browser`` routes paths to handlers a test
registers, so a test reads like a short browsing history:

    manager, app = session_browser(store, clock)
    app.handlers.update({"/new": set_values({"a": 1}), "/read": read_all})
    app.get("/new")
    assert app.get("/read").json == {"a": 1}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import webtest
from conftest import FakeClock

from sessionshare import Session, SessionStore, SyncKey
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.lifecycle import Lifecycle
from sessionshare.wsgi.manager import SessionManager

COOKIE = "sessionshare"
ORIGIN = "http://app.test"
KEY = SyncKey.parse(SyncKey.generate())


class Manager(SessionManager):
    """A SessionManager whose ``session_key`` also takes the app's cookie value, as
    tests hold it (the value is the id and this app's tag)."""

    def session_key(self, sid_or_cookie: str) -> str:
        sid = self.lifecycle.session_id_in(f"{COOKIE}={sid_or_cookie}") or sid_or_cookie
        assert self.lifecycle.ids.is_known(sid), "neither this app's cookie value nor an id"
        return super().session_key(sid)

Handler = Callable[[Session, dict[str, Any]], object]


def unknown_cookie(manager: SessionManager) -> str:
    """A genuine cookie value of this app for a session id the store never held."""
    return manager.lifecycle.cookie_value(manager.lifecycle.ids.new())


def make_manager(store: SessionStore, clock: FakeClock, **options: Any) -> Manager:
    """A manager over ``store`` with this module's cookie, key and origin (``options``
    go to its :class:`Lifecycle`)."""
    cookie = options.pop("cookie", CookieSpec(COOKIE, secure=False))
    lifecycle = Lifecycle(cookie=cookie, key=KEY, audience=ORIGIN, clock=clock, **options)
    return Manager(store, lifecycle=lifecycle)


def session_app(manager: SessionManager, handler: Handler) -> Callable[..., Iterable[bytes]]:
    """A WSGI app behind ``manager`` whose body is ``handler``'s JSON result."""

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = handler(environ["sessionshare.session"], environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(result).encode()]

    def outer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = manager.open(environ)
        return manager.run(inner, environ, start_response, session)

    return outer


def set_values(values: dict[str, Any]) -> Handler:
    def handler(session: Session, environ: dict[str, Any]) -> object:
        session.update(values)
        return None

    return handler


def read_all(session: Session, environ: dict[str, Any]) -> object:
    return dict(session)


def session_browser(
    store: SessionStore, clock: FakeClock, **options: Any
) -> tuple[SessionManager, webtest.TestApp]:
    """A manager and a WebTest app whose ``handlers`` map a path to its handler."""
    manager = make_manager(store, clock, **options)
    handlers: dict[str, Handler] = {}

    def dispatch(session: Session, environ: dict[str, Any]) -> object:
        return handlers[environ["PATH_INFO"]](session, environ)

    app = webtest.TestApp(session_app(manager, dispatch))
    app.handlers = handlers  # type: ignore[attr-defined]
    return manager, app
