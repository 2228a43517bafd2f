"""sessionshare.core.lifecycle: reading and writing the session, as commands -- no store at all.

Each test drives a step by hand (:func:`script`): it records the commands the
step yields and answers them from a script, so what the lifecycle asks of a
store is visible command by command, and no I/O happens anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest
from conftest import FakeClock
from hypothesis import example, given, settings
from hypothesis import strategies as st

import sessionshare.core.lifecycle as lifecycle_module
from sessionshare import SyncKey
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.ids import SessionIds
from sessionshare.core.lifecycle import ROTATION_GRACE, Lifecycle
from sessionshare.core.record import (
    META_AUTHENTICATED,
    META_CREATED,
    META_ENDS,
    META_JOINED,
    META_RETIRED,
)
from sessionshare.core.session import Session, state_of
from sessionshare.core.sessionstate import ends_at, lifetime_start
from sessionshare.core.steps import Command, Delete, Load, Mark, Move, Peek, Save, Steps
from sessionshare.store.base import MARKED_BEFORE, SessionRecord, is_well_formed

KEY = SyncKey.parse(SyncKey.generate())
ORIGIN = "http://app.test"
SID = SessionIds(KEY, audience=ORIGIN, idle_timeout=600, absolute_timeout=3600).new()


def script(steps: Steps[Any], answers: Iterable[Any] = ()) -> tuple[list[Command], Any]:
    """The commands ``steps`` yields (answered from ``answers``) and its result."""
    commands: list[Command] = []
    replies = iter(answers)
    try:
        command = next(steps)
        while True:
            commands.append(command)
            command = steps.send(next(replies, None))
    except StopIteration as done:
        return commands, done.value


@pytest.fixture
def rules(clock: FakeClock) -> Lifecycle:
    return Lifecycle(cookie=CookieSpec("sid", secure=False), key=KEY, audience=ORIGIN,
                     idle_timeout=600, absolute_timeout=3600, key_prefix="p:",
                     max_session_bytes=64 * 1024, clock=clock)


def test_the_session_id_comes_only_from_its_own_cookie(rules: Lifecycle) -> None:
    value = rules.cookie_value(SID)
    assert rules.session_id_in(f"other=1; sid={value}") == SID
    assert rules.session_id_in(f'sid="{value}"') == SID
    assert rules.session_id_in(f"xsid={value}") is None
    assert rules.session_id_in("sid=short") is None
    assert rules.session_id_in(f"sid={SID}") is None  # the bare id is no cookie value
    sid, tag = value.rsplit(".", 1)
    forged = ("B" if tag[0] == "A" else "A") + tag[1:]
    assert rules.session_id_in(f"sid={sid}.{forged}") is None  # nor is a forged tag
    assert rules.session_id_in(None) is None and rules.session_id_in("") is None


def test_read_is_one_load_that_slides_the_idle_expiry(rules: Lifecycle, clock: FakeClock) -> None:
    record = SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())})
    commands, result = script(rules.read(SID), [record])
    assert commands == [Load(rules.session_key(SID), 600)]
    assert result == record


def test_a_session_past_its_absolute_lifetime_is_deleted_on_read(
    rules: Lifecycle, clock: FakeClock
) -> None:
    old = SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock()) - 3600})
    commands, result = script(rules.read(SID), [old])
    assert commands == [Load(rules.session_key(SID), 600),
                        Delete(rules.session_key(SID), rules.census)]
    assert result is None


def test_the_lifetime_counts_from_the_latest_sign_in(rules: Lifecycle, clock: FakeClock) -> None:
    now = int(clock())
    record = SessionRecord({}, {META_CREATED: now - 3600, META_AUTHENTICATED: now - 60})
    commands, result = script(rules.read(SID), [record])
    assert len(commands) == 1 and result == record


def test_load_does_nothing_for_a_session_without_a_cookie(rules: Lifecycle) -> None:
    session = Session(None, None)
    assert script(rules.load(session)) == ([], None)


def test_load_fills_a_session_once(rules: Lifecycle, clock: FakeClock) -> None:
    session = Session(lambda sid: None, SID)
    record = SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())})
    commands, _ = script(rules.load(session), [record])
    assert len(commands) == 1 and session["user"] == "alice"
    assert script(rules.load(session)) == ([], None)  # read already: nothing more


def test_join_marks_and_reads_the_handed_off_session_in_one_command(
    rules: Lifecycle, clock: FakeClock
) -> None:
    session = Session(lambda sid: None, None)
    record = SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())})
    commands, found = script(rules.join(session, SID), [record])
    joined = {META_JOINED + ORIGIN: int(clock())}
    assert commands == [Mark(rules.session_key(SID), joined, 600)] and found == "joined"
    assert state_of(session).stored_id == SID and state_of(session).has_joined(ORIGIN)
    gone = Session(lambda sid: None, None)
    assert script(rules.join(gone, SID), [None])[1] == "gone"


def test_the_same_hand_off_joins_once(rules: Lifecycle, clock: FakeClock) -> None:
    # Each hand-off's join is a key of its own in the session's hash slot, created in the
    # same command: the store answers MARKED_BEFORE when that hand-off joined already (a
    # replay of its completed callback), whatever other hand-offs joined since.
    record = SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())})
    session = Session(lambda sid: None, None)
    commands, found = script(rules.join(session, SID, handoff="a" * 32, remember_for=125),
                             [record])
    once = f"p:j:{{{rules.ids.digest(SID)}}}" + "a" * 32
    assert once[once.index("{"):once.index("}") + 1] in rules.session_key(SID)  # one slot
    assert commands == [Mark(rules.session_key(SID), {META_JOINED + ORIGIN: int(clock())},
                             600, once, 125)]
    assert found == "joined" and session["user"] == "alice"
    again = Session(lambda sid: None, None)
    assert script(rules.join(again, SID, handoff="a" * 32), [MARKED_BEFORE])[1] == "again"
    assert state_of(again).stored_id is None  # nothing of the session is served to a replay
    other = script(rules.join(Session(lambda sid: None, None), SID, handoff="b" * 32,
                              remember_for=125), [record])[0]
    assert other[0].once != once  # another hand-off's join is a key of its own


def test_a_hand_off_to_an_id_moved_meanwhile_joins_nothing_and_ends_nothing(
    rules: Lifecycle, clock: FakeClock
) -> None:
    # The ticket names an id that a sign-in at the IdP moved after the ticket was made:
    # the store answers the marker and writes nothing into it. The hand-off finds no
    # session, and the marker -- which holds no lifetime of its own -- is not ended as
    # expired (an end follows a marker: it would end the session where it went).
    marker = SessionRecord({}, {META_RETIRED: int(clock())})
    for handoff in (None, 7):
        session = Session(lambda sid: None, None)
        commands, found = script(rules.join(session, SID, handoff=handoff), [marker])
        assert found == "gone" and len(commands) == 1 and isinstance(commands[0], Mark)
        assert state_of(session).stored_id is None and not state_of(session).has_joined(ORIGIN)


def test_persist_an_unchanged_session_writes_nothing(rules: Lifecycle, clock: FakeClock) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, {META_CREATED: int(clock())}))
    assert session["a"] == 1
    assert script(rules.persist(session)) == ([], [("Vary", "Cookie")])


def test_persist_a_new_session_creates_it_and_sets_the_cookie(
    rules: Lifecycle, clock: FakeClock
) -> None:
    session = Session(None, None)
    session["cart"] = [1]
    commands, headers = script(rules.persist(session), [True])
    (save,) = commands
    assert isinstance(save, Save) and save.create and dict(save.changed) == {"cart": "[1]"}
    assert save.ttl == 600 and save.meta == {META_CREATED: int(clock())}
    sid = state_of(session).stored_id
    assert sid is not None and save.key == rules.session_key(sid)
    assert ("Set-Cookie", rules.cookie.set(rules.cookie_value(sid))) in headers


def test_persist_a_changed_session_merges_only_the_change(
    rules: Lifecycle, clock: FakeClock
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1", "b": "2"}, {META_CREATED: int(clock())}))
    session["a"] = 5
    del session["b"]
    commands, headers = script(rules.persist(session), [True])
    (save,) = commands
    assert isinstance(save, Save) and not save.create
    assert dict(save.changed) == {"a": "5"} and list(save.deleted) == ["b"]
    assert headers == [("Vary", "Cookie")]  # the same id: no cookie to send


def test_a_write_to_a_session_gone_meanwhile_clears_the_cookie(
    rules: Lifecycle, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, {META_CREATED: int(clock())}))
    session["a"] = 2
    caplog.set_level(logging.INFO, logger="sessionshare")
    # The store: not written; a peek (only on this path) tells ended from moved.
    commands, headers = script(rules.persist(session), [False, None])
    assert commands[1] == Peek(rules.session_key(SID))
    assert ("Set-Cookie", rules.cookie.clear()) in headers
    assert state_of(session).stored_id is None  # logged out elsewhere: stays logged out
    assert any(m.startswith("change_refused reason=ended ") for m in caplog.messages)


def test_regenerate_moves_the_session_in_one_conditional_step(
    rules: Lifecycle, clock: FakeClock
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, {META_CREATED: int(clock())}))
    session["b"] = 2
    session.regenerate()
    commands, headers = script(rules.persist(session), [True])
    (move,) = commands
    assert isinstance(move, Move) and move.key == rules.session_key(SID)
    assert move.new_key == rules.session_key(str(state_of(session).stored_id)) != move.key
    # Only this request's changes travel: the store moves what it holds *then*, and the
    # old id stays a marker without data for the grace window (a logout follows it).
    assert dict(move.changed) == {"b": "2"} and move.deleted == ()
    assert move.retired_at == int(clock()) and move.grace == ROTATION_GRACE
    assert state_of(session).stored_id not in (None, SID) and dict(session) == {"a": 1, "b": 2}
    moved_to = str(state_of(session).stored_id)
    assert ("Set-Cookie", rules.cookie.set(rules.cookie_value(moved_to))) in headers


@pytest.mark.parametrize(("found", "reason"), [
    (None, "ended"), (SessionRecord({}, {META_RETIRED: 1}), "rotated"),
], ids=["ended", "moved"])
def test_a_move_refused_answers_signed_out_and_says_why(
    rules: Lifecycle, clock: FakeClock, caplog: pytest.LogCaptureFixture,
    found: SessionRecord | None, reason: str,
) -> None:
    # A logout or a revocation ended the session after this request read it (or another
    # request of the browser moved it): the move writes nothing, and the request is
    # signed out -- clearing the cookie only when the session ended.
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())}))
    session.regenerate()
    caplog.set_level(logging.INFO, logger="sessionshare")
    commands, headers = script(rules.persist(session), [False, found])
    assert isinstance(commands[0], Move) and commands[1] == Peek(rules.session_key(SID))
    assert len(commands) == 2 and state_of(session).stored_id is None
    assert session.get("user") is None
    cleared = ("Set-Cookie", rules.cookie.clear()) in headers
    assert cleared == (reason == "ended")
    assert not any(k == "Set-Cookie" and "Max-Age=0" not in v for k, v in headers)
    assert any(m.startswith(f"change_refused reason={reason} ") for m in caplog.messages)


def test_invalidate_deletes_and_clears_the_cookie(rules: Lifecycle, clock: FakeClock) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())}))
    session.invalidate()
    commands, headers = script(rules.persist(session))
    assert commands == [Delete(rules.session_key(SID), rules.census)]
    assert ("Set-Cookie", rules.cookie.clear()) in headers


def test_the_ttl_never_outlives_the_absolute_lifetime(
    rules: Lifecycle, clock: FakeClock
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, {META_CREATED: int(clock()) - 3500}))
    session["a"] = 2
    (save,), _ = script(rules.persist(session), [True])
    assert isinstance(save, Save) and save.ttl == 100  # 3600 - 3500, not the idle 600


def test_the_ttl_never_outlives_an_apps_ask_to_end(rules: Lifecycle, clock: FakeClock) -> None:
    # The ask was stored by an earlier request (another app's, say); this one changes a key.
    asked = {META_CREATED: int(clock()), META_ENDS + "http://other.test": int(clock()) + 40}
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, asked))
    session["a"] = 2
    (save,), _ = script(rules.persist(session), [True])
    assert isinstance(save, Save) and save.ttl == 40  # not the idle 600


def test_a_session_past_an_apps_ask_is_deleted_on_read(
    rules: Lifecycle, clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sessionshare")
    now = int(clock())
    asked = SessionRecord({}, {META_CREATED: now, META_ENDS + "http://other.test": now})
    commands, result = script(rules.read(SID), [asked])
    assert commands == [Load(rules.session_key(SID), 600),
                        Delete(rules.session_key(SID), rules.census)]
    assert result is None and "session_expired reason=asked" in caplog.text
    # An ask withdrawn (0) or still ahead ends nothing.
    for when in (0, now + 1):
        kept = SessionRecord({}, {META_CREATED: now, META_ENDS + "http://other.test": when})
        assert script(rules.read(SID), [kept]) == ([Load(rules.session_key(SID), 600)], kept)


def test_the_id_named_before_persisting_is_the_one_the_move_takes(
    rules: Lifecycle, clock: FakeClock,
) -> None:
    record = SessionRecord({"a": "1"}, {META_CREATED: int(clock())})
    session = Session(lambda sid: record, SID)
    assert rules.id_after_persist(session) == SID  # nothing asked: the id stays
    session.regenerate()
    named = rules.id_after_persist(session)
    assert named not in (None, SID) and rules.id_after_persist(session) == named
    session.regenerate()  # asked again (the IdP's sign-in after Django's cycle_key())
    (move,), _ = script(rules.persist(session), [True])
    assert isinstance(move, Move) and move.new_key == rules.session_key(named)
    # A joined session keeps its id; remember() names another (its limits differ).
    joined = Session(lambda sid: SessionRecord({}, {META_CREATED: int(clock()),
                                                    META_JOINED + ORIGIN: int(clock())}), SID)
    joined.regenerate()
    assert rules.id_after_persist(joined) == SID
    remembered = Session(lambda sid: record, SID)
    remembered.regenerate()
    first = rules.id_after_persist(remembered)
    remembered.remember(days=1)
    assert rules.id_after_persist(remembered) not in (first, SID)
    ended = Session(lambda sid: record, SID)
    ended.invalidate()
    assert rules.id_after_persist(ended) is None


# -- a late persist: the headers went out (security finding 11) ---------------------------


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="sessionshare")
    return caplog


def test_a_late_regenerate_keeps_the_id_and_says_so(
    rules: Lifecycle, clock: FakeClock, logged: pytest.LogCaptureFixture
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"a": "1"}, {META_CREATED: int(clock())}))
    session["a"] = 2
    session.regenerate()
    commands, _ = script(rules.persist(session, late=True), [True])
    (save,) = commands
    assert isinstance(save, Save) and not save.create and save.key == rules.session_key(SID)
    assert state_of(session).stored_id == SID and not session.modified
    (warning,) = logged.messages
    assert warning.startswith("late_change_refused reason=regenerate ")
    assert "before start_response" in warning


def test_a_late_first_write_stores_nothing_and_says_how_to_fix_it(
    rules: Lifecycle, logged: pytest.LogCaptureFixture
) -> None:
    session = Session(None, None)
    session["cart"] = [1]
    assert script(rules.persist(session, late=True)) == ([], [("Vary", "Cookie")])
    (warning,) = logged.messages
    assert warning.startswith("late_change_refused reason=new_session ")
    assert "write the session before start_response" in warning


def test_a_late_invalidate_still_deletes_without_a_cookie_header(
    rules: Lifecycle, clock: FakeClock, logged: pytest.LogCaptureFixture
) -> None:
    session = Session(lambda sid: None, SID)
    state_of(session).fill(SessionRecord({"user": '"alice"'}, {META_CREATED: int(clock())}))
    session.invalidate()
    commands, headers = script(rules.persist(session, late=True))
    assert commands == [Delete(rules.session_key(SID), rules.census)]
    assert headers == [("Vary", "Cookie")] and logged.messages == []


@pytest.mark.parametrize("writes", [False, True], ids=["reads", "writes"])
def test_a_request_that_reads_a_moved_id_leaves_the_cookie_alone(
    rules: Lifecycle, clock: FakeClock, writes: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16 finding 12: the id in this request's cookie was moved by a sign-in in another
    # request of the same browser, which sets the new cookie. Clearing the cookie (nothing
    # found) or setting a new session's (a write) would sign that browser out again.
    session = Session(lambda sid: None, SID)
    commands, _ = script(rules.load(session), [
        SessionRecord({}, {META_CREATED: int(clock()), META_RETIRED: int(clock())})
    ])
    assert session.new and session.get("user") is None
    if writes:
        session["cart"] = [1]
    caplog.set_level("WARNING", logger="sessionshare")
    commands, headers = script(rules.persist(session))
    assert commands == [] and headers == [("Vary", "Cookie")]
    refusals = [r.getMessage() for r in caplog.records if "change_refused" in r.getMessage()]
    assert len(refusals) == int(writes)
    assert all(m.startswith("change_refused reason=rotated") for m in refusals)


# -- review: a stored time no clock reaches -------------------------------------------------
@pytest.mark.parametrize("field", [META_ENDS + "http://other.test", META_CREATED,
                                   META_AUTHENTICATED])
@pytest.mark.parametrize("when", [10**400, -(10**400)], ids=["huge", "huge_negative"])
def test_a_stored_time_past_any_clock_is_damage_not_a_500(
    rules: Lifecycle, clock: FakeClock, field: str, when: float,
) -> None:
    # Valid JSON (a 400-digit integer, which Python's json reads as an int): every app of
    # every version, and anything else with access to the store, writes these records. A
    # write of the session then raised OverflowError (the TTL: a time minus now as a float)
    # -- a 500 on every request that changes it. Such a record is damage: no session.
    record = SessionRecord({"a": "1"}, {META_CREATED: int(clock()), field: when})
    session = Session(lambda sid: script(rules.read(sid), [record])[1], SID)
    session["a"] = 2
    script(rules.persist(session), [True, True])  # no OverflowError
    moved = state_of(session).sid != SID  # (no id in an assertion's message)
    assert session.new is False and moved  # stored as a new session
    assert script(rules.read(SID), [record])[1] is None  # the damaged one reads as none


# -- the cookie's lifetime: cookie_max_age, cookie_refresh, what an adapter asks ---------------
def _timed_rules(clock: FakeClock, **options: Any) -> Lifecycle:
    return Lifecycle(cookie=CookieSpec("sid", secure=False), key=KEY, audience=ORIGIN,
                     idle_timeout=600, absolute_timeout=3600, key_prefix="p:",
                     max_session_bytes=64 * 1024, clock=clock, **options)


def _read(rules: Lifecycle, cookies: str, clock: FakeClock) -> Session:
    session = rules.open(cookies)
    state = state_of(session)
    if state.sid is not None:
        script(rules.load(session), [SessionRecord({"k": '"v"'}, {META_CREATED: int(clock())})])
    return session


def test_a_timed_cookie_is_refreshed_on_a_read_that_changes_nothing(clock: FakeClock) -> None:
    rules = _timed_rules(clock, cookie_max_age=60)
    value = rules.cookie_value(SID)
    assert rules.session_id_in(f"sid={value}") == SID
    untimed = SessionIds(KEY, audience=ORIGIN, idle_timeout=600,
                         absolute_timeout=3600).cookie_value(SID)
    assert rules.session_id_in(f"sid={untimed}") is None  # only timed values, once timed
    clock.advance(30)
    headers = rules.settle(_read(rules, f"sid={value}", clock))
    assert isinstance(headers, list)
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    assert ("Vary", "Cookie") in headers and "Max-Age=60" in set_cookie
    assert rules.session_id_in("sid=" + set_cookie.split(";")[0].split("=", 1)[1]) == SID
    # Nothing to refresh without a cookie, nor at the defaults.
    assert rules.settle(rules.open(None)) == []
    plain = _timed_rules(clock)
    assert plain.settle(_read(plain, f"sid={plain.cookie_value(SID)}", clock)) == []


def test_refresh_off_resends_nothing(clock: FakeClock) -> None:
    rules = _timed_rules(clock, cookie_max_age=60, cookie_refresh=False)
    session = _read(rules, f"sid={rules.cookie_value(SID)}", clock)
    assert rules.settle(session) == []


def test_an_adapter_asks_a_persistent_or_a_browser_session_cookie(clock: FakeClock) -> None:
    rules = _timed_rules(clock)  # no cookie_max_age
    session = _read(rules, f"sid={rules.cookie_value(SID)}", clock)
    state_of(session).ask_cookie(120)
    headers = rules.settle(session)
    assert isinstance(headers, list)
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    assert "Max-Age=120" in set_cookie and "Expires=" in set_cookie
    session = _read(rules, f"sid={rules.cookie_value(SID)}", clock)
    state_of(session).ask_cookie(120, refresh=False)
    assert rules.settle(session) == []
    timed = _timed_rules(clock, cookie_max_age=60)
    session = _read(timed, f"sid={timed.cookie_value(SID)}", clock)
    state_of(session).ask_cookie(None)  # re-sent as asked, as a browser-session cookie
    headers = timed.settle(session)
    assert isinstance(headers, list)
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    assert "Max-Age" not in set_cookie and ("Vary", "Cookie") in headers
    session = _read(timed, f"sid={timed.cookie_value(SID)}", clock)
    state_of(session).ask_cookie(None, refresh=False)
    assert timed.settle(session) == []
    state_of(session).ask_cookie(None, refresh=False)
    session["k"] = "w"
    plan = timed.settle(session)
    commands, headers = script(timed.write(session, plan), [True])
    assert not [v for k, v in headers if k == "Set-Cookie"]  # an update keeps the cookie
    fresh = timed.open(None)
    fresh["k"] = "v"
    state_of(fresh).ask_cookie(None, refresh=False)
    _, headers = script(timed.write(fresh, timed.settle(fresh)), [True])
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    assert "Max-Age" not in set_cookie and "Expires" not in set_cookie
    # ...yet its value is timed: the server still holds it to cookie_max_age.
    assert timed.session_id_in("sid=" + set_cookie.split(";")[0].split("=", 1)[1]) is not None


def test_a_remembered_sign_in_and_max_age_give_the_shorter_lifetime(clock: FakeClock) -> None:
    remembered = SessionIds(KEY, audience=ORIGIN, idle_timeout=600,
                            absolute_timeout=3600).new(remember=(600, 7200))
    now = int(clock())
    short = _timed_rules(clock, cookie_max_age=60, max_remember=None)
    assert "Max-Age=60;" in short.set_cookie(remembered, now)
    long = _timed_rules(clock, cookie_max_age=86400, max_remember=None)
    assert "Max-Age=7200;" in long.set_cookie(remembered, now)
    plain = _timed_rules(clock, max_remember=None)
    assert "Max-Age=7200;" in plain.set_cookie(remembered, now)
    assert "Max-Age" not in plain.set_cookie(SID, now)


class _ScriptedStore:
    """A thread store answering ``load`` from a script, recording what it was asked as
    the commands the steps would have yielded."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.commands: list[Command] = []

    def load(self, key: str, idle_ttl: int) -> Any:
        self.commands.append(Load(key, idle_ttl))
        return self.answer

    def delete(self, key: str, census: str | None = None) -> None:
        self.commands.append(Delete(key, census))


