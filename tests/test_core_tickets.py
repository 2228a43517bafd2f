"""sessionshare.core.tickets: issue, redeem, burn, the store form and the one lifetime."""

from __future__ import annotations

import inspect
import time
from collections.abc import Collection, Mapping, Sequence

import pytest
from conftest import FakeClock, issuing

from sessionshare import MemoryStore, SessionStore, SyncKey
from sessionshare.core.claims import CLAIM_TTL, StateClaims
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.steps import run
from sessionshare.core.tickets import (
    CLOCK_LEEWAY,
    NOT_HELD,
    burn,
    issue,
    new_ticket,
    redeem,
    redemption_nonce,
    store_of,
    ticket_digest,
    ticket_key,
    ticket_ttl,
    unwrap_session_id,
    wrap_session_id,
)
from sessionshare.crypto import open_token
from sessionshare.crypto.tokens import TICKET_BYTES
from sessionshare.store.base import SessionRecord

PREFIX = "sessionshare:"
SID = "s" * 43
FIXED = bytes(range(TICKET_BYTES))
STATE = "S" * 43
CLAIMS = StateClaims(SyncKey.parse(SyncKey.generate()), cookie=CookieSpec("b"), prefix=PREFIX,
                     clock=time.time)
OWNER, OTHER = ("o" * 64,), ("x" * 64,)


def _issue(store: SessionStore, owner: tuple[str, ...] = OWNER) -> bytes | None:
    return run(issue(PREFIX, SID, STATE, CLAIMS, owner, token_ttl=60), store)


def _ticket(store: SessionStore) -> bytes:
    ticket = _issue(store)
    assert ticket is not None
    return ticket


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
    # Known answers of protocol v2 (token version 2): a ticket issued by an IdP on one
    # release must be redeemable by a remote on the next of the same version. The key
    # carries the state's hash tag (finding 3: claimed and stored in one command).
    assert ticket_key(PREFIX, FIXED, STATE) == (
        "sessionshare:t:{2a5b0407fdc7f6fb3f33664ba7e26b82}"
        "74c08510b2cca5ee3a0c80ca72d7d409655f5d0a70804bf6fd3246e1057cc96a"
    )
    assert wrap_session_id(FIXED, "abc") == "b97W7VCdkX1hI0fa2lUFJ6Su7g=="
    assert ticket_key("other:", FIXED, STATE).startswith("other:t:{2a5b0407")
    assert CLAIMS.claim_key(STATE) == "sessionshare:c:{2a5b0407fdc7f6fb3f33664ba7e26b82}"


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

    def claim_state(
        self,
        key: str,
        owners: str | Sequence[str],
        ttl: int,
        ticket: tuple[str, str, int] | None = None,
    ) -> bool:
        self.calls.append(("claim", key, owners, ttl, ticket))
        return super().claim_state(key, owners, ttl, ticket)

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        self.calls.append(("take", key, nonce))
        return super().take_ticket(key, nonce)


def test_issue_claims_the_state_and_writes_the_ticket_in_one_call(clock: FakeClock) -> None:
    store = _Recorder(clock)
    ticket = _ticket(store)
    assert len(ticket) == TICKET_BYTES
    [(op, claim_key, owner, claim_ttl, stored)] = store.calls
    assert (op, claim_key, owner, claim_ttl) == ("claim", CLAIMS.claim_key(STATE), OWNER,
                                                 CLAIM_TTL)
    assert stored is not None
    key, value, ttl = stored
    assert (key, ttl) == (ticket_key(PREFIX, ticket, STATE), 60 + CLOCK_LEEWAY)
    assert isinstance(value, str) and SID not in value
    assert unwrap_session_id(ticket, value) == SID
    assert _issue(store) != ticket  # fresh every time, for the owner of the state


def test_no_ticket_for_a_state_another_browser_claimed(store: SessionStore) -> None:
    assert run(CLAIMS.claim(STATE, OWNER), store) is True  # the first presenter
    assert run(CLAIMS.claim(STATE, OWNER), store) is True  # ...and again (a reload)
    assert _issue(store, OTHER) is None  # another browser: no ticket, nothing stored
    assert run(CLAIMS.claim(STATE, OTHER), store) is False
    ticket = _ticket(store)  # the owner still gets one
    assert run(redeem(PREFIX, ticket, STATE), store) == SID


