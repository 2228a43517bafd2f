"""sessionshare.core.storeid: the store's identity, read by the IdP now and then."""

from __future__ import annotations

from conftest import FakeClock

from sessionshare import MemoryStore, SessionStore
from sessionshare.core.steps import run
from sessionshare.core.storeid import (
    REFRESH_EVERY,
    Identity,
    identity_key,
    new_identity,
    was_lost_here,
)


class _Counting(MemoryStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.reads = 0

    def store_identity(self, key: str, candidate: str) -> str:
        self.reads += 1
        return super().store_identity(key, candidate)


def test_the_first_asker_writes_it_and_everyone_reads_that_one(store: SessionStore) -> None:
    key = identity_key("p:")
    first, second = new_identity(), new_identity()
    assert len(first) == 16 and first != second
    assert store.store_identity(key, first) == first
    assert store.store_identity(key, second) == first
    assert store.store_identity(identity_key("other:"), second) == second  # per prefix


def test_the_idp_reads_it_once_then_only_every_refresh_period(clock: FakeClock) -> None:
    store = _Counting(clock)
    identity = Identity("p:", clock=clock)
    held = run(identity.current(), store)
    assert run(identity.current(), store) == held and store.reads == 1
    clock.advance(REFRESH_EVERY - 1)
    assert run(identity.current(), store) == held and store.reads == 1
    clock.advance(2)
    assert run(identity.current(), store) == held and store.reads == 2


def test_after_a_wipe_the_idp_soon_carries_the_stores_new_identity(clock: FakeClock) -> None:
    identity = Identity("p:", clock=clock)
    before = run(identity.current(), MemoryStore(clock=clock))
    wiped = MemoryStore(clock=clock)  # a restart without persistence
    assert run(identity.current(), wiped) == before  # cached for a while
    clock.advance(REFRESH_EVERY)
    after = run(identity.current(), wiped)
    assert after != before and wiped.store_identity(identity_key("p:"), "x") == after


def test_a_missing_ticket_is_lost_here_or_was_written_elsewhere(store: SessionStore) -> None:
    mine = store.store_identity(identity_key("p:"), new_identity())
    assert run(was_lost_here("p:", mine), store) is True  # the same store lost it
    assert run(was_lost_here("p:", new_identity()), store) is False  # another store's
    # A store with no identity (wiped, or never written by an IdP) may have lost it; it
    # takes an identity now, so the next ticket of another store is told at once.
    assert run(was_lost_here("q:", new_identity()), store) is True
    assert run(was_lost_here("q:", new_identity()), store) is False
