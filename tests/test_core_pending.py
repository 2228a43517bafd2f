"""core/pending.py: pending hand-offs hold no usable state and survive what the app writes."""

from __future__ import annotations

import json

from conftest import FakeClock

from sessionshare import Session, SyncKey
from sessionshare.core.pending import PENDING_KEY, PENDING_TTL, PendingHandoffs

STATE = "S" * 21 + "t" * 22
CALLBACK = "http://shop.test/_sessionshare/callback"


def test_the_session_holds_a_keyed_name_and_a_seal_never_the_state(clock: FakeClock) -> None:
    key = SyncKey.parse(SyncKey.generate())
    pending = PendingHandoffs(key, clock=clock)
    session = Session()
    pending.remember(session, CALLBACK, "http://shop.test", STATE)
    text = json.dumps(dict(session))
    assert STATE not in text and pending.name(STATE) in text
    # Another deployment's key names the same state differently.
    other = PendingHandoffs(SyncKey.parse(SyncKey.generate()), clock=clock)
    assert other.name(STATE) != pending.name(STATE)
    assert pending.take(session, posted_state=None, newest=True) == (CALLBACK, STATE)
    assert PENDING_KEY not in session


def test_a_seal_moved_under_another_name_is_refused(clock: FakeClock) -> None:
    pending = PendingHandoffs(SyncKey.parse(SyncKey.generate()), clock=clock)
    session = Session()
    pending.remember(session, CALLBACK, "http://shop.test", STATE)
    entries = dict(session[PENDING_KEY])
    session[PENDING_KEY] = {pending.name("x" * 43): entries[pending.name(STATE)]}
    assert pending.take(session, posted_state=None, newest=True) is None


def test_a_hand_off_pending_across_a_key_rotation_is_still_found(clock: FakeClock) -> None:
    old, new = SyncKey.generate(), SyncKey.generate()
    session = Session()
    PendingHandoffs(SyncKey.parse(old), clock=clock).remember(
        session, CALLBACK, "http://shop.test", STATE
    )
    rotated = PendingHandoffs(SyncKey.parse([new, old]), clock=clock)
    assert rotated.take(session, posted_state=STATE, newest=False) == (CALLBACK, STATE)
    session2 = Session()
    PendingHandoffs(SyncKey.parse(old), clock=clock).remember(
        session2, CALLBACK, "http://shop.test", STATE
    )
    assert rotated.take(session2, posted_state=None, newest=True) == (CALLBACK, STATE)


def test_expired_and_malformed_entries_are_dropped(clock: FakeClock) -> None:
    pending = PendingHandoffs(SyncKey.parse(SyncKey.generate()), clock=clock)
    session = Session()
    pending.remember(session, CALLBACK, "http://shop.test", STATE)
    entries = dict(session[PENDING_KEY])
    entries["junk"] = [CALLBACK, "http://shop.test", True, "x"]
    entries["short"] = [CALLBACK]
    session[PENDING_KEY] = entries
    clock.advance(PENDING_TTL + 1)
    assert pending.take(session, posted_state=None, newest=True) is None
    assert PENDING_KEY not in session