def test_a_claim_lasts_as_long_as_a_pending_hand_off(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    assert run(CLAIMS.claim(STATE, OWNER), store)
    clock.advance(CLAIM_TTL - 1)
    assert not run(CLAIMS.claim(STATE, OTHER), store)
    clock.advance(2)
    assert run(CLAIMS.claim(STATE, OTHER), store)


def test_redeem_once_then_never(store: SessionStore) -> None:
    ticket = _ticket(store)
    # Another ticket finds nothing here: not held, which is not the same as spent.
    assert run(redeem(PREFIX, new_ticket(), STATE), store) == NOT_HELD
    assert run(redeem(PREFIX, ticket, "T" * 43), store) == NOT_HELD  # another state's key
    assert run(redeem(PREFIX, ticket, STATE), store) == SID
    assert run(redeem(PREFIX, ticket, STATE), store) is None  # replayed


def test_a_redemption_is_named_by_its_ticket_and_the_browsers_state_cookie(
    store: SessionStore,
) -> None:
    # A retry whose first answer was lost: the same name gets the value again (on Redis,
    # through REDEEM's spent marker); any other name, or none, gets nothing.
    ticket = _ticket(store)
    mine = redemption_nonce(ticket, "the-state-cookie-value")
    assert len(mine) == 32 and mine == redemption_nonce(ticket, "the-state-cookie-value")
    assert run(redeem(PREFIX, ticket, STATE, nonce=mine), store) == SID
    assert run(redeem(PREFIX, ticket, STATE, nonce=mine), store) == SID  # its retry
    other = redemption_nonce(ticket, "another-browsers-cookie")
    assert run(redeem(PREFIX, ticket, STATE, nonce=other), store) is None
    assert run(redeem(PREFIX, ticket, STATE), store) is None  # no name: never a retry
    assert redemption_nonce(new_ticket(), "x") != redemption_nonce(new_ticket(), "x")


def test_a_nonce_of_another_shape_is_a_programming_error(redis_url: str) -> None:
    # REDEEM compares a spent marker by the nonce's length: a shorter one could match the
    # start of a longer one, so only the one shape is ever sent.
    from sessionshare import RedisStore

    store = RedisStore.from_url(redis_url)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        store.take_ticket("t", "abc")
    store.close()


def test_a_ticket_names_the_store_it_was_written_into() -> None:
    identity = "0123456789abcdef"
    ticket = new_ticket(identity)
    assert len(ticket) == TICKET_BYTES and store_of(ticket) == identity
    assert new_ticket(identity)[:24] != ticket[:24]  # the rest is random
    for odd in (None, "", "xyz", "00"):  # no identity this release wrote: none carried
        assert len(new_ticket(odd)) == TICKET_BYTES and store_of(new_ticket(odd)) != identity


def test_a_claim_held_under_any_of_a_browsers_names_is_its_own(store: SessionStore) -> None:
    # A key rotation: the same browser's digest under the old and the new key.
    old, new = ("old-digest",), ("new-digest",)
    assert run(CLAIMS.claim(STATE, old), store) is True
    assert run(CLAIMS.claim(STATE, new + old), store) is True
    assert run(CLAIMS.claim(STATE, new), store) is False
    assert _issue(store, new + old) is not None
    assert _issue(store, OTHER) is None


def test_burn_spends_the_ticket(store: SessionStore) -> None:
    ticket = _ticket(store)
    run(burn(PREFIX, ticket, STATE), store)
    assert run(redeem(PREFIX, ticket, STATE), store) is None
    run(burn(PREFIX, ticket, STATE), store)  # burning a spent ticket is harmless


def test_ticket_outlives_its_token_by_the_leeway_only(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    kept, dropped = _ticket(store), _ticket(store)
    clock.advance(60 + CLOCK_LEEWAY - 1)
    assert run(redeem(PREFIX, kept, STATE), store) == SID
    clock.advance(2)
    assert run(redeem(PREFIX, dropped, STATE), store) is None


def test_a_value_the_ticket_does_not_open_is_not_a_session(clock: FakeClock) -> None:
    # A store value under the ticket's key that another ticket wrapped (or garbage)
    # gives None, never a session id.
    store = MemoryStore(clock=clock)
    for value in (wrap_session_id(new_ticket(), SID), "not base64 at all!"):
        ticket = new_ticket()
        store.claim_state(*issuing(ticket_key(PREFIX, ticket, STATE), value, 60))
        assert run(redeem(PREFIX, ticket, STATE), store) is None


class _Unused(SessionStore):
    """Only the claim and ticket methods exist: the ticket functions need nothing else."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def claim_state(
        self,
        key: str,
        owners: str | Sequence[str],
        ttl: int,
        ticket: tuple[str, str, int] | None = None,
    ) -> bool:
        if ticket is not None:
            self.values[ticket[0]] = ticket[1]
        return True

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        return self.values.pop(key, None)

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        raise AssertionError("tickets never read a session")

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        raise AssertionError("tickets never write a session")

    def delete(self, key: str, *, census: str | None = None) -> None:
        raise AssertionError("tickets never delete a session")

    def ping(self) -> None:
        raise AssertionError("unused")

    def close(self) -> None:
        raise AssertionError("unused")


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_only_32_byte_tickets_unwrap(length: int) -> None:
    store = _Unused()
    ticket = _ticket(store)
    assert unwrap_session_id(bytes(length), next(iter(store.values.values()))) is None
    assert run(redeem(PREFIX, ticket, STATE), store) == SID
