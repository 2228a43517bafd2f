"""The WSGI shell: one class that runs either side of the protocol around a WSGI app.

Both middlewares are this class with a different *side*
(:class:`~sessionshare.core.idp.IdpSide`,
:class:`~sessionshare.core.remote.RemoteSide`), which makes every decision;
they only build it, and override nothing. Per request the shell calls the
side's three entry points in order, whatever its role, and only translates:

1. the environ becomes a :class:`~sessionshare.core.request.Request`, and the
   request gets a lazy :class:`~sessionshare.core.session.Session` at
   ``environ["sessionshare.session"]`` (read on the app's first look, one
   round trip);
2. ``on_request``: its steps run on the store; a
   :class:`~sessionshare.core.reply.Reply` is sent as it is, a
   :class:`~sessionshare.core.side.PassThrough` calls the app (with
   ``REMOTE_USER`` set for a signed-in user, and removed otherwise: one the
   server or a proxy set is kept at ``environ["sessionshare.server_remote_user"]``
   only, so frameworks that trust ``REMOTE_USER`` see the middleware's user alone).
   A websocket handshake (a GET with ``Upgrade: websocket``, which flask-sock
   and the like take over) is one too, as under ASGI: from a page of another
   origin it gets no session and no user, and is refused on a remote's
   protected path;
3. ``on_response``, when the app starts its response, before the status line
   reaches the server: the session is persisted, and the IdP's side may
   replace the answer (a sign-in with a hand-off pending);
4. ``on_close``, when the server closes the body: what changed while it
   streamed, within what needs no new cookie (:mod:`sessionshare.wsgi.response`);
5. a store outage before the answer starts is the side's 503: fail closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..core.options import Role, read_environ
from ..core.reply import Reply
from ..core.session import ENVIRON_KEY
from ..core.side import PassThrough, Side
from ..core.steps import run
from ..errors import ConfigurationError, StoreUnavailable
from ..store.base import SessionRecord, SessionStore
from .environ import request_of, send_reply
from .response import Exchange

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SERVER_REMOTE_USER", "SessionMiddleware"]

#: Where a ``REMOTE_USER`` the server (or a proxy) set is kept, out of the frameworks' way.
SERVER_REMOTE_USER = "sessionshare.server_remote_user"

_M = TypeVar("_M", bound="SessionMiddleware")


class SessionMiddleware:
    """The WSGI shell of :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    :param app: the WSGI application to wrap.
    :param store: the thread store the session lives in.
    :param side: the protocol's side this app plays (its role, as data).

    The middlewares document every argument, check them all against
    :data:`sessionshare.core.options.OPTIONS` and build their side from them.
    """

    _role: ClassVar[Role]

    def __init__(self, app: WSGIApplication, *, store: SessionStore, side: Side) -> None:
        if _is_asgi_app(app):
            # Starlette's and FastAPI's add_middleware hand it their ASGI app; the first
            # request would fail with a TypeError about positional arguments.
            name = type(self).__name__
            raise ConfigurationError(
                f"this {name} is the WSGI middleware (sessionshare.{name}), and the app it "
                f"wraps is an ASGI app ({type(app).__name__}, whose __call__ is a "
                "coroutine), as Starlette's and FastAPI's add_middleware hand it: use "
                f"sessionshare.asgi.{name} -- the same options, with an asyncio store "
                "(AsyncRedisStore.from_url(...) or MemoryStore())"
            )
        if not isinstance(store, SessionStore):
            raise ConfigurationError(
                "store must implement sessionshare.store.SessionStore "
                "(e.g. RedisStore.from_url(...) or MemoryStore())"
            )
        self.app = app
        self.side = side
        self.store = store
        self.lifecycle = side.lifecycle

    @classmethod
    def from_env(
        cls: type[_M],
        app: WSGIApplication,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> _M:
        """Build from ``SESSIONSHARE_*`` variables (``os.environ`` unless ``environ``).

        Keyword ``overrides`` are constructor arguments that win over the
        variables. One :class:`ConfigurationError` names every variable to fix;
        the variables are listed in :mod:`sessionshare.core.options`.
        """
        values, problems = read_environ(cls._role, environ, overrides)
        if problems:
            raise ConfigurationError("; ".join(problems))
        return cls(app, **values, **overrides)

    def read(self, sid: str) -> SessionRecord | None:
        """The live session ``sid`` (one round trip), or None: every session's loader."""
        return run(self.lifecycle.read(sid), self.store)

    # -- per request ---------------------------------------------------------
    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        request = request_of(environ)
        side = self.side
        try:
            session = environ[ENVIRON_KEY] = self.lifecycle.open(request.cookies, self.read)
            outcome = side.on_request(request, session)
            if not isinstance(outcome, (Reply, PassThrough)):
                outcome = run(outcome, self.store)  # the store work it asked for
            if isinstance(outcome, Reply):
                return send_reply(environ, start_response, outcome)
            if outcome.no_session:
                # A page of another origin: none of the user's session, not even read.
                session = environ[ENVIRON_KEY] = self.lifecycle.open(None, self.read)
            user = side.remote_user(outcome.user)
            if "REMOTE_USER" in environ:
                # Set by the server or a proxy, not by us: Django's RemoteUserMiddleware
                # or Pyramid's RemoteUserSecurityPolicy would take an anonymous visitor for
                # that user. Kept under our namespace for an app that wants it.
                environ[SERVER_REMOTE_USER] = environ.pop("REMOTE_USER")
            if user is not None:
                environ["REMOTE_USER"] = user  # the WSGI convention frameworks already read
            exchange = Exchange(side, self.store, environ, start_response, request, session,
                                outcome)
            return exchange.call(self.app)
        except StoreUnavailable as exc:
            return send_reply(environ, start_response, side.unavailable(request, exc))


def _is_asgi_app(app: object) -> bool:
    """True for an app whose call is a coroutine: ASGI, never WSGI."""
    # An instance's call is its class's __call__ (a Starlette app, its ExceptionMiddleware).
    call = next(
        (vars(base)["__call__"] for base in type(app).__mro__ if "__call__" in vars(base)), None
    )
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
