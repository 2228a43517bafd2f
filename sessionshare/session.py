"""The shared session and the per-request work around it.

:class:`Session` is what an app sees at ``environ["sessionshare.session"]``:
a ``MutableMapping`` of JSON values. It is lazy -- the store is touched only
when the app (or the middleware) first looks inside -- and it tracks what
changed, including nested changes such as ``session["cart"].append(x)``, so
that only changed top-level keys are written back, in one round trip, and an
unchanged session is never written.

:class:`SessionManager` does the per-request work both middlewares share:
find the session cookie, load the record (one round trip that also slides
the idle expiry), enforce the absolute lifetime, and persist the changes
*before the status line reaches the server* -- so the next request, often the
redirect that follows a login, always sees them -- and once more when the
response closes, for changes made while the body streamed.

Security properties kept here:

- A session id is 256 random bits, lives only in a cookie, and is never taken
  from a URL or logged. A cookie naming a session the store does not hold is
  ignored: a new session always gets a *fresh* id (no fixation through a
  planted cookie).
- The store key is a SHA-256 digest of the id: a dump of the store yields no
  usable cookie.
- ``regenerate()`` moves the data to a new id and deletes the old one;
  ``invalidate()`` deletes the session everywhere (single logout).

    manager = SessionManager(store, cookie=CookieSpec("sessionshare"))
    session = manager.open(environ)
    return manager.run(app, environ, start_response, session)
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, StoreUnavailable
from .store.base import SessionStore
from .web import CookieSpec

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "Session", "SessionManager", "new_session_id"]

log = logging.getLogger("sessionshare")

#: ``finish(status, headers) -> (status, headers, replacement body or None)``
Headers = list[tuple[str, str]]
Finish = Callable[[str, Headers], tuple[str, Headers, "list[bytes] | None"]]

ENVIRON_KEY = "sessionshare.session"
SESSION_ID_PATTERN = "[A-Za-z0-9_-]{43}"
_IMMUTABLE = (str, int, float, bool, type(None))
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def new_session_id() -> str:
    """256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def _encode(key: str, value: Any) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session[{key!r}]: only JSON values can be stored (str, int, float, bool, None, "
            f"list, dict with str keys); got {type(value).__name__}: {exc}"
        ) from None


