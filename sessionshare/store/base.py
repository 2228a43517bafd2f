"""The session-store contract every backend implements.

A store keeps, under names the session layer chooses (digests, never raw
session ids or tickets):

- **sessions**: top-level key -> JSON text, plus a few integer metadata
  fields kept apart from app keys. ``save`` merges changed and deleted keys
  *atomically on the server*, so two apps writing different keys of one
  session at once both win (one key: the last write wins). ``move`` gives a
  session a new id in one step, only while it is live, and leaves a *marker*
  (:data:`RETIRED`) that ``delete`` follows: nothing a request in flight
  does brings back what a logout or a revocation ended.
- **claims** (a login state bound to the first browser that presented it),
  **tickets** (short-lived, single-use) and **the store's identity** (a
  random value that tells "this store lost a ticket" from "the ticket went
  to another store");
- **user indexes** (the IdP's per-user list of live sessions): *reference*
  -> entry text under one key per user; an entry is a JSON object whose
  integer ``"e"`` is when it expires (seconds, on the caller's clock).

Any backend failure is raised as :class:`~sessionshare.errors.StoreUnavailable`,
never as the driver's own exception. A new backend (Valkey, a database) needs
only the fourteen methods of :class:`SessionStore`; the store contract tests
in ``tests/test_store.py`` prove an implementation.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

__all__ = [
    "MARKED_BEFORE", "MAX_HOPS", "META_LIMIT", "NOT_HELD", "OPERATIONS", "PENDING", "RETIRED",
    "AsyncSessionStore", "SessionRecord", "SessionStore", "entry_digest", "entry_expiry",
    "forwarding", "is_well_formed", "member_of", "owners_of", "scan_json", "unescaped",
]

C = TypeVar("C", bound=type)

#: Metadata field of a *retired* id, one a move (a sign-in, ``regenerate()``) replaced a
#: moment ago: a marker holding no data, so that a request still running on the old id
#: does not clear or replace the cookie the move sets, and an end of the old id reaches
#: the new one. Part of the wire format: never rename it.
RETIRED = "r"
#: Metadata field of the key a cluster move *prepares* (the two keys sit in different
#: slots): no read returns it, no write goes into it; an end of the old id follows the
#: marker and deletes it, and the move's last step, finding it gone, creates nothing.
PENDING = "p"
#: How many moves deep an end follows markers (each move leaves one for a few seconds).
MAX_HOPS = 8


class SessionRecord(NamedTuple):
    """A stored session: app keys -> JSON text, and the library's metadata."""

    fields: dict[str, str]
    meta: dict[str, int]


#: ``json.loads``'s scanner (in C where there is one), for the record and its values on
#: every read: value and end index, or StopIteration/ValueError (not in typeshed).
scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

#: Field texts a store's read found to need no decoding, for the session that decodes the
#: record it answered (``core/sessionstate.py``): name -> the field's text. A field's text
#: is JSON inside the record's JSON, so each value is scanned twice on a read -- the
#: record's member, then the text -- and for a long string, a session's usual bulk, the
#: second scan is half the read's decoding. Where the record's member is a string with
#: nothing escaped inside (``recordtext.scan_record`` notes it), the text is that string
#: in quotes, and its value is the text without them. Each entry is the very text object
#: it speaks of and is used for that object only (text is immutable), so a stale or
#: foreign entry is never taken for another text. The session takes the whole mapping at
#: its next decode, and the next large live read replaces it; until then it keeps those
#: texts alive -- at most one record's long strings per thread or task, when nothing
#: decodes what was read (code of the app's own calling ``load``).
unescaped: ContextVar[dict[str, str] | None] = ContextVar(
    "sessionshare_unescaped", default=None)

#: What ``take_ticket`` may answer for a ticket the store never held (never issued into
#: *this* store, or expired), as opposed to None, one taken already: a remote then names
#: the most common set-up mistake -- an IdP and a remote on different stores -- instead
#: of calling it a replay. A store that cannot tell the two apart answers None for both.
NOT_HELD = ""

#: What ``mark`` answers when its ``once`` key exists already: a mark by that name ran
#: before, and nothing was written. Compare with ``is``: it is this very object.
MARKED_BEFORE = SessionRecord({}, {})


