"""The session-store contract every backend implements.

A store keeps two kinds of records, under names the session layer chooses
(digests, never raw session ids or tickets):

- **sessions**: a mapping of top-level key -> JSON text, plus a few integer
  metadata fields (created at, authenticated at) kept apart from app keys.
  ``load`` reads one and slides its idle expiry in the same round trip;
  ``save`` merges changed and deleted keys *atomically on the server*, so two
  apps writing different keys of one session at the same moment both win.
  Writing the same key is last-write-wins. ``mark`` merges metadata into a
  live session and reads it back, in one round trip (a remote joining it).
- **claims**: a login state bound to the first browser that presented it
  (``claim_state``, which can store that state's ticket in the same step);
- **tickets**: short-lived single-use values; ``take_ticket`` returns a
  ticket's value and deletes it atomically, so a second taker -- even in
  parallel -- gets None.

Any backend failure is raised as :class:`~sessionshare.errors.StoreUnavailable`,
never as the driver's own exception.

A new backend (Valkey, a database) needs only these nine methods; the store
contract tests in ``tests/test_store.py`` prove an implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "NOT_HELD", "AsyncSessionStore", "SessionRecord", "SessionStore", "is_well_formed",
]


class SessionRecord(NamedTuple):
    """A stored session: app keys -> JSON text, and the library's metadata."""

    fields: dict[str, str]
    meta: dict[str, int]


#: What ``take_ticket`` may answer for a ticket the store never held (never
#: issued into *this* store, or gone with its expiry), as opposed to None, a
#: ticket taken already. It lets a remote name the most common set-up mistake
#: -- an IdP and a remote on different stores -- instead of calling it a replay.
#: A store that cannot tell the two apart answers None for both.
NOT_HELD = ""


def is_well_formed(fields: object, meta: object) -> bool:
    """True when ``fields`` maps text to JSON text and ``meta`` text to numbers.

    A record is shared by every app of every version that writes to the store
    (and anything else with access to it): a damaged one -- valid JSON of the
    wrong shape, such as ``{"d": [], "m": "x"}`` -- must read as *no session*,
    not crash the request that meets it with a 500 on every later visit.
    """
    # Plain loops, not all(<generator>): this runs on every session read.
    if type(fields) is not dict or type(meta) is not dict:
        return False
    for key, value in fields.items():
        if type(key) is not str or type(value) is not str:
            return False
    for key, value in meta.items():
        if type(key) is not str or (type(value) is not int and type(value) is not float):
            return False
    return True


@runtime_checkable
class SessionStore(Protocol):
    """What the middlewares need from a store; all methods are thread-safe."""

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        """The session at ``key`` with its expiry slid to ``idle_ttl`` seconds, or None."""

    def save(
        self,
        key: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str] = (),
        meta: Mapping[str, int] | None = None,
        ttl: int,
        create: bool = False,
    ) -> bool:
        """Merge ``changed`` / ``deleted`` (and ``meta``) into ``key`` and set its TTL.

        With ``create=False`` a session that no longer exists (logged out or
        expired meanwhile) is *not* brought back: nothing is written and the
        result is False.
        """

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int) -> SessionRecord | None:
        """Merge ``meta`` into the live session at ``key``, slide its expiry to
        ``idle_ttl`` seconds and return it, atomically; None (and nothing
        written) when it is gone. Running it twice is harmless."""

    def delete(self, key: str) -> None:
        """Remove the session at ``key`` (no error if it is gone)."""

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        """Store a ticket for ``ttl`` seconds."""

    def claim_state(
        self, key: str, owner: str, ttl: int, ticket: tuple[str, str, int] | None = None
    ) -> bool:
        """Claim ``key`` for ``owner`` unless another owner holds it (the claim lasts
        ``ttl`` seconds from the first); True when ``owner`` holds it. When it does and
        ``ticket`` (key, value, ttl) is given, store that ticket too -- atomically, in one
        round trip (a ticket key shares the claim's hash tag). Running it twice is harmless."""

    def take_ticket(self, key: str) -> str | None:
        """Return a ticket's value and spend it, atomically, once.

        None when it was taken already; :data:`NOT_HELD` when the store holds
        no ticket of that name (or None, for a store that cannot tell).
        """

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncSessionStore(Protocol):
    """:class:`SessionStore` for asyncio: the same nine methods, each a coroutine.

    The same contract, word for word; ``AsyncRedisStore`` implements it over
    the very keys ``RedisStore`` uses.
    """

    async def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        """The session at ``key`` with its expiry slid to ``idle_ttl`` seconds, or None."""

    async def save(
        self,
        key: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str] = (),
        meta: Mapping[str, int] | None = None,
        ttl: int,
        create: bool = False,
    ) -> bool:
        """Merge ``changed`` / ``deleted`` (and ``meta``) into ``key``; False if it is gone."""

    async def mark(
        self, key: str, meta: Mapping[str, int], idle_ttl: int
    ) -> SessionRecord | None:
        """Merge ``meta`` into the live session at ``key`` and read it; None if gone."""

    async def delete(self, key: str) -> None:
        """Remove the session at ``key`` (no error if it is gone)."""

    async def put_ticket(self, key: str, value: str, ttl: int) -> None:
        """Store a ticket for ``ttl`` seconds."""

    async def claim_state(
        self, key: str, owner: str, ttl: int, ticket: tuple[str, str, int] | None = None
    ) -> bool:
        """Claim ``key`` for ``owner`` (and store ``ticket`` if it holds it); whether it holds."""

    async def take_ticket(self, key: str) -> str | None:
        """Return a ticket's value and spend it, atomically; None if absent or spent."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    async def close(self) -> None:
        """Release connections."""
