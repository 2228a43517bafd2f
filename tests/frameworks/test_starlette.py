"""Starlette's own ``tests/middleware/test_session.py`` against ``sessionshare.asgi``.

The file of the installed Starlette's sdist (:mod:`sources`) builds each of
its apps with ``Middleware(SessionMiddleware, secret_key=..., <cookie
options>)``. Here that name is bound, for each test, to :class:`SharedSessionSetup`:
the app is wrapped in sessionshare's ASGI ``RemoteSessionMiddleware`` instead,
configured as a remote of a deployment (the shared store, a sync key, an
``idp_url``; no path protected, as the tests' visitors never sign in), with
the cookie options that have a sessionshare equivalent translated to it and
the others left out (listed below; the tests that need them are xfails that
say so). Each test runs on a ``MemoryStore`` and on the suite's Redis.

``test_client_factory`` is Starlette's ``TestClient`` on asyncio, every client
of a test served by one event loop (one ``BlockingPortal``), as one server
serves all its browsers -- the asyncio store is bound to its loop. Starlette's
own fixture also runs them on trio, which sessionshare does not support.

Not run: the tests of :data:`NOT_RUN`, each with why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio.from_thread
import pytest

from sessionshare import AsyncRedisStore, MemoryStore, SyncKey, asgi

from . import sources

with warnings.catch_warnings():
    # Starlette 1.10 asks for httpx2 instead of httpx, once, as the module loads.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

LOGIN = "http://id.test/login"
#: Starlette's tests that do not exercise a session middleware, and why.
NOT_RUN = {
    "test_session_tracks_modification": "it builds `starlette.middleware.sessions.Session` "
    "objects from dicts and checks their `modified`/`accessed` flags; no middleware is "
    "involved, so no substitution makes it test sessionshare",
}


class SharedSessionSetup:
    """Stands for ``SessionMiddleware`` in Starlette's tests: the app inside sessionshare's
    ASGI remote middleware, Starlette's cookie options translated where they can be.

    - ``session_cookie`` -> ``cookie_name``; ``same_site`` -> ``cookie_samesite``;
      ``https_only`` -> ``cookie_secure`` (and an https ``app_url``: sessionshare
      takes the origin it serves); ``domain`` -> ``cookie_domain``;
    - ``secret_key``: not used (the sync key signs and names the session);
    - ``max_age``, ``path``, ``partitioned``: sessionshare has no such option (the
      cookie is a browser-session cookie at ``Path=/``; the session's life is
      ``idle_timeout``/``absolute_timeout``, on the server).
    """

    #: Bound per test by the ``_shared_setup`` fixture.
    store: Any = None
    key: str = ""

    def __new__(  # type: ignore[misc]
        cls,
        app: Any,
        secret_key: str,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: str = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
    ) -> Any:
        return asgi.RemoteSessionMiddleware(
            app, store=cls.store, key=cls.key, idp_url=LOGIN, protect=False,
            app_url="https://testserver" if https_only else "http://testserver",
            cookie_name=session_cookie, cookie_secure=https_only,
            cookie_samesite=same_site.capitalize(), cookie_domain=domain,
        )


def _tests() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        try:
            path = sources.framework_file("starlette", "tests/middleware/test_session.py")
            # Its one import from Starlette's own test package: a type for annotations.
            theirs = sources.load_module("starlette_test_session", path,
                                         stubs={"tests.types": {"TestClientFactory": Callable}})
        except sources.SourcesUnavailable as exc:
            return {"RUN": [],
                    "test_starlettes_own_tests_are_at_hand": sources.unavailable(exc)}
    found = sources.names_of(theirs)
    missing = set(NOT_RUN) - set(found)
    assert not missing, f"Starlette no longer has {missing}: update NOT_RUN"
    run = [name for name in found if name not in NOT_RUN]
    return {"theirs": theirs, "RUN": run, **{name: getattr(theirs, name) for name in run}}


globals().update(_tests())


@pytest.fixture
def portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    """The event loop the test's apps run on (see the docstring)."""
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        yield portal


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def shared_store(request: pytest.FixtureRequest, portal: anyio.from_thread.BlockingPortal
                 ) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    store = AsyncRedisStore.from_url(request.getfixturevalue("redis_url"))
    yield store
    portal.call(store.close)  # on the loop it talked to Redis from


@pytest.fixture
def test_client_factory(portal: anyio.from_thread.BlockingPortal, shared_store: Any,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    """Starlette's fixture, every client on the test's one loop; sessionshare in place of
    ``SessionMiddleware`` in the tests' apps."""
    setup = type("SessionMiddleware", (SharedSessionSetup,),
                 {"store": shared_store, "key": SyncKey.generate()})
    monkeypatch.setattr(globals()["theirs"], "SessionMiddleware", setup)
    clients: list[TestClient] = []

    def make(app: Any, **kwargs: Any) -> TestClient:
        client = TestClient(app, backend="asyncio", **kwargs)
        client.portal = portal  # every client on the one loop (see the docstring)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