def owners_of(owners: str | Sequence[str]) -> tuple[str, ...]:
    """``claim_state``'s owners as a tuple (one owner may be given as a plain string)."""
    return (owners,) if isinstance(owners, str) else tuple(owners)


def is_well_formed(fields: object, meta: object) -> bool:
    """True when ``fields`` maps text to JSON text and ``meta`` text to numbers.

    A record is shared by every app of every version that writes to the store: a
    damaged one -- valid JSON of the wrong shape, such as ``{"d": [], "m": "x"}``
    -- must read as *no session*, not a 500 on every later visit.
    """
    if type(fields) is not dict or type(meta) is not dict:
        return False
    for key, value in fields.items():
        if type(key) is not str or type(value) is not str:
            return False
    for key, value in meta.items():
        if type(key) is not str or (type(value) is not int and type(value) is not float):
            return False
        # Times and flags: a number past any clock (JSON holds integers of any size, and
        # Python's json reads NaN and Infinity) would raise OverflowError wherever a time
        # is taken from now -- a 500 on every write of the session -- so it is damage too.
        if not -META_LIMIT <= value <= META_LIMIT:
            return False
    return True


#: The largest metadata value a record may hold: 2**53, past any time in seconds (and
#: every integer a double holds exactly, as Lua's cjson writes them).
META_LIMIT = 2**53


def entry_expiry(text: str) -> int | None:
    """The ``"e"`` of an index entry, or None when the text is no such entry."""
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    expires = entry.get("e") if isinstance(entry, dict) else None
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        return None
    return int(expires)


def entry_digest(text: str) -> str | None:
    """The ``"k"`` (the session's digest) of an index entry, or None."""
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    digest = entry.get("k") if isinstance(entry, dict) else None
    return digest if isinstance(digest, str) else None


def member_of(session_key: str) -> str:
    """A session's member in a census: its digest, the hash tag its key ends with."""
    return session_key[session_key.rindex("{") + 1:-1]


