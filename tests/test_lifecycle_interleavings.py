"""The session's lifecycle under every interleaving of requests in flight: a stateful test.

One class of defect keeps coming back: a request reads the session, another
request changes it (a logout, a revocation, a move to a new id), and the
first one's later write undoes the change -- a signed-out session brought
back to life, a write lost, a session re-entered in the index. The core
does no I/O, so every store step of every request is a value the test can
hold back and release in any order (``tests/interleave.py``): hypothesis
starts requests of several browsers at the IdP and a remote (sign-ins, with
and without remember-me, ``regenerate()``, ``remember()``, writes of keys no
one else writes, reads, hand-offs -- some whose redemption's answer is lost
and which the browser retries --, logouts at either site, an operator's
``revoke_all``, ``revoke`` of one session and ``withdraw`` of the remote)
and advances them one store command at a time, checking after each command
that no ended session is live or re-indexed, no withdrawn remote is joined
again but by a new hand-off, nobody reads another user's session and no
retried callback is called a replay, and at the end that no acknowledged
write was lost.

It runs on ``MemoryStore`` and on the real Redis of the suite. The ``ci``
hypothesis profile (the default) keeps both short; ``HYPOTHESIS_PROFILE=thorough``
runs many more examples (see ``tests/security/profiles.py``)::

    HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_lifecycle_interleavings.py -q
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable

import pytest
from conftest import FakeClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from interleave import BROWSERS, KINDS, World, _live
from security.profiles import budget

from sessionshare import MemoryStore, RedisStore, SessionStore

#: Requests in flight at once: enough for a move to straddle a logout and a write.
MAX_IN_FLIGHT = 3
#: Rules per example (requests sent and store commands run).
STEPS = 40


def machine(make_store: Callable[[FakeClock], SessionStore]) -> type[RuleBasedStateMachine]:
    """A state machine over a fresh store per example."""

    class Interleavings(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # The library's ids, tickets and states are random, and where the index holds
            # several sessions of a user their order (their random references) decides which
            # one a revocation ends first -- so a replay of the same example took other
            # steps, and hypothesis could neither replay nor shrink it. Each example draws
            # them from one seeded generator instead: the same example, the same ids.
            self.clock = FakeClock()
            self.store = make_store(self.clock)
            self._token_bytes = secrets.token_bytes
            seeded = random.Random(0)
            secrets.token_bytes = lambda n=None: seeded.randbytes(32 if n is None else n)
            try:
                self.world = World(self.store, self.clock)
            except BaseException:
                secrets.token_bytes = self._token_bytes
                self.store.close()
                raise

        @initialize(signed_in=st.sets(st.sampled_from(sorted(BROWSERS))),
                    handed_off=st.booleans())
        def sign_in_first(self, signed_in: set[str], handed_off: bool) -> None:
            # Most races worth finding need a signed-in session to start from.
            for browser in sorted(signed_in):
                self.world.run_now(browser, "sign_in")
                if handed_off:
                    self.world.run_now(browser, "handoff")

        @precondition(lambda self: len(self.world.flights) < MAX_IN_FLIGHT)
        @rule(browser=st.sampled_from(sorted(BROWSERS)), kind=st.sampled_from(KINDS))
        def send(self, browser: str, kind: str) -> None:
            self.world.start(browser, kind)

        @precondition(lambda self: bool(self.world.flights))
        @rule(pick=st.integers(0, MAX_IN_FLIGHT - 1))
        def run_one_store_command(self, pick: int) -> None:
            flights = self.world.flights
            self.world.advance(flights[pick % len(flights)])

        @invariant()
        def ended_stays_ended_and_nobody_reads_another_users_session(self) -> None:
            assert not self.world.violations, self.world.violations

        def teardown(self) -> None:
            try:
                self.world.drain()
                self.world.check_writes()
                assert not self.world.violations, self.world.violations
            finally:
                self.store.close()
                secrets.token_bytes = self._token_bytes

    return Interleavings


def _settings(weight: float) -> settings:
    return settings(budget(weight), stateful_step_count=STEPS)


def test_no_interleaving_breaks_the_lifecycle_on_memory() -> None:
    run_state_machine_as_test(machine(lambda clock: MemoryStore(clock=clock)),
                              settings=_settings(0.8))


def test_no_interleaving_breaks_the_lifecycle_on_redis(redis_url: str) -> None:
    def fresh(clock: FakeClock) -> SessionStore:
        store = RedisStore.from_url(redis_url)
        store.client.flushdb()
        return store

    run_state_machine_as_test(machine(fresh), settings=_settings(0.2))


@pytest.mark.parametrize("ender", ["logout_idp", "logout_shop", "revoke_all", "revoke_one"])
@pytest.mark.parametrize("mover", ["regenerate", "remember"])
def test_the_harness_sees_a_move_that_outruns_a_logout(
    mover: str, ender: str, store: SessionStore, clock: FakeClock
) -> None:
    """The shape of finding 1, spelled out: a request reads alice's session, another ends
    it, then the first moves it to a new id. Nothing of it may live on."""
    world = World(store, clock)
    world.run_now("alice", "sign_in")
    world.run_now("alice", "handoff")
    moving = world.start("alice", mover)
    world.advance(moving)  # it has read the session
    world.run_now("alice", ender)
    world.finish(moving)
    world.check_writes()
    assert world.violations == []


@pytest.mark.parametrize("mover", ["regenerate", "remember", "sign_in_remember"])
def test_a_move_that_read_the_session_before_a_withdraw_does_not_join_it_again(
    mover: str, store: SessionStore, clock: FakeClock
) -> None:
    """A request reads alice's session (the shop joined it); the operator withdraws the
    shop from her sessions; then the request moves the session to a new id. The move
    must not carry the shop's old join time back: the shop would serve her again without
    the IdP's ``authorize`` hook deciding anew."""
    world = World(store, clock)
    world.run_now("alice", "sign_in")
    world.run_now("alice", "handoff")
    moving = world.start("alice", mover)
    world.advance(moving)  # it has read the session
    world.run_now("alice", "withdraw_shop")
    assert world.withdrawn, "the withdraw found the session the shop joined"
    world.finish(moving)
    world.check_writes()
    assert world.violations == []
    reading = world.run_now("alice", "read_shop")  # the shop sends her to the IdP again
    assert reading.done and world.violations == []
    shop = world.shop.lifecycle
    sid = world.idp.lifecycle.session_id_in(world.browsers["alice"].header("idp"))
    assert sid is not None
    record = store.peek(world.idp.lifecycle.session_key(sid))
    assert record is not None and record.meta.get("o:" + shop.audience, 0) == 0