class Session(MutableMapping[str, Any]):
    """One shared session: a lazy, change-tracking mapping of JSON values.

    Keys are strings; values anything ``json.dumps`` accepts (a non-JSON
    value raises ``TypeError`` at assignment). Metadata -- when the session
    was created and authenticated -- lives apart from app keys and is read
    through :attr:`created` and :attr:`authenticated_at`.
    """

    __slots__ = (
        "_deleted",
        "_exists",
        "_had_cookie",
        "_invalidate",
        "_loaded",
        "_manager",
        "_meta",
        "_meta_changed",
        "_regenerate",
        "_set",
        "_sid",
        "_stored",
        "_values",
    )

    def __init__(self, manager: SessionManager | None = None, sid: str | None = None) -> None:
        self._manager = manager
        self._sid = sid
        self._had_cookie = sid is not None
        self._loaded = manager is None or sid is None
        self._exists = False
        self._stored: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._meta: dict[str, int] = {}
        self._meta_changed = False
        self._regenerate = False
        self._invalidate = False

    # -- loading -----------------------------------------------------------
    def _ensure(self) -> None:
        if not self._loaded:
            assert self._manager is not None
            self._manager.load(self)

    def _adopt(self, sid: str | None, fields: dict[str, str], meta: dict[str, int]) -> None:
        """Take over a stored record (called by the manager)."""
        self._sid = sid
        self._exists = sid is not None
        self._stored = fields
        self._meta = meta
        self._values = {}
        self._set = set()
        self._deleted = set()
        self._loaded = True

    # -- the mapping -------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        self._ensure()
        if key in self._deleted or key not in self._stored:
            raise KeyError(key)
        value = self._values[key] = _loads(self._stored[key])
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        _encode(key, value)
        self._ensure()
        self._values[key] = value
        self._set.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._values.pop(key, None)
        self._set.discard(key)
        if key in self._stored:
            self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        if key in self._values:
            return True
        self._ensure()
        return key in self._stored and key not in self._deleted

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        yield from (k for k in self._stored if k not in self._deleted and k not in self._values)
        yield from list(self._values)

    def __len__(self) -> int:
        self._ensure()
        extra = sum(1 for k in self._values if k not in self._stored)
        return len(self._stored) - len(self._deleted) + extra

    def __repr__(self) -> str:
        # No id here (reprs end up in logs and tracebacks), and no store access.
        if not self._loaded:
            return "<Session unloaded>"
        return f"<Session {len(self)} keys{'' if self._exists else ' new'}>"

    # -- state -------------------------------------------------------------
    @property
    def new(self) -> bool:
        """True until the session exists in the store."""
        self._ensure()
        return not self._exists

    @property
    def accessed(self) -> bool:
        """True once anything looked inside (the store was read or a value set)."""
        return self._loaded and (self._had_cookie or bool(self._values))

    @property
    def modified(self) -> bool:
        """True when persisting would write something."""
        if not self._loaded:
            return False
        changed, deleted = self._changes()
        return bool(
            changed or deleted or self._meta_changed or self._regenerate or self._invalidate
        )

    @property
    def created(self) -> float | None:
        """When the session was first stored (seconds since the epoch), or None if new."""
        self._ensure()
        return self._meta.get("c")

    @property
    def authenticated_at(self) -> float | None:
        """When the IdP last signed a user into this session, or None."""
        self._ensure()
        return self._meta.get("a")

    def mark_authenticated(self, now: float) -> None:
        """Record the time of a sign-in (the IdP middleware calls this)."""
        self._ensure()
        self._meta["a"] = int(now)
        self._meta_changed = True

    def regenerate(self) -> None:
        """Move the data to a fresh id when the response is persisted; the old id dies."""
        self._ensure()
        self._regenerate = True

    def invalidate(self) -> None:
        """Delete the session from the store (everywhere) and empty it."""
        self._ensure()
        self._invalidate = True
        self._values = {}
        self._set = set()
        self._deleted = set(self._stored)
        self._meta = {}
        self._meta_changed = False

    @property
    def invalidated(self) -> bool:
        """True after :meth:`invalidate` until the response is persisted."""
        return self._invalidate

    def _changes(self) -> tuple[dict[str, str], list[str]]:
        changed: dict[str, str] = {}
        for key, value in self._values.items():
            # An immutable value that was only read cannot have changed; a list
            # or dict may have been mutated in place, so compare its encoding.
            if key not in self._set and isinstance(value, _IMMUTABLE):
                continue
            text = _encode(key, value)
            if self._stored.get(key) != text:
                changed[key] = text
        deleted = [key for key in self._deleted if key in self._stored]
        return changed, deleted

    def _mark_persisted(self, changed: dict[str, str], deleted: list[str]) -> None:
        self._stored.update(changed)
        for key in deleted:
            self._stored.pop(key, None)
        self._set = set()
        self._deleted = set()
        self._meta_changed = False
        self._regenerate = False


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
        """The store key of a session id: a digest, hash-tagged for Redis Cluster."""
        return f"{self.key_prefix}s:{{{hashlib.sha256(sid.encode('ascii')).hexdigest()}}}"

    def ticket_key(self, digest: str) -> str:
        return f"{self.key_prefix}t:{digest}"

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
        session = Session(self, self.session_id_from(environ))
        environ[ENVIRON_KEY] = session
        return session

    def load(self, session: Session) -> None:
        """Read the session named by its cookie (one round trip), enforcing lifetimes."""
        sid = session._sid
        if sid is None:
            session._adopt(None, {}, {})
            return
        record = self.store.load(self.session_key(sid), self.idle_timeout)
        if record is not None and record.meta.get("c", 0) + self.absolute_timeout <= self.clock():
            self.store.delete(self.session_key(sid))
            record = None
        if record is None:
            session._adopt(None, {}, {})
        else:
            session._adopt(sid, record.fields, record.meta)

    def adopt(self, session: Session, sid: str) -> bool:
        """Point ``session`` at the stored session ``sid`` (a completed hand-off).

        Returns False when no such session exists. The caller sets the cookie.
        """
        session._sid = sid
        session._loaded = False
        self.load(session)
        return session._exists

    # -- response side -----------------------------------------------------
    def _ttl(self, meta: dict[str, int], now: float) -> int:
        remaining = meta.get("c", int(now)) + self.absolute_timeout - now
        return max(1, int(min(self.idle_timeout, remaining)))

    def persist(self, session: Session) -> list[tuple[str, str]]:
        """Write what changed; return the headers (cookie, ``Vary``) the response needs."""
        if not session._loaded:
            return []
        headers: list[tuple[str, str]] = [("Vary", "Cookie")]
        if session._invalidate:
            if session._exists and session._sid is not None:
                self.store.delete(self.session_key(session._sid))
            # Values (and metadata) written after invalidate() start a new session.
            fresh, meta, meta_changed = session._values, session._meta, session._meta_changed
            session._adopt(None, {}, meta)
            session._invalidate = session._regenerate = False
            session._meta_changed = meta_changed
            if not fresh:
                if session._had_cookie:
                    headers.append(("Set-Cookie", self.cookie.clear()))
                session._had_cookie = False
                return headers
            session._values, session._set = fresh, set(fresh)
        changed, deleted = session._changes()
        now = self.clock()
        if session._exists and session._sid is not None and not session._regenerate:
            if not (changed or deleted or session._meta_changed):
                return headers
            written = self.store.save(
                self.session_key(session._sid),
                changed=changed,
                deleted=deleted,
                meta=session._meta if session._meta_changed else None,
                ttl=self._ttl(session._meta, now),
            )
            if written:
                session._mark_persisted(changed, deleted)
                return headers
            # Logged out elsewhere while this request ran: stay logged out.
            session._adopt(None, {}, {})
            headers.append(("Set-Cookie", self.cookie.clear()))
            return headers
        # A new session, or one moving to a fresh id: write everything under a new id.
        meta_changed = session._meta_changed
        session._mark_persisted(changed, deleted)
        old = session._sid if session._exists else None
        if not session._stored and not meta_changed:
            # Nothing to keep: no store entry and no cookie for an empty session.
            if old is not None:
                self.store.delete(self.session_key(old))
            if session._had_cookie:
                headers.append(("Set-Cookie", self.cookie.clear()))
            session._adopt(None, {}, {})
            session._had_cookie = False
            return headers
        sid = new_session_id()
        meta = dict(session._meta)
        meta.setdefault("c", int(now))
        self.store.save(
            self.session_key(sid), changed=session._stored, meta=meta,
            ttl=self._ttl(meta, now), create=True,
        )
        if old is not None:
            self.store.delete(self.session_key(old))
        session._sid, session._exists, session._meta = sid, True, meta
        session._had_cookie = True
        headers.append(("Set-Cookie", self.cookie.set(sid)))
        return headers

    def current_id(self, session: Session) -> str | None:
        """The id of a stored session (for minting a ticket); None while it is new."""
        return session._sid if session._exists else None

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
            if session._loaded and session._exists and session.modified:
                try:
                    self._manager.persist(session)
                except StoreUnavailable:
                    # The response is already on its way; nothing to answer with.
                    log.warning("store_unavailable phase=close")
