"""The per-request work around the shared session, for the WSGI middlewares.

:class:`SessionManager` joins a store to this app's
:class:`~sessionshare.core.lifecycle.Lifecycle` (cookie, key names,
lifetimes) and to WSGI: it gives each request a lazy
:class:`~sessionshare.core.session.Session` at ``environ["sessionshare.session"]``
that reads through the lifecycle's read step, and it persists *before the
status line reaches the server* -- so the next request, often the redirect
that follows a login, always sees the write -- and once more when the
response closes, for changes made while the body streamed.

What to read and write, and which cookie to send, is decided in
``core/lifecycle.py`` (and the session's own write plan); this module only
runs those steps on the thread store and hooks them into WSGI's
``start_response``.

    manager = SessionManager(store, lifecycle=side.lifecycle)
    session = manager.open(environ)
    return manager.run(app, environ, start_response, session)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.lifecycle import Headers, Lifecycle
from ..core.reply import Reply
from ..core.session import ENVIRON_KEY, Session
from ..core.steps import Steps, run
from ..errors import ConfigurationError, StoreUnavailable
from ..store.base import SessionRecord, SessionStore
from .environ import reply_body

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Finish", "FinishLate", "SessionManager"]

log = logging.getLogger("sessionshare")

#: ``finish(status, headers)``: persist on the way out; the headers to add, or
#: the :class:`~sessionshare.core.reply.Reply` that replaces the app's answer.
Finish = Callable[[str, Headers], "Reply | Headers"]
#: ``finish_late()``: persist what changed while the body streamed (headers long gone).
FinishLate = Callable[[], object]


class SessionManager:
    """Cookie in, lazy load, persist: the session work of one WSGI app, per request."""

    def __init__(self, store: SessionStore, *, lifecycle: Lifecycle) -> None:
        """Over this app's ``lifecycle`` (a side's: cookie, key names, lifetimes)."""
        if not isinstance(store, SessionStore):
            raise ConfigurationError(
                "store must implement sessionshare.store.SessionStore "
                "(e.g. RedisStore.from_url(...) or MemoryStore())"
            )
        self.store = store
        self.lifecycle = lifecycle
        self.cookie = lifecycle.cookie
        self.idle_timeout = lifecycle.idle_timeout
        self.key_prefix = lifecycle.key_prefix
        self.clock = lifecycle.clock

    def session_key(self, sid: str) -> str:
        """The store key of a session id (a digest: a store dump yields no cookie)."""
        return self.lifecycle.session_key(sid)

    def steps(self, steps: Steps[Any]) -> Any:
        """Run protocol steps on this manager's store; their result."""
        return run(steps, self.store)

    # -- request side ------------------------------------------------------
    def open(self, environ: WSGIEnvironment) -> Session:
        """A lazy session for this request, published at ``environ[ENVIRON_KEY]``."""
        sid = self.lifecycle.session_id_in(environ.get("HTTP_COOKIE"))
        session = Session(self.read, sid)
        environ[ENVIRON_KEY] = session
        return session

    def read(self, sid: str) -> SessionRecord | None:
        """The live session ``sid`` (one round trip), or None: every session's loader."""
        return run(self.lifecycle.read(sid), self.store)

    # -- response side -----------------------------------------------------
    def persist(self, session: Session, *, late: bool = False) -> Headers:
        """Run the session's write plan; return the headers (cookie, ``Vary``) it needs.

        ``late``: the response's headers are out already; the lifecycle then
        refuses what would need a new cookie (see :meth:`Lifecycle.settle`).
        """
        settled = self.lifecycle.settle(session, late=late)
        if isinstance(settled, list):
            return settled  # nothing to write: no step to drive (the common case)
        return list(run(self.lifecycle.write(session, settled), self.store))

    def run(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        session: Session,
        *,
        finish: Finish | None = None,
        finish_late: FinishLate | None = None,
    ) -> Iterable[bytes]:
        """Call ``app``, persisting ``session`` before its status line goes out.

        ``finish(status, headers)``, when given, replaces the plain persist: it
        persists and returns the headers to add, or a :class:`Reply` that is sent
        in place of the app's response (the app's iterable is closed).
        ``finish_late()``, when given, replaces the plain late persist when the
        response closes (changes made while the body streamed).

        The session is persisted once, at the app's first ``start_response``. A
        later call -- PEP 3333 lets an app replace its headers after an error,
        with ``exc_info`` -- gets the session's headers (its cookie, ``Vary``)
        too, and a replacing :class:`Reply` stays the answer.

        A store failure while persisting propagates as ``StoreUnavailable``
        before anything reached the server, so the caller can answer 503.
        """
        failed: list[StoreUnavailable] = []
        replacement: list[list[bytes]] = []
        # What the first start_response settled: a replacing Reply's status line and
        # headers, or (None, the headers to add to the app's own).
        settled: list[tuple[str | None, Headers]] = []

        def settle(status: str, headers: Headers) -> tuple[str | None, Headers]:
            if finish is None:
                return None, self.persist(session)
            answer = finish(status, headers)
            if isinstance(answer, Reply):
                replacement.append(reply_body(environ, answer))
                return answer.status_line, list(answer.headers)
            return None, answer

        def persisting_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            if failed:
                raise failed[0]  # the write failed: the 503 stands, whatever the app says now
            if not settled:
                try:
                    settled.append(settle(status, headers))
                except StoreUnavailable as exc:
                    failed.append(exc)
                    raise
            # A later call (an error page, with exc_info) is not persisted again: that would
            # find nothing left to write and drop the cookie the first headers carried (at
            # the IdP, rotate the id once more). It gets the same session headers instead.
            reply_status, added = settled[0]
            if reply_status is not None:
                return start_response(reply_status, added, exc_info)  # the Reply stands
            return start_response(status, [*headers, *added], exc_info)

        app_iter = app(environ, persisting_start_response)
        if not settled and not failed:
            # A generator app calls start_response on its first step: take that
            # step here so a store failure can still become a clean 503.
            app_iter = _prime(app_iter, failed)
        if failed or replacement:
            _close(app_iter)
            if failed:
                raise failed[0]
            return replacement[0]
        return _PersistOnClose(app_iter, self, session, finish_late)


def _prime(app_iter: Iterable[bytes], failed: list[StoreUnavailable]) -> Iterable[bytes]:
    iterator = iter(app_iter)
    try:
        first = next(iterator)
    except StopIteration:
        return _Chained([], app_iter)
    except StoreUnavailable:
        if not failed:
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


class _PersistOnClose:
    """Wraps the app's body; persists changes made while it streamed, on close.

    The headers are out by then: the persist is a late one, which the core
    keeps from needing a new cookie (no new id, no new session).
    """

    __slots__ = ("_app_iter", "_finish_late", "_manager", "_session")

    def __init__(
        self, app_iter: Iterable[bytes], manager: SessionManager, session: Session,
        finish_late: FinishLate | None,
    ) -> None:
        self._app_iter = app_iter
        self._manager = manager
        self._session = session
        self._finish_late = finish_late

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        try:
            _close(self._app_iter)
        finally:
            session = self._session
            if session.modified:  # nothing changed while streaming: no step to drive
                try:
                    if self._finish_late is None:
                        self._manager.persist(session, late=True)
                    else:
                        self._finish_late()
                except StoreUnavailable:
                    # The response is already on its way; nothing to answer with.
                    self._manager.lifecycle.events.emit(
                        logging.WARNING, "store_unavailable", {"phase": "close"},
                        "store_unavailable phase=close",
                    )