def test_the_harness_sees_a_sign_in_over_an_ended_session(
    store: SessionStore, clock: FakeClock
) -> None:
    """A sign-in reads the browser's stored (anonymous) session; another tab signs out
    meanwhile; the sign-in must not bring the old one back under a new id."""
    world = World(store, clock)
    world.run_now("alice", "write_idp")  # an anonymous session, stored
    signing_in = world.start("alice", "sign_in")
    world.advance(signing_in)
    world.run_now("alice", "logout_idp")
    world.finish(signing_in)
    world.check_writes()
    assert world.violations == []


@pytest.mark.parametrize(
    "meanwhile", [None, "logout_idp", "revoke_all", "regenerate", "remember"]
)
def test_a_retried_callback_neither_revives_an_ended_session_nor_is_a_replay(
    meanwhile: str | None, store: SessionStore, clock: FakeClock
) -> None:
    """A hand-off's redemption runs in the store but its answer is lost (the shell answers
    503); before the browser repeats the callback, another tab signs out, the operator
    revokes, or an IdP request moves the session to a new id. The retry is the same
    redemption (the ticket's value again): it joins the session if it still lives under
    the id the ticket names, else finds it ended or moved -- it never brings it back, and
    it is never refused as a replay."""
    world = World(store, clock)
    world.run_now("alice", "sign_in")
    retrying = world.start("alice", "handoff_answer_lost")
    while type(retrying.pending).__name__ != "TakeTicket":
        world.advance(retrying)
    world.advance(retrying)  # the redemption runs; its answer is lost
    assert retrying.lose is None and not retrying.done
    if meanwhile is not None:
        world.run_now("alice", meanwhile)
    world.finish(retrying)
    world.check_writes()
    assert world.violations == []
    shop = world.shop.lifecycle
    sid = shop.session_id_in(world.browsers["alice"].header("shop"))
    joined = sid is not None and _live(store.peek(shop.session_key(sid)))
    # Only where nothing happened meanwhile does the retry sign the browser in at the shop.
    assert joined is (meanwhile is None)
