"""Test helpers: put a test client into a signed-in state, one test at a time.

An app behind sessionshare serves its protected pages only to a browser that
signed in at the IdP and came back through a hand-off. A test of the app's
own views wants to start *after* that. :func:`sign_in` makes exactly that
session in the middleware's store -- through the library's own write path,
so it is a real session with this app's cookie, its sign-in time, (at a
remote) the record that this app joined it, and an entry in the user's index
that ``sessions list``, ``revoke`` and ``max_sessions_per_user`` see -- and
gives the test client its cookie::

    from sessionshare.testing import sign_in

    def test_orders_page(client):                      # a Flask test client, say
        sign_in(client, app.wsgi_app, "alice", cart=[3])
        assert client.get("/orders").status_code == 200

Nothing is switched off and no check is skipped: a client that did not sign
in is sent to the IdP as in production. Use a :class:`~sessionshare.MemoryStore`
in tests. Any other store is refused unless the test says it is a test store
(``allow_shared_store=True``): a helper that makes signed-in sessions must
never write one into a store real apps share (production Redis, by a wrong
URL in a test's settings).

The ASGI middlewares work the same, with an ``httpx`` client or Starlette's
``TestClient``; on an asyncio store, in an ``async`` test, await the twins
(``await sign_in_async(client, app, "alice")``). With pytest, the
``sessionshare_sign_in`` and ``sessionshare_sign_in_async`` fixtures are these
same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .asgi.base import SessionMiddleware as AsgiMiddleware
from .core.idp import IdpSide
from .core.index import UserIndex, record_session
from .core.lifecycle import Headers
from .core.remote import RemoteSide
from .core.session import Session, state_of
from .core.side import Side
from .core.steps import Steps, run, run_async
from .errors import ConfigurationError
from .store.amemory import AsyncMemoryStore
from .store.base import SessionStore
from .store.memory import MemoryStore
from .store.observed import AsyncObservedStore, ObservedStore
from .wsgi.base import SessionMiddleware as WsgiMiddleware

#: The ``User-Agent`` an index entry made by these helpers shows.
USER_AGENT = "sessionshare.testing"

__all__ = ["sign_in", "sign_in_async", "signed_in_cookie", "signed_in_cookie_async"]


def _side_of(middleware: Any) -> Side:
    side = getattr(middleware, "side", None)
    if not isinstance(side, Side) or not isinstance(middleware, (AsgiMiddleware, WsgiMiddleware)):
        raise ConfigurationError(
            f"sign_in needs the sessionshare middleware (for Flask: app.wsgi_app), "
            f"not {type(middleware).__name__}"
        )
    return side


def _refuse_a_shared_store(middleware: Any, allowed: bool) -> None:
    """ConfigurationError unless ``middleware``'s store is in memory, or ``allowed``."""
    store = middleware.store
    while isinstance(store, (ObservedStore, AsyncObservedStore, AsyncMemoryStore)):
        store = store.store
    if allowed or isinstance(store, MemoryStore):
        return
    raise ConfigurationError(
        f"sign_in writes a signed-in session into the middleware's {type(store).__name__}, "
        "a store real apps may share: use MemoryStore() in tests, or pass "
        "allow_shared_store=True if this store is a test one"
    )


def _persist_signed_in(
    side: Side, user: Any, data: dict[str, Any] | None, clock: Callable[[], float] | None
) -> Steps[Headers]:
    """The steps that store a new session signed in as ``user`` and enter it in the
    user's index, as a real sign-in does; the headers of its cookie."""
    now = (clock or side.clock)()
    session = Session()
    session.update(data or {})
    session[side.user_key] = user
    state = state_of(session)
    state.mark_authenticated(now)
    if isinstance(side, RemoteSide):
        state.mark_joined(side.origin, now)  # as a completed hand-off records it
    headers = yield from side.lifecycle.persist(session)
    if isinstance(side, IdpSide):
        index, cap = side.index, side.max_sessions_per_user
    else:
        # The remote's view of the same index (the IdP's cap is the IdP's to apply).
        index = UserIndex(side.key, key_prefix=side.lifecycle.key_prefix,
                          user_key=side.user_key, events=side.events, clock=side.clock)
        cap = None
    yield from record_session(index, session, side.remote_user(user) or "",
                              ids=side.lifecycle.ids, user_agent=USER_AGENT, max_sessions=cap)
    return headers


def _cookie_in(side: Side, headers: Headers) -> tuple[str, str]:
    cookie = side.lifecycle.cookie
    for name, value in headers:
        if name == "Set-Cookie" and value.startswith(cookie.name + "="):
            return cookie.name, value.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("persisting a new signed-in session set no cookie")  # pragma: no cover


