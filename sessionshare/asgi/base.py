"""The ASGI shell: one class that runs either side of the protocol around an ASGI app.

The twin of ``wsgi/base.py``: both middlewares are this class with a
different *side* (:class:`~sessionshare.core.idp.IdpSide`,
:class:`~sessionshare.core.remote.RemoteSide`), which makes every decision.
Per HTTP request the shell only translates:

1. the scope becomes a :class:`~sessionshare.core.request.Request`, and the
   session is **read before the app runs** when the request carries this
   app's session cookie -- one store round trip, which also slides the idle
   expiry -- and not at all without one. (WSGI reads lazily, when the app
   first looks; under asyncio a read the app triggers by looking would be a
   blocking call on the event loop, and an ``await session.load()`` would
   change the mapping every framework expects.) The cost: a request with a
   cookie to a path that never looks at the session still pays that round
   trip. An authenticated request to a protected path pays exactly it;
2. the side's ``on_request`` steps run on the asyncio store
   (:func:`~sessionshare.core.steps.run_async`): a
   :class:`~sessionshare.core.reply.Reply` is sent as it is, a
   :class:`~sessionshare.core.side.PassThrough` calls the app with
   ``scope["session"]`` (what Starlette's ``request.session`` reads) and
   ``scope["sessionshare.user"]`` set, in a copy of the scope;
3. ``send`` is intercepted: the session is persisted *before*
   ``http.response.start`` goes on, and the headers the core answers with
   (its cookie, ``Vary``) are added to the app's. The IdP's side may answer
   with a Reply instead (a sign-in with a hand-off pending): it is sent, and
   every later message of the app is dropped. Changes made while the body
   streams are persisted before the last body message goes on (and once
   more if the app changes the session after that, in a background task),
   as a *late* persist: no new id, no new session, no sign-in -- nothing
   that would need a cookie the headers no longer carry;
4. a store outage is the side's 503 with ``Retry-After``: fail closed.

Websocket scopes get the same session and user when a page of this app's
own origin (or one listed in ``websocket_origins``) opens them; on a
remote's protected path a handshake without a signed-in session this origin
joined is refused before it is accepted, with close code **1008** (policy
violation; servers answer the handshake with 403) -- never served
anonymously -- and a store outage closes it with **1013** (try again later).
A handshake from any other origin, or with no ``Origin``, is refused (1008)
on a protected path and elsewhere served with an empty session of its own and
no user: the core decides (``Side.on_websocket``), and reads nothing for it.
Lifespan and any other scope type pass through untouched.

Stores: only coroutine stores (``AsyncRedisStore``, any
``AsyncSessionStore``), or a ``MemoryStore``, awaited through
:class:`~sessionshare.store.amemory.AsyncMemoryStore` because it never waits
on I/O. A thread store such as ``RedisStore`` is refused at construction:
it would block the event loop on every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from ..core.lifecycle import Headers, Lifecycle
from ..core.option_checks import async_session_store
from ..core.options import Role, read_environ
from ..core.reply import Reply
from ..core.request import Request
from ..core.session import Session, state_of
from ..core.side import PassThrough, Side
from ..core.steps import Steps, run_async
from ..errors import ConfigurationError, StoreUnavailable
from ..store.amemory import AsyncMemoryStore
from ..store.base import AsyncSessionStore, SessionRecord
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

__all__ = [
    "SCOPE_SESSION",
    "SCOPE_USER",
    "WS_REFUSED",
    "WS_UNAVAILABLE",
    "SessionMiddleware",
    "async_store",
]

log = logging.getLogger("sessionshare")

_M = TypeVar("_M", bound="SessionMiddleware")

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
    if isinstance(store, AsyncMemoryStore):
        return store
    problem = async_session_store("store", store)
    if problem is not None:
        raise ConfigurationError(problem)
    assert isinstance(store, AsyncSessionStore)
    return store


def _read_lazily(sid: str) -> SessionRecord | None:
    # Never called: the shell fills every session before the app sees it.
    raise RuntimeError("under ASGI the session is read before the app runs, never lazily")


class SessionMiddleware(metaclass=BuiltLate):
    """Base of the ASGI :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    The subclasses document every argument, check them all against
    :data:`sessionshare.core.options.OPTIONS` and build their side from them. A
    configuration refused while an event loop runs -- Starlette's
    ``add_middleware`` builds the stack at the lifespan startup -- fails that
    startup rather than every request (:mod:`sessionshare.asgi.late`).
    """

    _role: ClassVar[Role]

    def __init__(self, app: ASGIApp, *, store: object, side: Side) -> None:
        self.app = app
        self.side = side
        self.lifecycle: Lifecycle = side.lifecycle
        self.store = async_store(store)
        # Does on_response read the app's headers (the IdP carries its cookies over)?
        self._reads_app_headers = type(self).on_response is not SessionMiddleware.on_response

    @classmethod
    def from_env(
        cls: type[_M],
        app: ASGIApp,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> _M:
        """Build from ``SESSIONSHARE_*`` variables (``os.environ`` unless ``environ``).

        As the WSGI middlewares' ``from_env``, except that ``SESSIONSHARE_STORE_URL``
        becomes an ``AsyncRedisStore`` (or a ``MemoryStore`` for ``memory://``).
        """
        values, problems = read_environ(cls._role, environ, overrides, shell="asgi")
        if problems:
            raise ConfigurationError("; ".join(problems))
        return cls(app, **values, **overrides)

    # -- per connection --------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)  # lifespan, and whatever comes next

    async def _open(self, request: Request) -> Session:
        """This request's session, read now if the request names one (one round trip)."""
        session = Session(_read_lazily, self.lifecycle.session_id_in(request.cookies))
        if state_of(session).unread_id is not None:
            await run_async(self.lifecycle.load(session), self.store)
        return session

    async def _arrive(
        self, request: Request, websocket: bool = False
    ) -> tuple[Session, Reply | PassThrough]:
        if websocket:
            # Not read up front: the core reads it in its steps, and not at all for a
            # handshake from another origin (whose page must not even slide its expiry).
            session = Session(_read_lazily, self.lifecycle.session_id_in(request.cookies))
            outcome = self.side.on_websocket(request, session)
        else:
            session = await self._open(request)
            outcome = self.side.on_request(request, session)
        if not isinstance(outcome, (Reply, PassThrough)):
            outcome = await run_async(outcome, self.store)  # the store work it asked for
        return session, outcome

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        head = request.method == "HEAD"
        try:
            session, outcome = await self._arrive(request)
        except StoreUnavailable as exc:
            await send_reply(send, self.side.unavailable(request, exc), head=head)
            return
        if isinstance(outcome, Reply):
            await send_reply(send, outcome, head=head)
            return
        passed = outcome
        started = replaced = False

        async def persisting_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # our answer went out instead of the app's: the rest goes nowhere
            kind = message["type"]
            if kind == "http.response.start" and not started:
                started = True
                try:
                    app_headers = (
                        header_text(message.get("headers") or ())
                        if self._reads_app_headers else []
                    )
                    answer = await self.on_response(request, session, passed, app_headers)
                except StoreUnavailable as exc:
                    answer = self.side.unavailable(request, exc)
                if isinstance(answer, Reply):
                    replaced = True
                    await send_reply(send, answer, head=head)
                    return
                if answer:
                    message = {
                        **message,
                        "headers": [*(message.get("headers") or ()), *encode_headers(answer)],
                    }
            elif kind in _FINAL_BODY and started and not message.get("more_body", False):
                # The last of the body: what changed while it streamed is stored before
                # the client can see the response end (and ask for the next page).
                await self._persist_late(session)
            await send(message)

        await self.app(
            {**scope, SCOPE_SESSION: session, SCOPE_USER: passed.user}, receive, persisting_send
        )
        if started and not replaced:
            await self._persist_late(session)  # a change after the body (a background task)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        try:
            session, outcome = await self._arrive(request, websocket=True)
        except StoreUnavailable as exc:
            self.side.unavailable(request, exc)  # logged as for HTTP; the reply has no use
            await _refuse(receive, send, WS_UNAVAILABLE, "store_unavailable")
            return
        if isinstance(outcome, Reply):
            await _refuse(receive, send, WS_REFUSED, _reason_of(outcome))
            return
        if outcome.no_session:
            session = Session(_read_lazily, None)  # a page of another origin: none of the user's
        await self.app({**scope, SCOPE_SESSION: session, SCOPE_USER: outcome.user}, receive, send)
        # No headers ever carry a cookie on a websocket: what changed is a late change.
        await self._persist_late(session)

    async def _persist_late(self, session: Session) -> None:
        if not session.modified:
            return  # the common case: nothing changed after the headers
        try:
            await self.on_close(session)
        except StoreUnavailable:
            # The response is already on its way; nothing to answer with.
            log.warning("store_unavailable phase=close")

    # -- the session on the way out -------------------------------------------
    async def steps(self, steps: Steps[Any]) -> Any:
        """Run protocol steps on this middleware's store; their result."""
        return await run_async(steps, self.store)

    async def persist(self, session: Session, *, late: bool = False) -> Headers:
        """Run the session's write plan; the headers (cookie, ``Vary``) it needs."""
        settled = self.lifecycle.settle(session, late=late)
        if isinstance(settled, list):
            return settled  # nothing to write: no step to drive (the common case)
        return list(await run_async(self.lifecycle.write(session, settled), self.store))

    async def on_response(
        self, request: Request, session: Session, passed: PassThrough, headers: Headers
    ) -> Reply | Headers:
        """The app's answer is starting: persist the session; the headers to add.

        The IdP overrides this with its side's sign-in step, which may return a
        :class:`Reply` that replaces the app's answer.
        """
        return await self.persist(session)

    async def on_close(self, session: Session) -> Headers:
        """The headers are out: persist what changed since, within what needs no cookie."""
        return await self.persist(session, late=True)


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
