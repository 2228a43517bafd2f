"""An in-process store: for tests, the demo and single-process apps.

Thread-safe (one lock), TTLs honoured through an injectable clock so tests
can expire a session without sleeping. It is *not* shared between
processes: two apps behind separate servers need Redis (or another shared
backend) to share a session. Tests look inside through :meth:`MemoryStore.sessions`
and :meth:`MemoryStore.tickets`, never through its private dicts.

    store = MemoryStore(clock=FakeClock())
    (key,) = store.sessions()                 # the one stored session's key
    assert store.sessions()[key].fields == {"cart": "[1]"}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NamedTuple

from .base import (
    MARKED_BEFORE,
    MAX_HOPS,
    NOT_HELD,
    RETIRED,
    SessionRecord,
    entry_digest,
    entry_expiry,
    member_of,
    owners_of,
)

__all__ = ["MemoryStore", "StoredSession", "StoredTicket"]

_SWEEP_EVERY = 1024


class StoredSession(NamedTuple):
    """A session record as :class:`MemoryStore` holds it."""

    #: When the record expires, on the store's clock.
    expires: float
    #: App keys -> JSON text, exactly as saved.
    fields: dict[str, str]
    #: The library's metadata fields.
    meta: dict[str, int]


class StoredTicket(NamedTuple):
    """A ticket as :class:`MemoryStore` holds it."""

    #: When the ticket expires, on the store's clock.
    expires: float
    #: The stored value (the wrapped session id).
    value: str


class MemoryStore:
    """A dict of records with expiry times, behind a lock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[float, dict[str, str], dict[str, int]]] = {}
        self._tickets: dict[str, tuple[float, str]] = {}
        # Taken tickets, until their own expiry: (expires, the redemption's nonce, value).
        self._spent: dict[str, tuple[float, str | None, str]] = {}
        self._identities: dict[str, str] = {}
        self._once: dict[str, float] = {}  # a mark's once key -> when it expires
        self._claims: dict[str, tuple[float, str]] = {}  # state claim -> (expires, owner)
        self._indexes: dict[str, tuple[float, dict[str, str]]] = {}  # key -> (expires, entries)
        self._moved: dict[str, str] = {}  # a marker's key -> the key its session moved to
        # A census (see lua.CENSUS): key -> {member: when to check it next}, and sweep locks.
        self._census: dict[str, dict[str, float]] = {}
        self._census_locks: dict[str, float] = {}
        self._writes = 0

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        with self._lock:
            now = self._clock()
            entry = self._sessions.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._sessions[key]
                return None
            self._sessions[key] = (now + idle_ttl, entry[1], entry[2])
            return SessionRecord(dict(entry[1]), dict(entry[2]))

    def _held(
        self, key: str, now: float
    ) -> tuple[float, dict[str, str], dict[str, int]] | None:
        """The record at ``key`` unless it expired; with the lock held."""
        entry = self._sessions.get(key)
        return entry if entry is not None and entry[0] > now else None

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        with self._lock:
            now = self._clock()
            entry = self._held(key, now)
            if entry is not None and RETIRED in entry[2]:
                return False  # moved: a write here would reach nobody
            if entry is None:
                if not create:
                    self._sessions.pop(key, None)
                    return False
                if ttl == 0:
                    raise ValueError("a session is created with a ttl")
                entry = (0.0, {}, {})
            fields, stored_meta = entry[1], entry[2]
            fields.update(changed)
            for name in deleted:
                fields.pop(name, None)
            if meta:
                stored_meta.update(meta)
            self._sessions[key] = (entry[0] if ttl == 0 else now + ttl, fields, stored_meta)
            self._maybe_sweep(now)
            return True

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int, once: str | None = None,
             once_ttl: int = 0) -> SessionRecord | None:
        with self._lock:
            now = self._clock()
            entry = self._sessions.get(key)
            if entry is None or entry[0] <= now:
                self._sessions.pop(key, None)
                return None
            before = SessionRecord(dict(entry[1]), dict(entry[2]))
            if RETIRED in entry[2]:
                return before  # moved: seen (a marker, no data), not written, no once key
            if once is not None:
                held = self._once.get(once)
                if held is not None and held > now:
                    return MARKED_BEFORE
                self._once[once] = now + max(int(once_ttl), 1)
                self._maybe_sweep(now)
            entry[2].update(meta)
            self._sessions[key] = (now + idle_ttl, entry[1], entry[2])
            return before

    def move(self, key: str, new_key: str, *, changed: Mapping[str, str],
             deleted: Collection[str] = (), meta: Mapping[str, int] | None = None, ttl: int,
             retired_at: int, grace: int) -> bool:
        with self._lock:
            now = self._clock()
            entry = self._held(key, now)
            if entry is not None and RETIRED in entry[2] and self._moved.get(key) == new_key:
                return True  # this very move, asked again: done already (as on Redis)
            if entry is None or RETIRED in entry[2] or self._held(new_key, now) is not None:
                return False
            fields, stored_meta = dict(entry[1]), dict(entry[2])
            fields.update(changed)
            for name in deleted:
                fields.pop(name, None)
            if meta:
                stored_meta.update(meta)
            self._sessions[new_key] = (now + ttl, fields, stored_meta)
            self._sessions[key] = (now + grace, {}, {RETIRED: int(retired_at)})
            self._moved[key] = new_key
            self._maybe_sweep(now)
            return True

    def delete(self, key: str, *, census: str | None = None) -> None:
        with self._lock:
            now = self._clock()
            next_key: str | None = key
            for _ in range(MAX_HOPS):
                if next_key is None:
                    break
                if census is not None:
                    self._census.get(census, {}).pop(member_of(next_key), None)
                entry = self._held(next_key, now)
                if entry is not None and RETIRED in entry[2] and next_key in self._moved:
                    # A marker holds no data: it stays its few seconds (as on Redis, where
                    # an end run again must still find where the session went).
                    next_key = self._moved[next_key]
                else:
                    self._sessions.pop(next_key, None)
                    self._moved.pop(next_key, None)
                    next_key = None

    def claim_state(self, key: str, owners: str | Sequence[str], ttl: int,
                    ticket: tuple[str, str, int] | None = None) -> bool:
        names = owners_of(owners)
        with self._lock:
            now = self._clock()
            held = self._claims.get(key)
            if held is None or held[0] <= now:
                self._claims[key] = (now + ttl, names[0])
            elif held[1] not in names:
                return False
            if ticket is not None and ticket[0] not in self._tickets:
                self._tickets[ticket[0]] = (now + ticket[2], ticket[1])
            self._maybe_sweep(now)
            return True

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        with self._lock:
            now = self._clock()
            entry = self._tickets.pop(key, None)
            if entry is None:
                spent = self._spent.get(key)
                if spent is None or spent[0] <= now:
                    return NOT_HELD
                # The redemption that took it, retried: the value again. Anyone else: a replay.
                return spent[2] if nonce is not None and spent[1] == nonce else None
            if entry[0] <= now:
                return None
            self._spent[key] = (entry[0], nonce, entry[1])
            return entry[1]

    def store_identity(self, key: str, candidate: str) -> str:
        with self._lock:
            return self._identities.setdefault(key, candidate)

    def peek(self, key: str) -> SessionRecord | None:
        with self._lock:
            entry = self._held(key, self._clock())
            return None if entry is None else SessionRecord(dict(entry[1]), dict(entry[2]))

    def index_put(
        self, key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str] = (),
        live: str | None = None, census: str | None = None,
    ) -> dict[str, str]:
        with self._lock:
            clock = self._clock()
            expires, entries = self._live_index(key, clock)
            session = None if live is None else self._held(live, clock)
            members = (None if census is None or live is None
                       else self._census.setdefault(census, {}))
            if live is None or (session is not None and RETIRED not in session[2]):
                entries[ref] = entry
                digest = entry_digest(entry)
                if members is not None and session is not None and digest is not None:
                    members[digest] = now + max(session[0] - clock, 0.0)
            gone = [entries.pop(name) for name in drop if name != ref and name in entries]
            for name, text in list(entries.items()):
                deadline = entry_expiry(text)
                if deadline is None or deadline <= now:
                    gone.append(entries.pop(name))
            if members is not None:
                for text in gone:
                    members.pop(entry_digest(text) or "", None)
            if entries:
                self._indexes[key] = (max(expires, clock + ttl), entries)
            else:
                self._indexes.pop(key, None)
            self._maybe_sweep(clock)
            return dict(entries)

    def index_read(self, key: str) -> dict[str, str]:
        with self._lock:
            return dict(self._live_index(key, self._clock())[1])

    def index_drop(self, key: str, refs: Collection[str]) -> None:
        with self._lock:
            expires, entries = self._live_index(key, self._clock())
            for name in refs:
                entries.pop(name, None)
            if entries:
                self._indexes[key] = (expires, entries)
            else:
                self._indexes.pop(key, None)

    def index_keys(self, prefix: str) -> list[str]:
        """Every live index key that starts with ``prefix`` (for a count of all sessions)."""
        with self._lock:
            clock = self._clock()
            return [key for key, (expires, _) in self._indexes.items()
                    if key.startswith(prefix) and expires > clock]

    def count_stored(self, keys: Collection[str]) -> int:
        """How many of ``keys`` hold a live session now (their expiry left as it is)."""
        with self._lock:
            clock = self._clock()
            return sum(1 for key in keys if self._held(key, clock) is not None)

    def census_read(self, key: str, *, lock: str, lock_ttl: float = 0) -> tuple[int, bool]:
        """As :meth:`RedisStore.census_read <sessionshare.store.RedisStore.census_read>`."""
        with self._lock:
            clock = self._clock()
            won = False
            if lock_ttl > 0 and self._census_locks.get(lock, 0.0) <= clock:
                self._census_locks[lock] = clock + lock_ttl
                won = True
            return len(self._census.get(key, {})), won

    def census_due(self, key: str, now: int, limit: int) -> list[str]:
        """As :meth:`RedisStore.census_due <sessionshare.store.RedisStore.census_due>`."""
        with self._lock:
            due = sorted((when, member) for member, when in self._census.get(key, {}).items()
                         if when <= now)
            return [member for _, member in due[:max(int(limit), 1)]]

    def census_check(self, key: str, sessions: Mapping[str, str], now: int) -> int:
        """As :meth:`RedisStore.census_check <sessionshare.store.RedisStore.census_check>`."""
        with self._lock:
            clock = self._clock()
            census = self._census.get(key, {})
            left = 0
            for member, session_key in sessions.items():
                if member not in census:
                    continue  # ended meanwhile: that end stands
                entry = self._held(session_key, clock)
                if entry is None:
                    del census[member]
                    left += 1
                else:
                    census[member] = now + (entry[0] - clock)
            return left

    def census_add(self, key: str, members: Collection[str], now: int) -> int:
        """As :meth:`RedisStore.census_add <sessionshare.store.RedisStore.census_add>`."""
        with self._lock:
            census = self._census.setdefault(key, {})
            missing = [member for member in members if member not in census]
            for member in missing:
                census[member] = float(now)
            return len(missing)

    def census_members(self, key: str) -> list[str]:
        """Every member of the census ``key``."""
        with self._lock:
            return list(self._census.get(key, {}))

    def _live_index(self, key: str, clock: float) -> tuple[float, dict[str, str]]:
        held = self._indexes.get(key)
        if held is None or held[0] <= clock:
            return 0.0, {}
        return held[0], dict(held[1])

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __len__(self) -> int:
        """Live sessions and tickets (for tests and the demo's status line)."""
        with self._lock:
            now = self._clock()
            return sum(1 for e in self._sessions.values() if e[0] > now) + sum(
                1 for e in self._tickets.values() if e[0] > now
            )

    def sessions(self) -> dict[str, StoredSession]:
        """Every session record held, by store key: an inspection helper for tests.

        The records are copies, taken under the lock and without sliding any
        expiry. Records past their expiry that nothing has dropped yet are
        included; compare ``expires`` with the clock to tell them apart.
        """
        with self._lock:
            return {
                key: StoredSession(expires, dict(fields), dict(meta))
                for key, (expires, fields, meta) in self._sessions.items()
            }

    def tickets(self) -> dict[str, StoredTicket]:
        """Every ticket held, by store key (same rules as :meth:`sessions`); nothing is taken."""
        with self._lock:
            return {key: StoredTicket(*entry) for key, entry in self._tickets.items()}

    def _maybe_sweep(self, now: float) -> None:
        # Expired records are dropped when read; a periodic sweep bounds memory
        # for records nobody reads again. Called with the lock held.
        self._writes += 1
        if self._writes % _SWEEP_EVERY:
            return
        self._sessions = {k: e for k, e in self._sessions.items() if e[0] > now}
        self._tickets = {k: e for k, e in self._tickets.items() if e[0] > now}
        self._spent = {k: spent for k, spent in self._spent.items() if spent[0] > now}
        self._claims = {k: c for k, c in self._claims.items() if c[0] > now}
        self._census_locks = {k: until for k, until in self._census_locks.items() if until > now}
        self._once = {k: expires for k, expires in self._once.items() if expires > now}
        self._indexes = {k: i for k, i in self._indexes.items() if i[0] > now}
        self._moved = {k: new for k, new in self._moved.items() if k in self._sessions}
