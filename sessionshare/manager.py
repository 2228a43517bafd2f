"""The per-request work around the shared session, for both middlewares.

:class:`SessionManager` finds the session cookie, gives the request a lazy
:class:`~sessionshare.session.Session` that reads through
:meth:`SessionManager.read` (one round trip that also slides the idle
expiry; the absolute lifetime is enforced there), and persists *before the
status line reaches the server* -- so the next request, often the redirect
that follows a login, always sees the write -- and once more when the
response closes, for changes made while the body streamed.

The session decides what to write (its :class:`~sessionshare.session.WritePlan`);
this module only runs the plan against the store, picks the TTL from its
timeouts, and turns the plan's cookie into a ``Set-Cookie`` header. It reads
nothing of the session but its public state.

Security properties kept here:

- A cookie naming a session the store does not hold is ignored: a new
  session always gets a *fresh* id (no fixation through a planted cookie).
- The store key is a SHA-256 digest of the id: a dump of the store yields no
  usable cookie.
- ``regenerate()`` moves the data to a new id and deletes the old one;
  ``invalidate()`` deletes the session everywhere (single logout), and a
  session written to a store that no longer holds it (logged out elsewhere
  meanwhile) is not brought back.

    manager = SessionManager(store, cookie=CookieSpec("sessionshare"))
    session = manager.open(environ)
    return manager.run(app, environ, start_response, session)
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, StoreUnavailable
from .session import ENVIRON_KEY, SESSION_ID_PATTERN, Session, lifetime_start
from .store.base import SessionRecord, SessionStore
from .web import CookieSpec

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Finish", "SessionManager"]

log = logging.getLogger("sessionshare")

#: ``finish(status, headers) -> (status, headers, replacement body or None)``
Headers = list[tuple[str, str]]
Finish = Callable[[str, Headers], tuple[str, Headers, "list[bytes] | None"]]


class SessionManager:
    """Cookie in, lazy load, persist: the session work of one app, per request."""

    def __init__(
        self,
        store: SessionStore,
        *,
        cookie: CookieSpec,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 8 * 60 * 60,
        key_prefix: str = "sessionshare:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigurationError(
                "store must implement sessionshare.store.SessionStore "
                "(e.g. RedisStore.from_url(...) or MemoryStore())"
            )
        if idle_timeout <= 0 or absolute_timeout <= 0:
            raise ConfigurationError("idle_timeout and absolute_timeout must be positive seconds")
        self.store = store
        self.cookie = cookie
        self.idle_timeout = int(idle_timeout)
        self.absolute_timeout = int(absolute_timeout)
        self.key_prefix = key_prefix
        self.clock = clock
        self._cookie_re = cookie.pattern(SESSION_ID_PATTERN)
        self._cookie_marker = cookie.name + "="

    # -- names -------------------------------------------------------------
    def session_key(self, sid: str) -> str:
        """The store key of a session id: a digest, so a store dump yields no cookie.

        The braces are part of the stored name (kept for compatibility): a
        session is one key, so no command ever spans two cluster slots anyway.
        """
        return f"{self.key_prefix}s:{{{hashlib.sha256(sid.encode('ascii')).hexdigest()}}}"

    # -- request side ------------------------------------------------------
    def session_id_from(self, environ: WSGIEnvironment) -> str | None:
        """The well-formed session id in the request's cookie, if any."""
        header = environ.get("HTTP_COOKIE")
        if not header or self._cookie_marker not in header:
            return None
        match = self._cookie_re.search(header)
        return (match.group(1) or match.group(2)) if match else None

    def open(self, environ: WSGIEnvironment) -> Session:
        """A lazy session for this request, published at ``environ[ENVIRON_KEY]``."""
        session = Session(self.read, self.session_id_from(environ))
        environ[ENVIRON_KEY] = session
        return session

    def read(self, sid: str) -> SessionRecord | None:
        """The live session ``sid`` (one round trip that slides its idle expiry), or None.

        A session past its absolute lifetime is deleted here, so no app sees
        it again. This is the loader every :class:`Session` of this manager reads through.
        """
        key = self.session_key(sid)
        record = self.store.load(key, self.idle_timeout)
        if record is not None and (
            lifetime_start(record.meta, 0) + self.absolute_timeout <= self.clock()
        ):
            self.store.delete(key)
            return None
        return record

    def adopt(self, session: Session, sid: str) -> bool:
        """Point ``session`` at the stored session ``sid`` (a completed hand-off).

        Returns False when no such session exists. The caller sets the cookie.
        """
        return session.switch_to(sid)

    # -- response side -----------------------------------------------------
    def _ttl(self, started: int, now: float) -> int:
        remaining = started + self.absolute_timeout - now
        return max(1, int(min(self.idle_timeout, remaining)))

    def persist(self, session: Session) -> list[tuple[str, str]]:
        """Run the session's write plan; return the headers (cookie, ``Vary``) it needs."""
        if not session.loaded:
            return []
        now = self.clock()
        plan = session.write_plan(now)
        headers: list[tuple[str, str]] = [("Vary", "Cookie")]
        if plan.unchanged:
            return headers
        if plan.drop is not None and plan.drop_first:
            self.store.delete(self.session_key(plan.drop))
        if plan.save_to is not None:
            written = self.store.save(
                self.session_key(plan.save_to), changed=plan.changed, deleted=plan.deleted,
                meta=plan.meta, ttl=self._ttl(plan.lifetime_start, now), create=plan.create,
            )
            if not written:
                # Logged out elsewhere while this request ran: stay logged out.
                session.mark_gone()
                headers.append(("Set-Cookie", self.cookie.clear()))
                return headers
        if plan.drop is not None and not plan.drop_first:
            self.store.delete(self.session_key(plan.drop))
        session.mark_written(plan)
        if plan.cookie == "set":
            assert plan.save_to is not None
            headers.append(("Set-Cookie", self.cookie.set(plan.save_to)))
        elif plan.cookie == "clear":
            headers.append(("Set-Cookie", self.cookie.clear()))
        return headers

    def current_id(self, session: Session) -> str | None:
        """The id of a stored session (for minting a ticket); None while it is new."""
        return session.stored_id

    def run(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        session: Session,
        *,
        finish: Finish | None = None,
    ) -> Iterable[bytes]:
        """Call ``app``, persisting ``session`` before its status line goes out.

        ``finish(status, headers)``, when given, replaces the plain persist: it
        persists and returns ``(status, headers, body)``; a ``body`` that is not
        None replaces the app's response (the app's iterable is closed).

        A store failure while persisting propagates as ``StoreUnavailable``
        before anything reached the server, so the caller can answer 503.
        """
        failed: list[StoreUnavailable] = []
        started: list[bool] = []
        replacement: list[list[bytes]] = []

        def persisting_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            try:
                if finish is None:
                    headers = [*headers, *self.persist(session)]
                else:
                    status, headers, body = finish(status, headers)
                    if body is not None:
                        replacement.append(body)
            except StoreUnavailable as exc:
                failed.append(exc)
                raise
            started.append(True)
            return start_response(status, headers, exc_info)

        app_iter = app(environ, persisting_start_response)
        if not started and not failed:
            # A generator app calls start_response on its first step: take that
            # step here so a store failure can still become a clean 503.
            app_iter = _prime(app_iter, failed)
        if failed or replacement:
            _close(app_iter)
            if failed:
                raise failed[0]
            return replacement[0]
        return _PersistOnClose(app_iter, self, session)


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
    """Wraps the app's body; persists changes made while it streamed, on close."""

    __slots__ = ("_app_iter", "_manager", "_session")

    def __init__(self, app_iter: Iterable[bytes], manager: SessionManager, session: Session):
        self._app_iter = app_iter
        self._manager = manager
        self._session = session

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        try:
            _close(self._app_iter)
        finally:
            session = self._session
            # Only a stored session: the cookie of a new one can no longer be sent.
            if session.loaded and not session.new and session.modified:
                try:
                    self._manager.persist(session)
                except StoreUnavailable:
                    # The response is already on its way; nothing to answer with.
                    log.warning("store_unavailable phase=close")
