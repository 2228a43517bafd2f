"""Starlette's own ``tests/middleware/test_session.py`` against ``sessionshare.asgi``.

The file of the installed Starlette's sdist (:mod:`sources`) builds each of
its apps with ``Middleware(SessionMiddleware, secret_key=..., <cookie
options>)``. Here that name is bound, for each test, to :class:`SharedSessionSetup`:
sessionshare's drop-in for it, :class:`sessionshare.contrib.starlette.SessionMiddleware`
(the one import a user swaps), given the test's own arguments unchanged and
configured as a remote of a deployment (the shared store, a sync key, an
``idp_url``; no path protected, as the tests' visitors never sign in). Each
test runs on a ``MemoryStore`` and on the suite's Redis.

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

from sessionshare import AsyncRedisStore, MemoryStore, SyncKey
from sessionshare.contrib import starlette

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
    """Stands for ``SessionMiddleware`` in Starlette's tests: sessionshare's drop-in,
    :class:`sessionshare.contrib.starlette.SessionMiddleware`, given the test's arguments
    as they are and the deployment's settings -- the shared store, a sync key, an
    ``idp_url``, no path protected (the tests' visitors never sign in), and the
    ``app_url`` the test's clients use (https when it asks ``https_only``).
    """

    #: Bound per test by the ``test_client_factory`` fixture.
    store: Any = None
    key: str = ""

    def __new__(cls, app: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        https = kwargs.get("https_only", False)
        return starlette.SessionMiddleware(
            app, *args, **kwargs, store=cls.store, key=cls.key, idp_url=LOGIN, protect=False,
            app_url="https://testserver" if https else "http://testserver",
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
