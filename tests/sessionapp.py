"""A bare WSGI app behind the WSGI shell, for the session and shell tests.

Each request runs one handler ``(session, environ) -> result`` and answers
its result as JSON; ``session_browser`` routes paths to handlers a test
registers, so a test reads like a short browsing history:

    manager, app = session_browser(store, clock)
    app.handlers.update({"/new": set_values({"a": 1}), "/read": read_all})
    app.get("/new")
    assert app.get("/read").json == {"a": 1}

The shell is the real one (:class:`~sessionshare.wsgi.base.SessionMiddleware`)
over a remote side that protects no path: every request reaches the app, and
the session is read lazily and persisted on the way out, as for any app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import webtest
from conftest import FakeClock

from sessionshare import Session, SessionStore, SyncKey
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.lifecycle import Headers
from sessionshare.core.remote import RemoteSide
from sessionshare.core.steps import run
from sessionshare.wsgi.base import SessionMiddleware

COOKIE = "sessionshare"
ORIGIN = "http://app.test"
KEY = SyncKey.parse(SyncKey.generate())

Handler = Callable[[Session, dict[str, Any]], object]


class Manager:
    """One app's session rules and store, and the WSGI shell over them."""

    def __init__(self, store: SessionStore, clock: FakeClock, cookie: CookieSpec,
                 **options: Any) -> None:
        self.side = RemoteSide(
            key=KEY, app_url=ORIGIN.replace("http:", "https:") if cookie.secure else ORIGIN,
            idp_url="https://id.test/login", protect=False, cookie_name=cookie.name,
            cookie_secure=cookie.secure, clock=clock, quiet_startup=True, **options,
        )
        self.store = store
        self.lifecycle = self.side.lifecycle
        self.cookie = self.lifecycle.cookie

    def wrap(self, app: Any) -> SessionMiddleware:
        """``app`` behind the WSGI shell over this store."""
        return SessionMiddleware(app, store=self.store, side=self.side)

    def session_key(self, sid_or_cookie: str) -> str:
        """The store key of a session id, or of this app's cookie value (the id and this
        app's tag), as tests hold it."""
        sid = self.lifecycle.session_id_in(f"{COOKIE}={sid_or_cookie}") or sid_or_cookie
        assert self.lifecycle.ids.is_known(sid), "neither this app's cookie value nor an id"
        return self.lifecycle.session_key(sid)

    def open(self, environ: dict[str, Any]) -> Session:
        """A lazy session for a request with this environ, as the shell makes it."""
        return self.lifecycle.open(environ.get("HTTP_COOKIE"), self.read)

    def read(self, sid: str) -> Any:
        return run(self.lifecycle.read(sid), self.store)

    def persist(self, session: Session) -> Headers:
        """The one persist path, run on this store: the headers the response needs."""
        return list(run(self.lifecycle.persist(session), self.store))


def unknown_cookie(manager: Manager) -> str:
    """A genuine cookie value of this app for a session id the store never held."""
    return manager.lifecycle.cookie_value(manager.lifecycle.ids.new())


def make_manager(store: SessionStore, clock: FakeClock, **options: Any) -> Manager:
    """A manager over ``store`` with this module's cookie, key and origin (``options``:
    ``cookie``, and the side's ``idle_timeout``, ``absolute_timeout``, ...)."""
    cookie = options.pop("cookie", CookieSpec(COOKIE, secure=False))
    return Manager(store, clock, cookie, **options)


def session_app(manager: Manager, handler: Handler) -> Callable[..., Iterable[bytes]]:
    """A WSGI app behind the shell whose body is ``handler``'s JSON result."""

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = handler(environ["sessionshare.session"], environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(result).encode()]

    return manager.wrap(inner)


def set_values(values: dict[str, Any]) -> Handler:
    def handler(session: Session, environ: dict[str, Any]) -> object:
        session.update(values)
        return None

    return handler


def read_all(session: Session, environ: dict[str, Any]) -> object:
    return dict(session)


def session_browser(
    store: SessionStore, clock: FakeClock, **options: Any
) -> tuple[Manager, webtest.TestApp]:
    """A manager and a WebTest app whose ``handlers`` map a path to its handler."""
    manager = make_manager(store, clock, **options)
    handlers: dict[str, Handler] = {}

    def dispatch(session: Session, environ: dict[str, Any]) -> object:
        return handlers[environ["PATH_INFO"]](session, environ)

    app = webtest.TestApp(session_app(manager, dispatch))
    app.handlers = handlers  # type: ignore[attr-defined]
    return manager, app
