"""The ASGI shell: one class that runs either side of the protocol around an ASGI app.

The twin of ``wsgi/base.py``: both middlewares are this class with another
*side* (:class:`~sessionshare.core.idp.IdpSide`,
:class:`~sessionshare.core.remote.RemoteSide`), which makes every decision.
Per HTTP request the shell calls the side's three entry points in order and
only translates:

1. the session is **read before the app runs** when the request carries this
   app's session cookie (one round trip, which slides the idle expiry): under
   asyncio a read the app triggers by looking would block the event loop, and
   an ``await session.load()`` would change the mapping every framework
   expects. The cost: a path that never looks at the session still pays it;
2. ``on_request``: a :class:`~sessionshare.core.reply.Reply` is sent as it
   is; a :class:`~sessionshare.core.side.PassThrough` calls the app with
   ``scope["session"]`` (what Starlette's ``request.session`` reads) and
   ``scope["sessionshare.user"]`` in a copy of the scope;
3. ``on_response`` persists the session *before* ``http.response.start``
   goes on and adds its headers to the app's -- or answers with a Reply (an
   IdP sign-in with a hand-off pending), and the app's messages are dropped;
4. ``on_close`` before the last body message (and again for a change made
   after it, in a background task): the *late* persist, which needs no cookie;
5. a store outage before the answer starts is the side's 503: fail closed.

A websocket handshake goes through the same ``on_request`` (the side says who
gets the session): a refusal closes it before it is accepted, with close code
**1008** (the server answers the handshake 403), a store outage with **1013**;
the app's changes are persisted late. Other scope types pass through.

Stores: asyncio stores, or a ``MemoryStore`` (awaited through
:class:`~sessionshare.store.amemory.AsyncMemoryStore`); a thread store such as
``RedisStore`` would block the event loop, and is refused at construction.
"""

from __future__ import annotations

import json
from typing import ClassVar

from ..core.guest import ORIGINAL_QUERY
from ..core.lifecycle import Headers, response_headers
from ..core.option_checks import async_session_store
from ..core.options import Shell
from ..core.reply import Reply
from ..core.request import Request
from ..core.session import Session
from ..core.shell import ShellBase
from ..core.side import Outcome, PassThrough, Side
from ..core.steps import Steps, run_async
from ..errors import ConfigurationError, StoreUnavailable
from ..store.amemory import AsyncMemoryStore
from ..store.base import AsyncSessionStore
from ..store.memory import MemoryStore
from .late import BuiltLate
from .scope import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    encode_headers,
    header_text,
    request_of,
    send_reply,
)

__all__ = ["SCOPE_SESSION", "SCOPE_USER", "WS_REFUSED", "WS_UNAVAILABLE", "SessionMiddleware",
           "async_store"]

#: Where the app finds the shared session (Starlette's ``request.session`` reads it).
SCOPE_SESSION = "session"
#: Where the app finds the signed-in user (None when nobody is signed in here).
SCOPE_USER = "sessionshare.user"
#: Close code of a websocket refused for want of a signed-in session (policy violation).
WS_REFUSED = 1008
#: Close code of a websocket refused because the store is unreachable (try again later).
WS_UNAVAILABLE = 1013
_FINAL_BODY = ("http.response.body", "http.response.pathsend")


def async_store(store: object) -> AsyncSessionStore:
    """``store`` as an asyncio store; ConfigurationError for one that would block."""
    if isinstance(store, MemoryStore):
        return AsyncMemoryStore(store)
    problem = async_session_store("store", store)
    if problem is not None:
        raise ConfigurationError(problem)
    assert isinstance(store, AsyncSessionStore)
    return store


