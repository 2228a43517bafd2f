"""Store calls as values: how the protocol asks for I/O without doing any.

A protocol step is a generator. When it needs the store it *yields* a
command (one of the classes below) and is sent the store's answer back; when
it is done it *returns* its result. It never touches a socket, so the same
step serves a threaded WSGI server and an asyncio ASGI server (h11's "bring
your own I/O"): a command's ``on(store)`` calls the store's method of the same
name, which answers at once on a thread store and gives an awaitable on an
asyncio one; :func:`run` and :func:`run_async` (the only ``await``) drive it.

    def adopt(session_key: str) -> Steps[bool]:
        record = yield Load(session_key, idle_ttl=1800)
        return record is not None

    found = run(adopt(key), store)            # WSGI
    found = await run_async(adopt(key), store)  # ASGI

A store failure raised while a command runs is thrown into the step at its
``yield``, so a step may clean up; by default it propagates to the shell,
which answers 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Generator, Mapping
from typing import Any, NamedTuple, TypeVar, Union

from ..store.base import AsyncSessionStore, SessionRecord, SessionStore

__all__ = [
    "CensusAdd", "CensusCheck", "CensusDue", "CensusMembers", "CensusRead", "ClaimState",
    "Command", "Delete", "IndexDrop", "IndexPut", "IndexRead", "Load", "Mark", "Move", "Peek",
    "Save", "Steps", "StoreIdentity", "TakeTicket", "run", "run_async",
]

T = TypeVar("T")

#: Either kind of store a command runs on.
AnyStore = Union[SessionStore, AsyncSessionStore]  # noqa: UP007 - runtime alias
#: What ``on`` gives: the answer (a thread store), or an awaitable of it (an asyncio store).
Answer = Union[T, Awaitable[T]]  # noqa: UP007 - runtime alias


class Load(NamedTuple):
    """Read the session at ``key`` and slide its idle expiry. Answer: SessionRecord or None."""

    key: str
    idle_ttl: int

    def on(self, store: AnyStore) -> Answer[SessionRecord | None]:
        return store.load(self.key, self.idle_ttl)


class Save(NamedTuple):
    """Merge changes into the session at ``key``. Answer: False when it is gone (not created)."""

    key: str
    changed: Mapping[str, str]
    deleted: Collection[str]
    meta: Mapping[str, int] | None
    ttl: int
    create: bool = False

    def on(self, store: AnyStore) -> Answer[bool]:
        return store.save(self.key, changed=self.changed, deleted=self.deleted,
                          meta=self.meta, ttl=self.ttl, create=self.create)


class Mark(NamedTuple):
    """Merge ``meta`` into the live session at ``key`` (once per ``once`` key:
    :meth:`SessionStore.mark <sessionshare.store.base.SessionStore.mark>`). Answer: the
    record as it was before, None when it is gone."""

    key: str
    meta: Mapping[str, int]
    idle_ttl: int
    once: str | None = None
    once_ttl: int = 0

    def on(self, store: AnyStore) -> Answer[SessionRecord | None]:
        return store.mark(self.key, self.meta, self.idle_ttl, self.once, self.once_ttl)


class Move(NamedTuple):
    """Give the live session at ``key`` the key ``new_key``, merging the changes in, in one
    step; ``key`` stays a marker for ``grace`` seconds. Answer: False when it was not live."""

    key: str
    new_key: str
    changed: Mapping[str, str]
    deleted: Collection[str]
    meta: Mapping[str, int] | None
    ttl: int
    retired_at: int
    grace: int

    def on(self, store: AnyStore) -> Answer[bool]:
        return store.move(self.key, self.new_key, changed=self.changed, deleted=self.deleted,
                          meta=self.meta, ttl=self.ttl, retired_at=self.retired_at,
                          grace=self.grace)


class Delete(NamedTuple):
    """End the session at ``key`` (and where a move took it); each id ended leaves the
    census ``census`` (:mod:`sessionshare.core.census`). Answer: None."""

    key: str
    census: str | None = None

    def on(self, store: AnyStore) -> Answer[None]:
        return store.delete(self.key, census=self.census)


class ClaimState(NamedTuple):
    """Claim a login state for a browser (``owners``: its digests) and, when it holds it,
    store the ticket given too. Answer: whether it holds."""

    key: str
    owners: tuple[str, ...]
    ttl: int
    ticket_key: str | None = None
    ticket_value: str = ""  # a wrapped session id: never in a repr
    ticket_ttl: int = 0

    def __repr__(self) -> str:
        return f"ClaimState(key={self.key!r}, ttl={self.ttl}, ticket_key={self.ticket_key!r})"

    def on(self, store: AnyStore) -> Answer[bool]:
        ticket = None if self.ticket_key is None else (
            self.ticket_key, self.ticket_value, self.ticket_ttl)
        return store.claim_state(self.key, self.owners, self.ttl, ticket)


class TakeTicket(NamedTuple):
    """Redeem a ticket, atomically and once (``nonce``: the redemption a retry repeats).
    Answer: its value, or None."""

    key: str
    nonce: str | None = None

    def on(self, store: AnyStore) -> Answer[str | None]:
        return store.take_ticket(self.key, self.nonce)


class StoreIdentity(NamedTuple):
    """The store's long-lived identity at ``key``, set to ``candidate`` first if it has
    none. Answer: the identity it holds now."""

    key: str
    candidate: str

    def on(self, store: AnyStore) -> Answer[str]:
        return store.store_identity(self.key, self.candidate)


class Peek(NamedTuple):
    """Read the session at ``key`` without sliding its expiry. Answer: record or None."""

    key: str

    def on(self, store: AnyStore) -> Answer[SessionRecord | None]:
        return store.peek(self.key)


class IndexPut(NamedTuple):
    """Set an entry of a user index -- only while the session ``live`` names is live, when
    given -- drop ``drop`` and the expired. Answer: entries left."""

    key: str
    ref: str
    entry: str
    ttl: int
    now: int
    drop: tuple[str, ...] = ()
    live: str | None = None
    #: The census the entry's session joins (and the dropped entries' sessions leave).
    census: str | None = None

    def on(self, store: AnyStore) -> Answer[dict[str, str]]:
        return store.index_put(self.key, self.ref, self.entry, ttl=self.ttl, now=self.now,
                               drop=self.drop, live=self.live, census=self.census)


class IndexRead(NamedTuple):
    """Read every entry of a user index. Answer: ref -> entry text."""

    key: str

    def on(self, store: AnyStore) -> Answer[dict[str, str]]:
        return store.index_read(self.key)


class IndexDrop(NamedTuple):
    """Remove entries from a user index. Answer: None."""

    key: str
    refs: tuple[str, ...]

    def on(self, store: AnyStore) -> Answer[None]:
        return store.index_drop(self.key, self.refs)


class CensusRead(NamedTuple):
    """Read the census at ``key`` and try to take its sweep lock ``lock`` for ``lock_ttl``
    seconds (0: no lock asked for). Answer: (members, whether the lock was taken).
    The census steps (typed ``Any``) run only on a thread store that has them
    (``MemoryStore``, ``RedisStore``): an operator's count, never a request."""

    key: str
    lock: str
    lock_ttl: float

    def on(self, store: Any) -> Any:
        return store.census_read(self.key, lock=self.lock, lock_ttl=self.lock_ttl)


