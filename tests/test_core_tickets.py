"""sessionshare.core.tickets: issue, redeem, burn, the store form and the one lifetime."""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping

import pytest
from conftest import FakeClock

from sessionshare import MemoryStore, SessionStore
from sessionshare.core.steps import run
from sessionshare.core.tickets import (
    CLOCK_LEEWAY,
    NOT_HELD,
    TICKET_BYTES,
    burn,
    issue,
    new_ticket,
    redeem,
    ticket_digest,
    ticket_key,
    ticket_ttl,
    unwrap_session_id,
    wrap_session_id,
)
from sessionshare.crypto import open_token
from sessionshare.store.base import SessionRecord

PREFIX = "sessionshare:"
SID = "s" * 43
FIXED = bytes(range(TICKET_BYTES))


def test_ticket_wrapping() -> None:
    ticket, sid = new_ticket(), "x" * 43
    wrapped = wrap_session_id(ticket, sid)
    assert sid not in wrapped
    assert unwrap_session_id(ticket, wrapped) == sid
    assert unwrap_session_id(new_ticket(), wrapped) is None
    assert unwrap_session_id(ticket, "garbage!") is None
    assert ticket_digest(ticket) != ticket_digest(new_ticket())
    assert len(ticket_digest(ticket)) == 64


def test_wire_format_is_pinned() -> None:
    # Known answers taken from the release before tickets moved here: a ticket issued
    # by an IdP on one version must be redeemable by a remote on the next.
    assert ticket_key(PREFIX, FIXED) == (
        "sessionshare:t:74c08510b2cca5ee3a0c80ca72d7d409655f5d0a70804bf6fd3246e1057cc96a"
    )
    assert wrap_session_id(FIXED, "abc") == "b97W7VCdkX1hI0fa2lUFJ6Su7g=="
    assert ticket_key("other:", FIXED).startswith("other:t:74c08510")


def test_one_leeway_for_both_sides() -> None:
    # The store keeps a ticket exactly as long past the token's life as the remote
    # still accepts the token: a valid token never meets an already dropped ticket.
    assert ticket_ttl(60) == 60 + CLOCK_LEEWAY
    assert inspect.signature(open_token).parameters["leeway"].default == CLOCK_LEEWAY


class _Recorder(MemoryStore):
    """A MemoryStore that also records the ticket calls it receives."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.calls: list[tuple[object, ...]] = []

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        self.calls.append(("put", key, value, ttl))
        super().put_ticket(key, value, ttl)

    def take_ticket(self, key: str) -> str | None:
        self.calls.append(("take", key))
        return super().take_ticket(key)


def test_issue_writes_the_wire_format_in_one_call(clock: FakeClock) -> None:
    store = _Recorder(clock)
    ticket = run(issue(PREFIX, SID, token_ttl=60), store)
    assert len(ticket) == TICKET_BYTES
    [(op, key, value, ttl)] = store.calls
    assert (op, key, ttl) == ("put", ticket_key(PREFIX, ticket), 60 + CLOCK_LEEWAY)
    assert isinstance(value, str) and SID not in value
    assert unwrap_session_id(ticket, value) == SID
    assert run(issue(PREFIX, SID, token_ttl=60), store) != ticket  # fresh every time


def test_redeem_once_then_never(store: SessionStore) -> None:
    ticket = run(issue(PREFIX, SID, token_ttl=60), store)
    # Another ticket finds nothing here: not held, which is not the same as spent.
    assert run(redeem(PREFIX, new_ticket()), store) == NOT_HELD
    assert run(redeem(PREFIX, ticket), store) == SID
    assert run(redeem(PREFIX, ticket), store) is None  # replayed


def test_burn_spends_the_ticket(store: SessionStore) -> None:
    ticket = run(issue(PREFIX, SID, token_ttl=60), store)
    run(burn(PREFIX, ticket), store)
    assert run(redeem(PREFIX, ticket), store) is None
    run(burn(PREFIX, ticket), store)  # burning a spent ticket is harmless


def test_ticket_outlives_its_token_by_the_leeway_only(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    kept = run(issue(PREFIX, SID, token_ttl=60), store)
    dropped = run(issue(PREFIX, SID, token_ttl=60), store)
    clock.advance(60 + CLOCK_LEEWAY - 1)
    assert run(redeem(PREFIX, kept), store) == SID
    clock.advance(2)
    assert run(redeem(PREFIX, dropped), store) is None


def test_a_value_the_ticket_does_not_open_is_not_a_session(clock: FakeClock) -> None:
    # A store value under the ticket's key that another ticket wrapped (or garbage)
    # gives None, never a session id.
    store = MemoryStore(clock=clock)
    ticket = new_ticket()
    store.put_ticket(ticket_key(PREFIX, ticket), wrap_session_id(new_ticket(), SID), 60)
    assert run(redeem(PREFIX, ticket), store) is None
    store.put_ticket(ticket_key(PREFIX, ticket), "not base64 at all!", 60)
    assert run(redeem(PREFIX, ticket), store) is None


class _Unused(SessionStore):
    """Only the two ticket methods exist: the ticket functions need nothing else."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        self.values[key] = value

    def take_ticket(self, key: str) -> str | None:
        return self.values.pop(key, None)

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        raise AssertionError("tickets never read a session")

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        raise AssertionError("tickets never write a session")

    def delete(self, key: str) -> None:
        raise AssertionError("tickets never delete a session")

    def ping(self) -> None:
        raise AssertionError("unused")

    def close(self) -> None:
        raise AssertionError("unused")


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_only_32_byte_tickets_unwrap(length: int) -> None:
    store = _Unused()
    ticket = run(issue(PREFIX, SID, token_ttl=60), store)
    assert unwrap_session_id(bytes(length), next(iter(store.values.values()))) is None
    assert run(redeem(PREFIX, ticket), store) == SID