class SessionMiddleware(ShellBase, metaclass=BuiltLate):
    """The ASGI shell of :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    :param app: the ASGI application to wrap.
    :param store: the asyncio store the session lives in (a ``MemoryStore`` too).
    :param side: the protocol's side this app plays (its role, as data).

    Built from options by :class:`~sessionshare.core.shell.ShellBase`; refused
    while an event loop runs, it fails the lifespan startup (:mod:`~sessionshare.asgi.late`).
    """

    shell: ClassVar[Shell] = "asgi"

    def __init__(self, app: ASGIApp, *, store: object, side: Side) -> None:
        self._wrap(app, async_store(store), side)

    def _wrap(self, app: ASGIApp, store: AsyncSessionStore | MemoryStore, side: Side) -> None:
        self.app = app
        self.side = side
        self.lifecycle = side.lifecycle
        # Checked already: an asyncio store, or a MemoryStore that never waits.
        self.store = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else store

    # -- per connection --------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)  # lifespan, and whatever comes next

    async def _arrive(self, request: Request, session: Session) -> Reply | PassThrough:
        outcome: Outcome = self.side.on_request(request, session)
        if not isinstance(outcome, (Reply, PassThrough)):
            outcome = await run_async(outcome, self.store)  # the store work it asked for
        return outcome

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        head = request.method == "HEAD"
        try:
            session = self.lifecycle.open(request.cookies)
            # Read before the app runs: see the module docstring.
            reading = self.lifecycle.read_now(session)
            if reading is not None:
                await run_async(reading, self.store)
            outcome = await self._arrive(request, session)
        except StoreUnavailable as exc:
            await send_reply(send, self.side.unavailable(request, exc), head=head)
            return
        if isinstance(outcome, Reply):
            await send_reply(send, outcome, head=head)
            return
        exchange = _Exchange(self.side, self.store, send, request, session, outcome)
        app_scope = {**scope, SCOPE_SESSION: session, SCOPE_USER: outcome.user}
        if outcome.query is not None:
            app_scope[ORIGINAL_QUERY] = scope.get("query_string", b"")
            app_scope["query_string"] = outcome.query.encode("latin-1")
        await self.app(app_scope, receive, exchange.send)
        closing = exchange.after_app()  # a change after the body (a background task)
        if closing is not None:
            await run_async(closing, self.store)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        try:
            # Not read up front: the core reads it in its steps, and not at all for a
            # handshake from another origin (whose page must not even slide its expiry).
            session = self.lifecycle.open(request.cookies)
            outcome = await self._arrive(request, session)
        except StoreUnavailable as exc:
            self.side.unavailable(request, exc)  # logged as for HTTP; the reply has no use
            await _refuse(receive, send, WS_UNAVAILABLE, "store_unavailable")
            return
        if isinstance(outcome, Reply):
            await _refuse(receive, send, WS_REFUSED, _reason_of(outcome))
            return
        if outcome.no_session:
            session = self.lifecycle.open(None)  # a page of another origin: none of the user's
        await self.app({**scope, SCOPE_SESSION: session, SCOPE_USER: outcome.user}, receive, send)
        # No headers ever carry a cookie on a websocket: what changed is a late change.
        closing = _late_steps(self.side, session)
        if closing is not None:
            await run_async(closing, self.store)


async def _refuse(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Close a websocket before accepting it (the server answers the handshake 403)."""
    message = await receive()
    if message.get("type") == "websocket.connect":
        await send({"type": "websocket.close", "code": code, "reason": reason})


def _reason_of(reply: Reply) -> str:
    """The reason code of one of the library's JSON error replies ("" for any other)."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


class _Exchange:
    """One HTTP request's way out through ASGI: the ``send`` the app gets."""

    __slots__ = ("passed", "replaced", "request", "server_send", "session", "side",
                 "started", "store")

    def __init__(self, side: Side, store: AsyncSessionStore, send: Send, request: Request,
                 session: Session, passed: PassThrough) -> None:
        self.side = side
        self.store = store
        self.server_send = send
        self.request = request
        self.session = session
        self.passed = passed
        self.started = False
        #: The side's Reply went out in place of the app's answer: the rest goes nowhere.
        self.replaced = False

    async def send(self, message: Message) -> None:
        """The ``send`` the app calls: persist before the answer starts and before it ends."""
        if self.replaced:
            return
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.started = True
            side = self.side
            try:
                app_headers = (header_text(message.get("headers") or ())
                               if side.reads_app_headers else [])
                answer = side.on_response(self.request, self.session, self.passed, app_headers)
                if not isinstance(answer, (Reply, list)):
                    answer = await run_async(answer, self.store)  # the store work it asked
            except StoreUnavailable as exc:
                answer = side.unavailable(self.request, exc)
            if isinstance(answer, Reply):
                self.replaced = True
                await send_reply(self.server_send, answer, head=self.request.method == "HEAD")
                return
            if answer:
                message = {
                    **message,
                    "headers": encode_headers(response_headers(
                        header_text(message.get("headers") or ()), answer)),
                }
        elif kind in _FINAL_BODY and self.started and not message.get("more_body", False):
            # The last of the body: what changed while it streamed is stored before
            # the client can see the response end (and ask for the next page).
            closing = _late_steps(self.side, self.session)
            if closing is not None:
                await run_async(closing, self.store)
        await self.server_send(message)

    def after_app(self) -> Steps[Headers] | None:
        """The app returned: the steps that store a change made after its body (a
        background task), or None (nothing changed: the common case, no await)."""
        if self.started and not self.replaced:
            return _late_steps(self.side, self.session)
        return None


def _late_steps(side: Side, session: Session) -> Steps[Headers] | None:
    """The side's ``on_close`` as steps to run, or None (a late store failure is the
    side's to report)."""
    closing = side.on_close(session)
    return None if isinstance(closing, list) else closing