class CensusDue(NamedTuple):
    """The census members whose check time is ``now`` or earlier (at most ``limit``)."""

    key: str
    now: int
    limit: int

    def on(self, store: Any) -> Any:
        return store.census_due(self.key, self.now, self.limit)


class CensusCheck(NamedTuple):
    """Check ``sessions`` (member, session key): a live one is due again when its key
    expires, a gone one leaves the census. Answer: how many left."""

    key: str
    sessions: tuple[tuple[str, str], ...]
    now: int

    def on(self, store: Any) -> Any:
        return store.census_check(self.key, dict(self.sessions), self.now)


class CensusAdd(NamedTuple):
    """Add the ``members`` the census lacks, due for a check at ``now``. Answer: how many."""

    key: str
    members: tuple[str, ...]
    now: int

    def on(self, store: Any) -> Any:
        return store.census_add(self.key, self.members, self.now)


class CensusMembers(NamedTuple):
    """Every member of the census. Answer: a list of digests."""

    key: str

    def on(self, store: Any) -> Any:
        return store.census_members(self.key)


Command = Union[  # noqa: UP007 - runtime alias
    Load, Save, Mark, Move, Delete, ClaimState, TakeTicket, StoreIdentity, Peek, IndexPut,
    IndexRead, IndexDrop, CensusRead, CensusDue, CensusCheck, CensusAdd, CensusMembers,
]
#: A protocol step: yields commands, is sent their answers, returns a ``T``.
Steps = Generator[Command, Any, T]


def run(steps: Steps[T], store: SessionStore) -> T:
    """Drive ``steps`` to the end on a thread store; its result."""
    try:
        command = next(steps)
        while True:
            try:
                answer = command.on(store)
            except Exception as exc:  # noqa: BLE001 - the step decides, then it propagates
                command = steps.throw(exc)
            else:
                command = steps.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(steps: Steps[T], store: AsyncSessionStore) -> T:
    """Drive ``steps`` to the end on an asyncio store; its result."""
    try:
        command = next(steps)
        while True:
            try:
                pending: Any = command.on(store)
                answer = await pending
            except Exception as exc:  # noqa: BLE001 - the step decides, then it propagates
                command = steps.throw(exc)
            else:
                command = steps.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