@runtime_checkable
class SessionStore(Protocol):
    """What the middlewares need from a store; all methods are thread-safe."""

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        """The session at ``key`` with its expiry slid to ``idle_ttl`` seconds, or None."""

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        """Merge ``changed`` / ``deleted`` (and ``meta``) into ``key`` and set its TTL.

        With ``create=False`` a session that no longer exists (logged out or
        expired meanwhile) is *not* brought back, and no write goes into a marker:
        nothing is written and the result is False. ``ttl=0`` keeps the record's
        expiry (an operator's change neither extends nor cuts a session's life).
        """

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int, once: str | None = None,
             once_ttl: int = 0) -> SessionRecord | None:
        """Merge ``meta`` into the live session at ``key``, slide its expiry to
        ``idle_ttl`` seconds and return the record *as it was before*, atomically;
        None when it is gone, a marker unchanged (nothing written either way). With
        ``once`` (a key in the same hash slot): create it for ``once_ttl`` seconds in
        the same step, or, when it exists, write nothing and answer
        :data:`MARKED_BEFORE`. Running it twice is harmless."""

    def move(self, key: str, new_key: str, *, changed: Mapping[str, str],
             deleted: Collection[str] = (), meta: Mapping[str, int] | None = None,
             ttl: int, retired_at: int, grace: int) -> bool:
        """Give the live session at ``key`` the new key ``new_key``, atomically: one step.

        Only while ``key`` holds a live session and ``new_key`` nothing:
        ``new_key`` gets the record as stored *now* (a write another request made
        meanwhile is kept) with the changes merged in, for ``ttl`` seconds; ``key``
        becomes a marker (``{RETIRED: retired_at}``, no data) naming ``new_key``
        for ``grace`` seconds. False (nothing written) when the session is gone,
        ended or moved already.
        """

    def delete(self, key: str, *, census: str | None = None) -> None:
        """End the session at ``key`` (no error if it is gone), and the session a marker
        there moved to (a few moves deep); no later :meth:`move` of ``key`` succeeds.

        ``census``: the set the O(1) count of live sessions reads; each id ended
        leaves it (its member is the digest between the braces of its key) in the
        same step (on a cluster, right after).
        """

    def claim_state(self, key: str, owners: Sequence[str], ttl: int,
                    ticket: tuple[str, str, int] | None = None) -> bool:
        """Claim ``key`` for a browser unless another holds it; True when it holds it.

        A claim held by any of ``owners`` (the browser's names) is its own; a new one
        is made for the first, for ``ttl`` seconds. Holding it, store ``ticket`` (key,
        value, ttl; same hash tag) in the same step. Running it twice is harmless."""

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        """Return a ticket's value and spend it, atomically, once.

        None when it was taken already -- but the same ``nonce`` (a retry whose
        first answer was lost; None: none can repeat) gets the value again while
        the ticket would have lived. :data:`NOT_HELD` when the store holds no
        ticket of that name (or None, for a store that cannot tell).
        """

    def store_identity(self, key: str, candidate: str) -> str:
        """The identity kept at ``key`` (no expiry); ``candidate`` is stored first when
        there is none, atomically. Returns the identity held now."""

    def peek(self, key: str) -> SessionRecord | None:
        """The session at ``key``, or None; its expiry is left as it is (an operator
        listing sessions must not keep them alive)."""

    def index_put(
        self, key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str] = (),
        live: str | None = None, census: str | None = None,
    ) -> dict[str, str]:
        """Set ``ref`` -> ``entry`` in the index at ``key``, remove the refs in ``drop``
        and every entry whose ``"e"`` is ``now`` or earlier (or that is not such an
        object), and keep the index at least ``ttl`` more seconds; atomically. Returns
        the entries left. Running it twice is harmless.

        ``live``: the key of the session the entry names, set only while that
        session is live -- an ended session is never entered again (on a cluster:
        set, checked and taken out again at once). ``census`` (with ``live``): the
        entered session's digest (the entry's ``"k"``) joins it, due for a check
        when the session's key expires (on a cluster, ``now``), and the digests of
        the entries removed leave it (on a cluster, those of ``drop``; the pruned
        ones are due already); in the same step (on a cluster, right after)."""

    def index_read(self, key: str) -> dict[str, str]:
        """Every entry of the index at ``key`` (ref -> entry text); empty when none."""

    def index_drop(self, key: str, refs: Collection[str]) -> None:
        """Remove ``refs`` from the index at ``key`` (no error for a missing one)."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncSessionStore(Protocol):
    """:class:`SessionStore` for asyncio: the same contract, word for word, each method a
    coroutine (``AsyncRedisStore`` implements it over the very keys ``RedisStore`` uses)."""

    async def load(self, key: str, idle_ttl: int) -> SessionRecord | None: ...

    async def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
                   meta: Mapping[str, int] | None = None, ttl: int, create: bool = False
                   ) -> bool: ...

    async def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int,
                   once: str | None = None, once_ttl: int = 0) -> SessionRecord | None: ...

    async def move(self, key: str, new_key: str, *, changed: Mapping[str, str],
                   deleted: Collection[str] = (), meta: Mapping[str, int] | None = None,
                   ttl: int, retired_at: int, grace: int) -> bool: ...

    async def delete(self, key: str, *, census: str | None = None) -> None: ...

    async def claim_state(self, key: str, owners: Sequence[str], ttl: int,
                          ticket: tuple[str, str, int] | None = None) -> bool: ...

    async def take_ticket(self, key: str, nonce: str | None = None) -> str | None: ...

    async def store_identity(self, key: str, candidate: str) -> str: ...

    async def peek(self, key: str) -> SessionRecord | None: ...

    async def index_put(
        self, key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str] = (),
        live: str | None = None, census: str | None = None,
    ) -> dict[str, str]: ...

    async def index_read(self, key: str) -> dict[str, str]: ...

    async def index_drop(self, key: str, refs: Collection[str]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


#: The contract's methods that talk to the store (all but ``close``), in its order.
OPERATIONS = (
    "load", "save", "mark", "move", "delete", "claim_state", "take_ticket", "store_identity",
    "peek", "index_put", "index_read", "index_drop", "ping",
)


def forwarding(
    make: Callable[[str], Callable[..., Any]], names: tuple[str, ...] = OPERATIONS
) -> Callable[[C], C]:
    """A class decorator for a store that wraps another: the class gets each method of
    ``names``, made by ``make(name)``, with the contract's signature (for ``help()``)."""

    def decorate(cls: C) -> C:
        for name in names:
            method: Any = make(name)
            method.__name__ = name
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            method.__signature__ = inspect.signature(getattr(SessionStore, name))
            setattr(cls, name, method)
        return cls

    return decorate
