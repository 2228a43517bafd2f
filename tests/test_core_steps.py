"""sessionshare.core.steps: store calls as values, driven by a thread or an asyncio loop."""

from __future__ import annotations

import asyncio

import pytest
from conftest import FakeClock

from sessionshare import MemoryStore, StoreUnavailable
from sessionshare.core.steps import (
    ClaimState,
    Delete,
    Load,
    Mark,
    Save,
    Steps,
    StoreIdentity,
    TakeTicket,
    run,
    run_async,
)
from sessionshare.store.base import MARKED_BEFORE, SessionRecord


def every_command() -> Steps[list[object]]:
    """One of each command, answers collected: what a protocol step looks like."""
    answers: list[object] = []
    answers.append((yield Save("s", changed={"a": "1"}, deleted=(), meta={"c": 1}, ttl=60,
                               create=True)))
    answers.append((yield Load("s", 60)))
    answers.append((yield Mark("s", {"o:x": 2}, 60)))  # answers what it replaced
    answers.append((yield Mark("s", {"o:x": 3}, 60, "j:{s}7", 60)))
    answers.append((yield Mark("s", {"o:x": 4}, 60, "j:{s}7", 60)))  # once: not again
    answers.append((yield ClaimState("c", ("me",), 60, "t", "v", 60)))
    answers.append((yield ClaimState("c", ("someone else",), 60)))
    answers.append((yield ClaimState("c", ("someone else", "me"), 60)))
    answers.append((yield TakeTicket("t", "a" * 32)))
    answers.append((yield TakeTicket("t", "a" * 32)))  # its own retry
    answers.append((yield TakeTicket("t")))
    answers.append((yield StoreIdentity("i", "first")))
    answers.append((yield StoreIdentity("i", "second")))
    answers.append((yield Delete("s")))
    answers.append((yield Load("s", 60)))
    return answers


EXPECTED = [
    True, SessionRecord({"a": "1"}, {"c": 1}), SessionRecord({"a": "1"}, {"c": 1}),
    SessionRecord({"a": "1"}, {"c": 1, "o:x": 2}),
    MARKED_BEFORE,
    True, False, True, "v", "v", None, "first", "first", None, None,
]


def test_run_drives_every_command_on_a_thread_store(clock: FakeClock) -> None:
    assert run(every_command(), MemoryStore(clock=clock)) == EXPECTED


class AsyncMemory:
    """MemoryStore behind coroutines: enough of an asyncio store for the driver."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.awaited = 0

    def __getattr__(self, name: str) -> object:
        method = getattr(self.store, name)

        async def call(*args: object, **kwargs: object) -> object:
            self.awaited += 1
            await asyncio.sleep(0)
            return method(*args, **kwargs)

        return call


def test_run_async_drives_the_same_steps_on_an_asyncio_store(clock: FakeClock) -> None:
    store = AsyncMemory(MemoryStore(clock=clock))
    assert asyncio.run(run_async(every_command(), store)) == EXPECTED  # type: ignore[arg-type]
    assert store.awaited == len(EXPECTED)


def test_a_step_without_store_work_returns_at_once(clock: FakeClock) -> None:
    def pure() -> Steps[str]:
        return "answer"
        yield  # a generator all the same  # noqa: B901

    assert run(pure(), MemoryStore(clock=clock)) == "answer"


class Down(MemoryStore):
    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        raise StoreUnavailable("down")


def test_a_store_failure_is_thrown_into_the_step_which_may_clean_up(clock: FakeClock) -> None:
    seen: list[str] = []

    def careful() -> Steps[str]:
        try:
            yield TakeTicket("t")
        except StoreUnavailable:
            seen.append("cleaned up")
            raise
        return "unreachable"

    with pytest.raises(StoreUnavailable):
        run(careful(), Down(clock=clock))
    assert seen == ["cleaned up"]


def test_a_step_may_recover_from_a_store_failure(clock: FakeClock) -> None:
    def recovering() -> Steps[str]:
        try:
            yield TakeTicket("t")
        except StoreUnavailable:
            return "recovered"
        return "no failure"

    assert run(recovering(), Down(clock=clock)) == "recovered"


def test_a_ticket_value_never_shows_in_a_repr() -> None:
    assert "wrapped-secret" not in repr(ClaimState("c", "o", 60, "t", "wrapped-secret", 60))