def signed_in_cookie(
    middleware: Any,
    user: Any,
    data: dict[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    allow_shared_store: bool = False,
) -> tuple[str, str]:
    """Store a session signed in as ``user`` (with ``data``) for ``middleware``'s app, and
    enter it in the user's index; the ``(name, value)`` of the session cookie that app
    reads it from.

    ``middleware`` is an :class:`~sessionshare.IdpAuthMiddleware` or
    :class:`~sessionshare.RemoteSessionMiddleware` (for Flask: ``app.wsgi_app``),
    or one of :mod:`sessionshare.asgi` over a ``MemoryStore`` (for an asyncio
    store, await :func:`signed_in_cookie_async`). Use the pair for a client
    :func:`sign_in` does not know; the store is refused as there.
    """
    side = _side_of(middleware)
    if isinstance(middleware, AsgiMiddleware):
        if not isinstance(middleware.store, AsyncMemoryStore):
            raise ConfigurationError(
                f"{type(middleware.store).__name__} is an asyncio store: "
                "await signed_in_cookie_async (or sign_in_async) in an async test"
            )
        # A MemoryStore never waits: its records are written here, with no event loop.
        store: SessionStore = middleware.store.store
    else:
        store = middleware.store
    _refuse_a_shared_store(middleware, allow_shared_store)
    return _cookie_in(side, run(_persist_signed_in(side, user, data, clock), store))


async def signed_in_cookie_async(
    middleware: Any,
    user: Any,
    data: dict[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    allow_shared_store: bool = False,
) -> tuple[str, str]:
    """:func:`signed_in_cookie` on the event loop: for an ASGI middleware over any store
    (one other than a ``MemoryStore`` only with ``allow_shared_store=True``)."""
    side = _side_of(middleware)
    _refuse_a_shared_store(middleware, allow_shared_store)
    steps = _persist_signed_in(side, user, data, clock)
    if isinstance(middleware, AsgiMiddleware):
        return _cookie_in(side, await run_async(steps, middleware.store))
    return _cookie_in(side, run(steps, middleware.store))


def _cookie_setter(client: Any) -> Callable[[str, str], None]:
    """How to put a cookie in ``client``'s jar, for the host its requests go to."""
    # WebTest's TestApp (a cookiejar), a werkzeug/Flask client (for localhost, its host).
    if hasattr(client, "set_cookie") and (
        hasattr(client, "cookiejar") or hasattr(client, "application")
    ):
        return client.set_cookie  # type: ignore[no-any-return]
    if hasattr(client, "cookies") and hasattr(client, "handler"):  # Django's test Client
        if getattr(client, "middleware", None) is None:
            raise TypeError(
                "Django's own test Client calls Django's handler without the sessionshare "
                "middleware, so a session cookie would do nothing: use "
                "sessionshare.contrib.django.testing.Client"
            )

        def set_django_cookie(name: str, value: str) -> None:
            client.cookies[name] = value  # sent with every request of the client

        return set_django_cookie
    if hasattr(client, "cookies") and hasattr(client, "base_url"):  # httpx, Starlette's

        def set_cookie(name: str, value: str) -> None:
            # For the base URL's host: the app's own later Set-Cookie (a rotation, a
            # logout) then replaces it, rather than adding a second cookie of that name.
            client.cookies.set(name, value, domain=client.base_url.host)

        return set_cookie
    raise TypeError(
        f"sign_in does not know {type(client).__name__}; send the cookie yourself: "
        "name, value = signed_in_cookie(middleware, user)"
    )


def sign_in(
    client: Any, middleware: Any, user: Any, *, allow_shared_store: bool = False, **data: Any
) -> None:
    """Sign ``client`` in at ``middleware``'s app as ``user``, with session ``data``.

    ``client``: a WebTest ``TestApp``, a Flask/werkzeug test client, the Django
    test client of :mod:`sessionshare.contrib.django.testing` (with
    ``client.middleware``; Django's own ``Client`` calls the handler without
    the middleware and is refused), or -- for an ASGI middleware -- an
    ``httpx`` client (give it a ``base_url``) or Starlette's ``TestClient``.
    For anything else, send the cookie from :func:`signed_in_cookie` yourself.

    The session is entered in the user's index as a real sign-in's is. A store
    other than a ``MemoryStore`` is refused (``ConfigurationError``) unless
    ``allow_shared_store=True`` says it is a test store.
    """
    set_cookie = _cookie_setter(client)  # an unknown client: refused before anything is stored
    set_cookie(*signed_in_cookie(middleware, user, data,
                                 allow_shared_store=allow_shared_store))


async def sign_in_async(
    client: Any, middleware: Any, user: Any, *, allow_shared_store: bool = False, **data: Any
) -> None:
    """:func:`sign_in` on the event loop: for an ASGI middleware over any store (one other
    than a ``MemoryStore`` only with ``allow_shared_store=True``)."""
    set_cookie = _cookie_setter(client)
    set_cookie(*await signed_in_cookie_async(middleware, user, data,
                                             allow_shared_store=allow_shared_store))
