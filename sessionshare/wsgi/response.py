"""WSGI plumbing around the app's answer: the side's ``on_response`` before the status line,
its ``on_close`` when the body closes.

WSGI gives a middleware two moments to act on the way out: the app's call of
``start_response`` -- before anything reaches the server, so the session is
persisted there and the next request (often the redirect that follows a
login) always sees the write -- and the ``close()`` of the body the server
iterates, after the last byte, for what changed while the body streamed.
:class:`Exchange` is one request's pair of them: the ``start_response`` the app
gets, and the body it wraps. What to write, which cookie to send, whether the
IdP replaces the answer: all decided in the core's side, which this module only
runs on the thread store.

    exchange = Exchange(side, store, environ, start_response, request, session, passed)
    return exchange.call(app)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.lifecycle import Headers
from ..core.reply import Reply
from ..core.request import Request
from ..core.session import Session
from ..core.side import PassThrough, Side
from ..core.steps import run
from ..errors import StoreUnavailable
from ..store.base import SessionStore
from .environ import reply_body

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Exchange"]


class Exchange:
    """One request's way out through WSGI: the app's ``start_response``, then its body.

    The session is persisted once, at the app's first ``start_response``
    (:meth:`~sessionshare.core.side.Side.on_response`). A later call -- PEP 3333
    lets an app replace its headers after an error, with ``exc_info`` -- gets
    the session's headers (its cookie, ``Vary``) too, and a replacing
    :class:`~sessionshare.core.reply.Reply` stays the answer. A store failure
    while persisting propagates as ``StoreUnavailable`` from :meth:`call`,
    before anything reached the server, so the shell answers 503.
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
        # A later call (an error page, with exc_info) is not persisted again: that would
        # find nothing left to write and drop the cookie the first headers carried (at
        # the IdP, rotate the id once more). It gets the same session headers instead.
        reply_status, added = self.settled
        if reply_status is not None:
            return self.server_start(reply_status, added, exc_info)  # the Reply stands
        return self.server_start(status, [*headers, *added], exc_info)

    def _settle(self, headers: Headers) -> tuple[str | None, Headers]:
        answer = self.side.on_response(self.request, self.session, self.passed, headers)
        if not isinstance(answer, (Reply, list)):
            answer = run(answer, self.store)  # the store work it asked for
        if isinstance(answer, Reply):
            self.replacement = reply_body(self.environ, answer)
            return answer.status_line, list(answer.headers)
        return None, answer

    def close(self) -> None:
        """The body is done: what changed while it streamed (a late store failure is the
        side's to report)."""
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

    def __init__(self, app_iter: Iterable[bytes], exchange: Exchange) -> None:
        self._app_iter = app_iter
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        try:
            _close(self._app_iter)
        finally:
            self._exchange.close()
