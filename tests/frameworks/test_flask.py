"""Flask's own session tests (``tests/test_basic.py``) against ``sessionshare.contrib.flask``.

The file of the installed Flask's sdist (:mod:`sources`) is run unchanged;
its tests ask for the fixtures of Flask's ``tests/conftest.py``, which are
replaced here by ones that build the same app behind sessionshare:

- ``app``: ``Flask("flask_test")`` with Flask's test configuration
  (``TESTING``, ``SECRET_KEY``), ``init_app(app)`` and ``app.wsgi_app`` inside
  the remote's ``RemoteSessionMiddleware`` of a deployment (the shared store,
  a sync key, an ``idp_url``; no path protected: the tests' clients never
  sign in) -- as the README's Flask quick start sets it up, with the cookie
  named ``session``, as Flask's (the tests look for that name, as Pyramid's
  do for theirs);
- ``client``: ``app.test_client()``, through that middleware;
- ``req_ctx``: Flask's ``app.test_request_context()`` calls no WSGI app, so no
  middleware would load a session for it; here the request context is made
  over the environ of a real request that went through the same middleware
  (:mod:`held`), and that request ends -- the session is persisted -- when
  the context closes.

Each test runs on a ``MemoryStore`` and on the suite's Redis.

Which tests run: every test of the file whose name says ``session`` or
``flash``, but those of :data:`NOT_RUN` (each tests what only Flask's
signed-cookie interface does, so it cannot hold for any server-side
``SessionInterface``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flow import LOGIN

from sessionshare import RemoteSessionMiddleware, SessionStore, SyncKey
from sessionshare.contrib.flask import init_app

from . import sources
from .held import Browser, hand_over, store_of

#: Flask's session tests that cannot apply to a server-side session, and why.
NOT_RUN = {
    "test_session_secret_key_fallbacks": "it tests how Flask's cookie interface signs the "
    "cookie with `SECRET_KEY` and verifies it with `SECRET_KEY_FALLBACKS`; a server-side "
    "session's cookie only names the session, and sessionshare signs it with its own sync "
    "keys (rotated through a list of keys)",
}


def _tests() -> dict[str, Any]:
    try:
        path = sources.framework_file("flask", "tests/test_basic.py")
        theirs = sources.load_module("flask_test_basic", path)
    except sources.SourcesUnavailable as exc:
        return {"RUN": [], "test_flasks_own_tests_are_at_hand": sources.unavailable(exc)}
    found = [name for name in sources.names_of(theirs) if "session" in name or "flash" in name]
    missing = set(NOT_RUN) - set(found)
    assert not missing, f"Flask no longer has {missing}: update NOT_RUN"
    run = [name for name in found if name not in NOT_RUN]
    return {"root": path.parent, "RUN": run, **{name: getattr(theirs, name) for name in run}}


globals().update(_tests())


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def shared_store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    store = store_of(request.param, request)
    yield store
    store.close()


@pytest.fixture
def deployment(shared_store: SessionStore) -> dict[str, Any]:
    """The remote's options: every Flask app of a test is served with them."""
    return {"store": shared_store, "key": SyncKey.generate(), "app_url": "http://localhost",
            "idp_url": LOGIN, "protect": False, "cookie_secure": False, "cookie_name": "session"}


@pytest.fixture
def app(deployment: dict[str, Any]) -> flask.Flask:
    """Flask's ``app`` fixture, behind sessionshare."""
    app = flask.Flask("flask_test", root_path=str(globals().get("root", Path(__file__).parent)))
    app.config.update(TESTING=True, SECRET_KEY="test key")
    init_app(app)
    app.wsgi_app = RemoteSessionMiddleware(app.wsgi_app, **deployment)  # type: ignore[method-assign]
    return app


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()


def _environ_of(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app that hands its request's environ to the test (see :mod:`held`)."""
    hand_over(environ, environ)
    start_response("204 No Content", [])
    return []


@pytest.fixture
def req_ctx(app: flask.Flask, deployment: dict[str, Any]) -> Iterator[Any]:
    """Flask's ``req_ctx``: a request context, over a request sessionshare served."""
    browser = Browser(RemoteSessionMiddleware(_environ_of, **deployment), "localhost")
    held = browser.open("/")
    with app.request_context(held.session()) as ctx:
        yield ctx
    browser.finish_all()
