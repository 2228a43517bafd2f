"""The WSGI shell: one class that runs either side of the protocol around a WSGI app.

Both middlewares are this class with a different *side*
(:class:`~sessionshare.core.idp.IdpSide`,
:class:`~sessionshare.core.remote.RemoteSide`), which makes every decision.
Per request the shell only translates:

1. the environ becomes a :class:`~sessionshare.core.request.Request`, and the
   request gets a lazy :class:`~sessionshare.core.session.Session` at
   ``environ["sessionshare.session"]``;
2. the side's ``on_request`` steps run on the store: a
   :class:`~sessionshare.core.reply.Reply` is sent as it is, a
   :class:`~sessionshare.core.side.PassThrough` calls the app (with
   ``REMOTE_USER`` set for a signed-in user, and removed otherwise: one the
   server or a proxy set is kept at ``environ["sessionshare.server_remote_user"]``
   only, so frameworks that trust ``REMOTE_USER`` see the middleware's user alone);
   A websocket handshake (a GET with ``Upgrade: websocket``, which
   flask-sock and the like take over) goes to the side's ``on_websocket``
   instead, as under ASGI: from a page of another origin it gets no session
   and no user, and is refused on a remote's protected path; what its app
   changes is persisted as a late change (nothing a cookie would carry);
3. when the app starts its response, :meth:`SessionMiddleware.on_response`
   persists the session -- the IdP's side may replace the answer (a sign-in
   with a hand-off pending) -- before the status line reaches the server;
   changes made while the body streams are persisted when it closes
   (:meth:`SessionMiddleware.on_close`), within what needs no new cookie;
4. a store outage anywhere is the side's 503: fail closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..core.lifecycle import Headers
from ..core.options import Role, read_environ
from ..core.reply import Reply
from ..core.request import Request
from ..core.session import ENVIRON_KEY, Session
from ..core.side import PassThrough, Side
from ..core.steps import run
from ..errors import ConfigurationError, StoreUnavailable
from ..store.base import SessionStore
from .environ import is_websocket_handshake, request_of, send_reply
from .manager import SessionManager

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SERVER_REMOTE_USER", "SessionMiddleware"]

#: Where a ``REMOTE_USER`` the server (or a proxy) set is kept, out of the frameworks' way.
SERVER_REMOTE_USER = "sessionshare.server_remote_user"

_M = TypeVar("_M", bound="SessionMiddleware")


class SessionMiddleware:
    """Base of :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    The subclasses document every argument, check them all against
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
        self.app = app
        self.side = side
        self.manager = SessionManager(store, lifecycle=side.lifecycle)
        # Does this shell do more than persist on the way out (the IdP's sign-in steps)?
        self._replaces_answers = (
            type(self).on_response is not SessionMiddleware.on_response
            or type(self).on_close is not SessionMiddleware.on_close
        )

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

    # -- per request ---------------------------------------------------------
    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        request = request_of(environ)
        websocket = is_websocket_handshake(environ)
        try:
            session = self.manager.open(environ)
            outcome = (self.side.on_websocket(request, session) if websocket
                       else self.side.on_request(request, session))
            if not isinstance(outcome, (Reply, PassThrough)):
                outcome = run(outcome, self.manager.store)  # the store work it asked for
            if isinstance(outcome, Reply):
                return send_reply(environ, start_response, outcome)
            if outcome.no_session:
                # A page of another origin: none of the user's session, not even read.
                session = Session(self.manager.read, None)
                environ[ENVIRON_KEY] = session
            user = self.side.remote_user(outcome.user)
            if "REMOTE_USER" in environ:
                # Set by the server or a proxy, not by us: Django's RemoteUserMiddleware
                # or Pyramid's RemoteUserSecurityPolicy would take an anonymous visitor for
                # that user. Kept under our namespace for an app that wants it.
                environ[SERVER_REMOTE_USER] = environ.pop("REMOTE_USER")
            if user is not None:
                environ["REMOTE_USER"] = user  # the WSGI convention frameworks already read

            if websocket:
                # The server hands the socket to the app: whatever its answer says, no
                # cookie reaches the page, so every change is a late one (as under ASGI).
                def persist_late(*_: object) -> Headers:
                    return self.manager.persist(session, late=True)

                return self.manager.run(self.app, environ, start_response, session,
                                        finish=persist_late, finish_late=persist_late)
            if not self._replaces_answers:
                # Only persisting to do on the way out: the manager's own path.
                return self.manager.run(self.app, environ, start_response, session)

            def finish(status: str, headers: Headers) -> Reply | Headers:
                return self.on_response(request, session, outcome, headers)

            def finish_late() -> Headers:
                return self.on_close(session)

            return self.manager.run(
                self.app, environ, start_response, session, finish=finish, finish_late=finish_late
            )
        except StoreUnavailable as exc:
            return send_reply(environ, start_response, self.side.unavailable(request, exc))

    def on_response(
        self, request: Request, session: Session, passed: PassThrough, headers: Headers
    ) -> Reply | Headers:
        """The app's answer is starting: persist the session; the headers to add.

        The IdP overrides this with its side's sign-in step, which may return a
        :class:`Reply` that replaces the app's answer.
        """
        return self.manager.persist(session)

    def on_close(self, session: Session) -> Headers:
        """The app's body is done: persist what changed while it streamed.

        The headers are out: the core refuses what would need a new cookie.
        The IdP overrides this with its side's step, which also refuses a sign-in.
        """
        return self.manager.persist(session, late=True)


def _is_asgi_app(app: object) -> bool:
    """True for an app whose call is a coroutine: ASGI, never WSGI."""
    # An instance's call is its class's __call__ (a Starlette app, its ExceptionMiddleware).
    call = next(
        (vars(base)["__call__"] for base in type(app).__mro__ if "__call__" in vars(base)), None
    )
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