def test_read_on_a_thread_store_is_the_read_called_directly(
    rules: Lifecycle, clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:
    # The thread shells' loader reads without driving steps: every kind of record must
    # come out as read's -- the same commands (one Load; the Delete of an ended one),
    # the same result, the same event.
    caplog.set_level(logging.INFO, logger="sessionshare")
    now = int(clock())
    records: dict[str, Any] = {
        "live": SessionRecord({"user": '"alice"'}, {META_CREATED: now}),
        "none": None,
        "absolute": SessionRecord({"user": '"alice"'}, {META_CREATED: now - 3600}),
        "asked": SessionRecord({}, {META_CREATED: now, META_ENDS + "http://other.test": now}),
        "damaged": SessionRecord({"user": 1}, {META_CREATED: now}),  # type: ignore[dict-item]
        "marker": SessionRecord({}, {META_CREATED: now - 7200, META_RETIRED: 1}),
    }
    foreign = SessionIds(SyncKey.parse(SyncKey.generate()), audience=ORIGIN,
                         idle_timeout=600, absolute_timeout=3600).new()
    for name, record in records.items():
        for sid in (SID, foreign):
            caplog.clear()
            expected = script(rules.read(sid), [record])
            read_events = caplog.text
            caplog.clear()
            store = _ScriptedStore(record)
            got = rules.read_on(sid, store)  # type: ignore[arg-type]
            assert (store.commands, got) == expected, name
            assert caplog.text == read_events, name
    assert len(script(rules.read(SID), [records["absolute"]])[0]) == 2  # (the case is live)


def test_the_reads_kept_store_keys_stay_right_when_they_start_over(
    rules: Lifecycle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A read finds a session's store key and limits once and keeps them (bounded): each
    # read, before and after the kept ones start over, loads that id's own key with its
    # own idle limit, and an id of another deployment is never kept as known.
    monkeypatch.setattr(lifecycle_module, "_WHERES_KEPT", 8)
    foreign = SessionIds(SyncKey.parse(SyncKey.generate()), audience=ORIGIN,
                         idle_timeout=600, absolute_timeout=3600).new()
    remembered = rules.ids.new((120, 3000))
    for sid in [SID, remembered, *(rules.ids.new() for _ in range(20)), SID, remembered]:
        for _ in range(2):
            store = _ScriptedStore(None)
            assert rules.read_on(sid, store) is None  # type: ignore[arg-type]
            idle = 120 if sid == remembered else 600
            assert store.commands == [Load(rules.session_key(sid), idle)]
            assert script(rules.read(sid), [None]) == ([Load(rules.session_key(sid), idle)],
                                                        None)
        store = _ScriptedStore(None)
        assert rules.read_on(foreign, store) is None  # type: ignore[arg-type]
        assert store.commands == []  # not this deployment's: no read at all


_META_NAMES = st.sampled_from([META_CREATED, META_AUTHENTICATED, META_RETIRED,
                               META_ENDS + "http://a.test", META_ENDS + "http://b.test",
                               META_ENDS, META_JOINED + ORIGIN, "x", 1])
_META_VALUES = st.one_of(st.integers(-2**60, 2**60), st.integers(-10, 10**10),
                         st.floats(allow_nan=True), st.booleans(), st.text(max_size=2),
                         st.none())


@settings(max_examples=400, deadline=None)
@given(fields=st.one_of(st.dictionaries(st.one_of(st.text(max_size=3), st.integers()),
                                        st.one_of(st.text(max_size=3), st.integers()),
                                        max_size=3), st.lists(st.text(), max_size=1)),
       meta=st.one_of(st.dictionaries(_META_NAMES, _META_VALUES, max_size=4),
                      st.lists(st.integers(), max_size=1)),
       absolute=st.integers(1, 10**6))
@example(fields={}, meta={META_CREATED: 1_700_000_000, META_ENDS + "http://a.test": 0},
         absolute=3600)  # a withdrawn ask ends nothing
@example(fields={"k": "1"}, meta={META_CREATED: 1_700_000_000, "x": 2**53 + 1},
         absolute=3600)  # past any clock: damage
@example(fields={}, meta={META_CREATED: 1_700_000_000, META_ENDS + "a": 1_700_000_100,
                          META_ENDS + "b": 1_699_999_999}, absolute=3600)  # the earliest
def test_the_reads_verdict_is_the_shape_check_and_both_ends(
    fields: Any, meta: Any, absolute: int
) -> None:
    # The read checks a record's shape and its ends in one pass over the metadata; held
    # here to the helpers it inlines: is_well_formed, lifetime_start and ends_at.
    clock = FakeClock(1_700_000_000)
    rules = Lifecycle(cookie=CookieSpec("sid", secure=False), key=KEY, audience=ORIGIN,
                      idle_timeout=600, absolute_timeout=3600, key_prefix="p:",
                      max_session_bytes=64 * 1024, clock=clock)
    if not is_well_formed(fields, meta):
        expected: str | None = "damaged"
    elif META_RETIRED in meta:
        expected = None
    elif lifetime_start(meta, 0) + absolute <= clock():
        expected = "absolute"
    else:
        asked = ends_at(meta)
        expected = "asked" if asked is not None and asked <= clock() else None
    # Seen through the read (limits of ``absolute`` seconds): a live record or a marker
    # is served; damage reads as none and is left alone; an ended one is deleted.
    limited = SessionIds(KEY, audience=ORIGIN, idle_timeout=600, absolute_timeout=absolute)
    rules.ids = limited
    sid = limited.new()
    record = SessionRecord(fields, meta)
    commands, result = script(rules.read(sid), [record])
    load = Load(rules.session_key(sid), 600)
    if expected is None:
        assert (commands, result) == ([load], record)
    elif expected == "damaged":
        assert (commands, result) == ([load], None)
    else:
        assert (commands, result) == ([load, Delete(rules.session_key(sid), rules.census)],
                                      None)
