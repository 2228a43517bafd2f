"""The WSGI shell: one class that runs either side of the protocol around a WSGI app.

Both middlewares are this class with a different *side* (their role, as data), which
makes every decision. Per request the shell calls the side's three entry points in
order, whatever its role, and only translates:

1. the environ becomes a :class:`~sessionshare.core.request.Request`, with a lazy
   :class:`~sessionshare.core.session.Session` at ``environ["sessionshare.session"]``
   (read on the app's first look: one round trip);
2. ``on_request``: a :class:`~sessionshare.core.reply.Reply` is sent as it is; a
   :class:`~sessionshare.core.side.PassThrough` calls the app with ``REMOTE_USER``
   set for a signed-in user only (see :data:`SERVER_REMOTE_USER`) and the query
   string the core hands on. A websocket handshake (flask-sock and the like take
   it over) goes through it too, as under ASGI: a page of another origin gets no
   session. A ``Session.save()`` runs the side's ``on_save`` steps there and then;
3. ``on_response``, at the app's ``start_response``: the session is persisted
   before the status line reaches the server, or the IdP's side replaces the
   answer (a sign-in with a hand-off pending);
4. ``on_close``, when the server closes the body: what changed while it streamed;
5. a store outage before the answer starts is the side's 503: fail closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.guest import ORIGINAL_QUERY
from ..core.lifecycle import Headers, response_headers
from ..core.option_checks import session_store
from ..core.options import Shell
from ..core.reply import Reply
from ..core.request import Request
from ..core.session import ENVIRON_KEY, Session, state_of
from ..core.shell import ShellBase
from ..core.side import PassThrough, Side
from ..core.steps import run
from ..errors import ConfigurationError, StoreUnavailable
from ..store.base import SessionRecord, SessionStore
from .environ import reply_body, request_of, send_reply

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ORIGINAL_QUERY", "SERVER_REMOTE_USER", "SessionMiddleware"]

#: Where a ``REMOTE_USER`` the server (or a proxy) set is kept, out of the frameworks' way.
SERVER_REMOTE_USER = "sessionshare.server_remote_user"

class SessionMiddleware(ShellBase):
    """The WSGI shell of :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    :param app: the WSGI application to wrap.
    :param store: the thread store the session lives in.
    :param side: the protocol's side this app plays (its role, as data).
    """

    shell: ClassVar[Shell] = "wsgi"

    def __init__(self, app: WSGIApplication, *, store: SessionStore, side: Side) -> None:
        problem = session_store("store", store)
        if problem is not None:
            raise ConfigurationError(problem)
        self._wrap(app, store, side)

    def _wrap(self, app: WSGIApplication, store: SessionStore, side: Side) -> None:
        if _is_asgi_app(app):
            # Else the first request would fail with a TypeError about positional arguments.
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
        self.store = store
        self.lifecycle = side.lifecycle

    def read(self, sid: str) -> SessionRecord | None:
        """The live session ``sid`` (one round trip), or None: every session's loader."""
        return self.lifecycle.read_on(sid, self.store)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        request = request_of(environ)
        side = self.side
        try:
            # direct: the loader reads on self.store, the store the steps run on.
            session = environ[ENVIRON_KEY] = self.lifecycle.open(
                request.cookies, self.read, direct=True)
            outcome = side.on_request(request, session)
            if not isinstance(outcome, PassThrough):  # (the common answer: one check)
                if not isinstance(outcome, Reply):
                    outcome = run(outcome, self.store)  # the store work it asked for
                if isinstance(outcome, Reply):
                    return send_reply(environ, start_response, outcome)
            if outcome.no_session:
                # A page of another origin: none of the user's session, not even read.
                session = environ[ENVIRON_KEY] = self.lifecycle.open(None, self.read)
            user = side.remote_user(outcome.user)
            if "REMOTE_USER" in environ:
                # Set by the server or a proxy: Django's RemoteUserMiddleware or Pyramid's
                # RemoteUserSecurityPolicy would take an anonymous visitor for that user.
                environ[SERVER_REMOTE_USER] = environ.pop("REMOTE_USER")
            if user is not None:
                environ["REMOTE_USER"] = user  # the WSGI convention frameworks already read
            if outcome.query is not None:
                environ[ORIGINAL_QUERY] = environ.get("QUERY_STRING", "")
                environ["QUERY_STRING"] = outcome.query
            exchange = _Exchange(side, self.store, environ, start_response, request, session,
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


class _Exchange:
    """One request's way out through WSGI: the app's ``start_response``, then its body.

    The session is persisted once, at the app's first ``start_response``. A later
    call (PEP 3333's error page, with ``exc_info``) gets the same session headers,
    not a second persist -- that would find nothing to write and drop the cookie
    (at the IdP, rotate the id again) --, and a replacing Reply stays the answer.
    A store failure while persisting is raised from :meth:`call` before anything
    reached the server: the shell answers 503.
    """

    __slots__ = ("environ", "failed", "passed", "replacement", "request", "server_start",
                 "session", "settled", "side", "store")

    def __init__(
        self,
        side: Side,
        store: SessionStore,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request: Request,
        session: Session,
        passed: PassThrough,
    ) -> None:
        self.side = side
        self.store = store
        self.environ = environ
        self.server_start = start_response
        self.request = request
        self.session = session
        self.passed = passed
        self.failed: StoreUnavailable | None = None
        self.replacement: list[bytes] | None = None
        #: What the first start_response settled: a replacing Reply's status line and
        #: headers, or (None, the headers to add to the app's own).
        self.settled: tuple[str | None, Headers] | None = None
        state_of(session).saver = self.save_now

    def save_now(self) -> None:
        """The app's ``Session.save()``: the side's steps for it, on the store, now."""
        saving = self.side.on_save(self.request, self.session, self.passed,
                                   late=self.settled is not None)
        self.passed = run(saving, self.store)

    def call(self, app: WSGIApplication) -> Iterable[bytes]:
        """Call ``app`` with this exchange's ``start_response``; the body to hand back."""
        app_iter = app(self.environ, self.start_response)
        if self.settled is None and self.failed is None:
            # A generator app calls start_response on its first step: take that
            # step here so a store failure can still become a clean 503.
            app_iter = self._prime(app_iter)
        if self.failed is not None or self.replacement is not None:
            _close(app_iter)
            if self.failed is not None:
                raise self.failed
            assert self.replacement is not None
            return self.replacement
        return _ClosingBody(app_iter, self)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        """The ``start_response`` the app calls: persist first, then the server's."""
        if self.failed is not None:
            raise self.failed  # the write failed: the 503 stands, whatever the app says now
        if self.settled is None:
            try:
                self.settled = self._settle(headers)
            except StoreUnavailable as exc:
                self.failed = exc
                raise
        reply_status, added = self.settled
        if reply_status is not None:
            return self.server_start(reply_status, added, exc_info)  # the Reply stands
        return self.server_start(status, response_headers(headers, added), exc_info)

    def _settle(self, headers: Headers) -> tuple[str | None, Headers]:
        answer = self.side.on_response(self.request, self.session, self.passed, headers)
        if isinstance(answer, list):
            return None, answer  # the common answer: the headers to add
        if not isinstance(answer, Reply):
            answer = run(answer, self.store)  # the store work it asked for
        if isinstance(answer, Reply):
            self.replacement = reply_body(self.environ, answer)
            return answer.status_line, list(answer.headers)
        return None, answer

    def close(self) -> None:
        """The body is done: what changed while it streamed (a late failure is the side's)."""
        closing = self.side.on_close(self.session)
        if not isinstance(closing, list):
            run(closing, self.store)

    def _prime(self, app_iter: Iterable[bytes]) -> Iterable[bytes]:
        iterator = iter(app_iter)
        try:
            first = next(iterator)
        except StopIteration:
            return _Chained([], app_iter)
        except StoreUnavailable:
            if self.failed is None:
                raise
            return app_iter
        return _Chained([first], app_iter, iterator)


class _Chained:
    """Already-taken chunks, then the rest of the app's iterable; closes the original."""

    __slots__ = ("_app_iter", "_head", "_rest")

    def __init__(
        self, head: list[bytes], app_iter: Iterable[bytes], rest: Iterator[bytes] | None = None
    ) -> None:
        self._head, self._app_iter, self._rest = head, app_iter, rest

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        if self._rest is not None:
            yield from self._rest

    def close(self) -> None:
        _close(self._app_iter)


def _close(app_iter: Iterable[bytes]) -> None:
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()


class _ClosingBody:
    """Wraps the app's body; when the server closes it, the exchange's late persist."""

    __slots__ = ("_app_iter", "_exchange")

    def __init__(self, app_iter: Iterable[bytes], exchange: _Exchange) -> None:
        self._app_iter = app_iter
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        try:
            _close(self._app_iter)
        finally:
            self._exchange.close()
