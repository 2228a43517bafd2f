"""sessionshare.core.session: the Session mapping, its change tracking and its write plan."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import webtest
from conftest import FakeClock, live_session_keys
from hypothesis import given, settings
from hypothesis import strategies as st
from sessionapp import COOKIE, make_manager, read_all, session_app, session_browser, set_values

from sessionshare import Session, SessionEnded, SessionStore
from sessionshare.core.record import META_AUTHENTICATED, META_CREATED, META_ENDS, WritePlan
from sessionshare.core.session import state_of
from sessionshare.core.sessionstate import decode as _loads
from sessionshare.core.sessionstate import encode as _encode
from sessionshare.core.sessionstate import lifetime_start
from sessionshare.store.base import SessionRecord, unescaped

# -- the mapping -------------------------------------------------------------------------


def test_session_is_a_json_mapping() -> None:
    session = Session()
    session["a"] = 1
    session["b"] = {"x": [1, 2]}
    assert dict(session) == {"a": 1, "b": {"x": [1, 2]}}
    assert len(session) == 2 and "a" in session and "z" not in session
    del session["a"]
    assert list(session) == ["b"]
    with pytest.raises(KeyError):
        del session["a"]
    with pytest.raises(KeyError):
        session["missing"]
    assert session.get("missing", 5) == 5


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, b"bytes", float("nan"), float("inf"), {"k": object()}],
    ids=["object", "set", "bytes", "nan", "inf", "nested object"],
)
def test_non_json_values_raise_type_error_at_assignment(value: object) -> None:
    session = Session()
    with pytest.raises(TypeError, match="only JSON values"):
        session["bad"] = value
    assert "bad" not in session


def test_keys_must_be_strings() -> None:
    with pytest.raises(TypeError, match="strings"):
        Session()[1] = "x"  # type: ignore[index]


def test_repr_shows_no_id(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    app = webtest.TestApp(session_app(manager, set_values({"a": 1})))
    sid = app.get("/").headers["Set-Cookie"].split(";")[0].split("=")[1]
    environ = {"HTTP_COOKIE": f"{COOKIE}={sid}"}
    session = manager.open(environ)
    assert sid not in repr(session)
    assert "unloaded" in repr(session)


# -- change tracking ---------------------------------------------------------------------


def test_nested_changes_are_persisted(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"cart": ["a"], "profile": {"n": 1}}),
        "/append": lambda s, e: s["cart"].append("b"),
        "/nested": lambda s, e: s["profile"].update(n=2),
        "/read": read_all,
    })
    app.get("/new")
    app.get("/append")
    app.get("/nested")
    assert app.get("/read").json == {"cart": ["a", "b"], "profile": {"n": 2}}


def test_delete_and_reassign_are_persisted(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1, "b": 2}),
        "/del": lambda s, e: s.pop("a"),
        "/readd": set_values({"a": 3}),
        "/read": read_all,
    })
    app.get("/new")
    app.get("/del")
    assert app.get("/read").json == {"b": 2}
    app.get("/readd")
    assert app.get("/read").json == {"a": 3, "b": 2}


def test_odd_unicode_values_round_trip_and_bad_keys_fail_at_assignment(
    store: SessionStore, clock: FakeClock
) -> None:
    manager, app = session_browser(store, clock)
    odd = {"surrogate": "\ud800", "accents": "café ☕", "nul": "a\x00b"}
    app.handlers.update({"/new": set_values(odd), "/read": read_all})
    app.get("/new")
    assert app.get("/read").json == {k: v for k, v in odd.items() if k != "surrogate"} | {
        "surrogate": "\ud800"
    }
    with pytest.raises(TypeError, match="valid Unicode"):
        Session()["\udc80"] = 1


# -- a dict, as Starlette's and FastAPI's request.session is ------------------------------


def test_session_is_a_dict_that_json_serialises() -> None:
    session = _stored({"a": 1, "cart": ["x"]})
    assert isinstance(session, dict)
    # The C encoder and orjson read a dict's own storage: it holds the session's values.
    assert json.dumps({"session": session}) == '{"session": {"a": 1, "cart": ["x"]}}'
    session["b"] = "two"
    del session["a"]
    assert json.dumps(session) == '{"cart": ["x"], "b": "two"}'
    assert dict.__len__(session) == 2 and dict.__getitem__(session, "b") == "two"


def test_a_lazy_session_is_read_by_the_first_dict_operation() -> None:
    # Not json.dumps: its C encoder answers "{}" for a dict whose storage is empty without
    # calling a method, so a session nothing has looked at yet (WSGI only: the ASGI shell
    # reads it before the app runs) serialises empty -- the module's docstring says so.
    for look in (dict, lambda s: {**s}, lambda s: s.copy(), lambda s: s == {"a": 1},
                 lambda s: list(s.items()), lambda s: list(reversed(s)), lambda s: s | {}):
        session = Session(lambda sid: SessionRecord({"a": "1"}, {META_CREATED: CREATED}), SID)
        assert not state_of(session).loaded
        assert look(session) in ({"a": 1}, True, [("a", 1)], ["a"])
        assert state_of(session).loaded


def test_in_place_or_update_and_setdefault_are_tracked() -> None:
    session = _stored({"a": 1})
    merged = session
    merged |= {"b": 2}
    assert merged is session and session == {"a": 1, "b": 2}
    session.update({"c": [3]}, d=4)
    assert session.setdefault("a", 9) == 1 and session.setdefault("e") is None
    assert state_of(session).write_plan(NOW).changed == {
        "b": "2", "c": "[3]", "d": "4", "e": "null"}
    with pytest.raises(TypeError, match="only JSON values"):
        session |= {"bad": object()}
    with pytest.raises(TypeError, match="strings"):
        session.update({1: "x"})
    assert "bad" not in session and 1 not in session


def test_popitem_takes_the_last_key_as_a_dict_does() -> None:
    session = _stored({"a": 1, "b": 2})
    session["c"] = 3
    assert session.popitem() == ("c", 3)
    assert session.popitem() == ("b", 2)
    assert list(session) == ["a"]
    plan = state_of(session).write_plan(NOW)
    assert plan.deleted == ("b",) and plan.changed == {}
    with pytest.raises(KeyError):
        Session().popitem()


def test_copy_and_or_give_plain_dicts_the_session_does_not_follow() -> None:
    session = _stored({"a": 1, "cart": ["x"]})
    copied = session.copy()
    assert type(copied) is dict and copied == {"a": 1, "cart": ["x"]}
    copied["a"] = 2
    assert session["a"] == 1 and not session.modified
    joined = session | {"z": 0}
    assert type(joined) is dict and joined == {"a": 1, "cart": ["x"], "z": 0}
    assert {"z": 0} | session == {"z": 0, "a": 1, "cart": ["x"]}
    assert "z" not in session and not session.modified


@pytest.mark.parametrize("hand", [
    lambda s: [v for k, v in s.items() if k == "cart"][0],
    lambda s: [v for v in s.values() if isinstance(v, list)][0],
    lambda s: s.copy()["cart"], lambda s: (s | {})["cart"], lambda s: ({} | s)["cart"],
    lambda s: s["cart"], lambda s: s.get("cart"), lambda s: s.setdefault("cart", []),
], ids=["items", "values", "copy", "or", "ror", "getitem", "get", "setdefault"])
def test_a_value_handed_out_and_changed_in_place_is_persisted(hand: Any) -> None:
    session = _stored({"cart": ["x"], "n": 1})
    hand(session).append("y")
    assert state_of(session).write_plan(NOW).changed == {"cart": '["x","y"]'}


def test_values_never_handed_out_are_not_encoded_again() -> None:
    # Stored text another writer spelled differently ("[1, 2]"): encoding it again would
    # find a change where there is none, and write the session back for nothing.
    session = Session(lambda sid: SessionRecord({"cart": "[1, 2]", "n": "1"},
                                                {META_CREATED: CREATED}), SID)
    assert session.get("n") == 1 and "cart" in session and len(session) == 2
    assert json.dumps(session["n"]) == "1" and list(session) == ["cart", "n"]
    assert state_of(session).write_plan(NOW).unchanged and not session.modified
    list(session.items())  # every value handed out: the list is compared (and rewritten)
    assert state_of(session).write_plan(NOW).changed == {"cart": "[1,2]"}


def test_a_session_read_and_left_alone_still_ends_when_its_asked_end_passes() -> None:
    """Nothing assigned, only text and numbers handed out: nothing to write -- unless the
    end an app asked for passed since the read; then it ends, as at its limits."""
    session = _stored({"user": "alice", "n": 1},
                      {META_CREATED: CREATED, META_ENDS + "https://shop.example": NOW + 5})
    assert session.get("user") == "alice" and session["n"] == 1
    assert state_of(session).write_plan(NOW).unchanged
    plan = state_of(session).write_plan(NOW + 10)
    assert plan.drop == SID and plan.save_to is None


def test_pop_and_clear_are_tracked() -> None:
    session = _stored({"a": 1, "b": 2})
    assert session.pop("a") == 1 and session.pop("missing", None) is None
    with pytest.raises(KeyError):
        session.pop("missing")
    assert session.modified and state_of(session).write_plan(NOW).deleted == ("a",)
    session.clear()
    assert session == {} and not session and len(session) == 0


# -- the write plan ------------------------------------------------------------------

NOW = 1_800_000_000
SID = "S" * 43
CREATED = NOW - 100


def _stored(fields: dict[str, Any], meta: dict[str, int] | None = None) -> Session:
    """A loaded session whose store holds ``fields`` under ``SID``."""
    text = {key: json.dumps(value, separators=(",", ":")) for key, value in fields.items()}
    meta = {META_CREATED: CREATED} if meta is None else meta

    def load(sid: str) -> SessionRecord | None:
        return SessionRecord(dict(text), dict(meta)) if sid == SID else None

    session = Session(load, SID)
    assert not session.new
    return session


def _missing(sid: str) -> SessionRecord | None:
    return None


def _assert_fresh_id(plan: WritePlan) -> str:
    # A detached session's ids are bare random ones; an app's carry key id and limits.
    assert plan.save_to is not None and re.fullmatch("[A-Za-z0-9_-]{43}", plan.save_to)
    assert plan.save_to != SID
    return plan.save_to


def test_plan_unchanged_reads_and_same_value_writes() -> None:
    session = _stored({"a": 1, "cart": ["x"], "profile": {"n": 1}})
    session["a"], session["cart"], session["profile"]  # noqa: B018 -- read only
    session["a"] = 1  # written, but the same JSON text
    plan = state_of(session).write_plan(NOW)
    assert plan == WritePlan() and plan.unchanged
    assert not session.modified


def test_plan_of_a_session_nobody_looked_at_reads_nothing() -> None:
    reads: list[str] = []

    def load(sid: str) -> SessionRecord | None:
        reads.append(sid)
        return SessionRecord({"a": "1"}, {META_CREATED: CREATED})

    session = Session(load, SID)
    assert not state_of(session).loaded and state_of(session).had_cookie
    assert state_of(session).write_plan(NOW).unchanged
    assert reads == [] and not state_of(session).loaded


def test_plan_new_session_creates_under_a_fresh_id() -> None:
    session = Session(_missing, "P" * 43)  # a cookie naming nothing stored
    session["cart"] = [1]
    plan = state_of(session).write_plan(NOW)
    assert _assert_fresh_id(plan) != "P" * 43  # fixation: never the client's id
    assert plan.create and plan.drop is None and not plan.drop_first
    assert plan.changed == {"cart": "[1]"} and plan.deleted == ()
    assert plan.meta == {META_CREATED: NOW} and plan.lifetime_start == NOW
    assert plan.cookie == "set"
    # Planning changes nothing: the session is still new and dirty.
    assert session.new and state_of(session).stored_id is None and session.modified


@pytest.mark.parametrize(
    ("sid", "cookie"), [(None, "keep"), ("P" * 43, "clear")], ids=["no cookie", "stale cookie"]
)
def test_plan_empty_new_session_writes_nothing(sid: str | None, cookie: str) -> None:
    session = Session(_missing, sid)
    assert session.get("anything") is None
    session["a"] = 1
    del session["a"]
    assert state_of(session).write_plan(NOW) == WritePlan(cookie=cookie)  # type: ignore[arg-type]


def test_plan_changed_keys_only() -> None:
    session = _stored({"a": 1, "cart": ["x"], "keep": 2})
    session["a"] = 2
    session["cart"].append("y")
    session["keep"]  # noqa: B018 -- read only
    session["new"] = None
    assert state_of(session).write_plan(NOW) == WritePlan(
        save_to=SID, changed={"a": "2", "cart": '["x","y"]', "new": "null"},
        lifetime_start=CREATED,
    )


def test_plan_deleted_keys() -> None:
    session = _stored({"a": 1, "b": 2, "c": 3, "kept": 0})
    del session["a"]
    session.pop("b")
    session["c"] = 4
    del session["c"]
    session["fresh"] = 1
    del session["fresh"]  # never stored: nothing to delete
    plan = state_of(session).write_plan(NOW)
    assert plan.save_to == SID and not plan.create and plan.changed == {}
    assert sorted(plan.deleted) == ["a", "b", "c"]
    assert plan.meta is None and plan.cookie == "keep" and plan.drop is None


@pytest.mark.parametrize("empty", [
    lambda s: s.clear(), lambda s: s.pop("a") and s.pop("b"),
    lambda s: [s.popitem(), s.popitem()],
], ids=["clear", "pop", "popitem"])
def test_plan_emptied_session_ends_it_and_clears_the_cookie(empty: Any) -> None:
    # As Starlette, Flask and Django do with an emptied session: no store entry, no cookie.
    session = _stored({"a": 1, "b": [2]}, {META_CREATED: CREATED, META_AUTHENTICATED: CREATED})
    empty(session)
    assert session == {} and session.modified
    assert state_of(session).write_plan(NOW) == WritePlan(drop=SID, cookie="clear")


def test_plan_emptied_then_written_again_is_an_update() -> None:
    session = _stored({"a": 1, "b": 2})
    session.clear()
    session["c"] = 3
    assert state_of(session).write_plan(NOW) == WritePlan(
        save_to=SID, changed={"c": "3"}, deleted=("a", "b"), lifetime_start=CREATED)


def test_emptied_session_is_gone_from_the_store(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({"/new": set_values({"a": 1}), "/clear": lambda s, e: s.clear(),
                         "/read": read_all})
    app.get("/new")
    assert app.get("/read").json == {"a": 1}
    cleared = app.get("/clear")
    assert [h for h in cleared.headers.getall("Set-Cookie") if "Max-Age=0" in h], cleared.headers
    assert COOKIE not in app.cookies
    assert app.get("/read").json == {} and "Set-Cookie" not in app.get("/read").headers


def test_plan_deleted_then_set_again_is_a_change() -> None:
    session = _stored({"a": 1})
    del session["a"]
    session["a"] = 5
    assert state_of(session).write_plan(NOW) == WritePlan(
        save_to=SID, changed={"a": "5"}, lifetime_start=CREATED
    )


def test_plan_regenerate_moves_the_stored_session_with_its_changes() -> None:
    session = _stored({"a": 1, "b": 2}, {META_CREATED: CREATED, META_AUTHENTICATED: NOW - 50})
    session["c"] = 3
    del session["b"]
    session.regenerate()
    plan = state_of(session).write_plan(NOW)
    _assert_fresh_id(plan)
    # One conditional move of what the store holds then, with this request's changes: a
    # key another app wrote since this request read the session is kept, and a session
    # ended meanwhile is not brought back (see Lifecycle.write).
    assert plan.move_from == SID and not plan.create and plan.drop is None
    assert plan.changed == {"c": "3"} and plan.deleted == ("b",)
    # Metadata too: only what this request set. The store keeps the rest as it holds it
    # then, so a field written since this request read it (an operator's withdraw) stands.
    assert plan.meta == {}
    assert plan.lifetime_start == NOW - 50 and plan.cookie == "set"


def test_plan_sends_only_the_metadata_this_request_set() -> None:
    """A save and a move carry the metadata fields this request changed, never the others
    as it read them: those may have been changed since (a withdraw of an app), and sending
    them back would undo that. A brand-new session sends all of its metadata."""
    joined = {META_CREATED: CREATED, META_AUTHENTICATED: NOW - 50, "o:https://shop.test": NOW - 40}
    saving = _stored({"a": 1}, joined)
    state_of(saving).mark_authenticated(NOW)
    plan = state_of(saving).write_plan(NOW)
    assert plan.move_from is None and plan.meta == {META_AUTHENTICATED: NOW}
    moving = _stored({"a": 1}, joined)
    moving.withdraw("https://blog.test")  # never joined: no change
    state_of(moving).mark_authenticated(NOW)
    moving.regenerate()
    plan = state_of(moving).write_plan(NOW)
    assert plan.move_from == SID and plan.meta == {META_AUTHENTICATED: NOW}
    assert plan.lifetime_start == NOW
    fresh = Session()
    fresh["a"] = 1
    state_of(fresh).mark_authenticated(NOW)
    plan = state_of(fresh).write_plan(NOW)
    assert plan.create and plan.meta == {META_CREATED: NOW, META_AUTHENTICATED: NOW}


def test_plan_regenerate_of_an_emptied_session_only_drops_it() -> None:
    session = _stored({"a": 1})
    del session["a"]
    session.regenerate()
    assert state_of(session).write_plan(NOW) == WritePlan(drop=SID, cookie="clear")


def test_plan_invalidate_drops_first_and_clears_the_cookie() -> None:
    session = _stored({"a": 1}, {META_CREATED: CREATED, META_AUTHENTICATED: CREATED})
    session.invalidate()
    assert state_of(session).write_plan(NOW) == WritePlan(drop=SID, drop_first=True, cookie="clear")


def test_plan_invalidate_of_a_new_session_without_cookie_does_nothing() -> None:
    session = Session(_missing, None)
    session["a"] = 1
    session.invalidate()
    assert state_of(session).write_plan(NOW).unchanged


def test_plan_invalidate_then_write_starts_a_new_session() -> None:
    session = _stored({"a": 1, "user": "alice"}, {META_CREATED: CREATED, META_AUTHENTICATED: 7})
    session.invalidate()
    session["user"] = "bob"
    state_of(session).mark_authenticated(NOW)
    plan = state_of(session).write_plan(NOW)
    _assert_fresh_id(plan)
    assert plan.create and plan.drop == SID and plan.drop_first
    # Nothing of the old session survives: neither its keys nor its times.
    assert plan.changed == {"user": '"bob"'} and plan.deleted == ()
    assert plan.meta == {META_CREATED: NOW, META_AUTHENTICATED: NOW}
    assert plan.cookie == "set"


def test_plan_invalidate_then_only_metadata_writes_no_session() -> None:
    session = _stored({"a": 1})
    session.invalidate()
    state_of(session).mark_authenticated(NOW)
    assert state_of(session).write_plan(NOW) == WritePlan(drop=SID, drop_first=True, cookie="clear")


def test_plan_meta_only() -> None:
    session = _stored({"a": 1})
    state_of(session).mark_authenticated(NOW)
    assert state_of(session).write_plan(NOW) == WritePlan(
        save_to=SID, meta={META_AUTHENTICATED: NOW},  # only the field that changed
        lifetime_start=NOW,  # a sign-in starts a fresh absolute lifetime
    )


def test_plan_meta_only_on_a_new_session_creates_it() -> None:
    session = Session(_missing, None)
    state_of(session).mark_authenticated(NOW - 1)
    plan = state_of(session).write_plan(NOW)
    _assert_fresh_id(plan)
    assert plan.create and plan.changed == {} and plan.cookie == "set"
    assert plan.meta == {META_CREATED: NOW, META_AUTHENTICATED: NOW - 1}


# -- the late plan: the response's headers are already out (security finding 11) ------------
# No cookie can reach the browser any more: a late plan may update or delete the stored
# session, never move it to a new id (the browser's id would die with no other sent) nor
# create one (an orphan no browser holds); what it leaves out is named in ``refused``.


def test_late_plan_updates_the_stored_session_as_usual() -> None:
    session = _stored({"a": 1, "b": 2})
    session["a"] = 2
    del session["b"]
    state_of(session).mark_authenticated(NOW)
    plan = state_of(session).write_plan(NOW, late=True)
    assert plan == state_of(session).write_plan(NOW) and plan.refused is None
    assert state_of(_stored({"a": 1})).write_plan(NOW, late=True) == WritePlan()


def test_late_plan_keeps_the_id_instead_of_regenerating() -> None:
    session = _stored({"a": 1, "b": 2})
    session["a"] = 2
    session.regenerate()
    assert state_of(session).write_plan(NOW, late=True) == WritePlan(
        save_to=SID, changed={"a": "2"}, lifetime_start=CREATED, refused="regenerate"
    )
    only_moved = _stored({"a": 1})
    only_moved.regenerate()
    plan = state_of(only_moved).write_plan(NOW, late=True)
    assert plan == WritePlan(refused="regenerate") and plan.unchanged


@pytest.mark.parametrize("sid", [None, "P" * 43], ids=["no cookie", "stale cookie"])
def test_late_plan_creates_no_session(sid: str | None) -> None:
    session = Session(_missing, sid)
    session["cart"] = [1]
    plan = state_of(session).write_plan(NOW, late=True)
    assert plan == WritePlan(refused="new_session") and plan.unchanged
    signed = Session(_missing, sid)
    state_of(signed).mark_authenticated(NOW)
    assert state_of(signed).write_plan(NOW, late=True) == WritePlan(refused="new_session")
    # Nothing written, nothing refused -- and a stale cookie is left alone.
    empty = Session(_missing, sid)
    assert empty.get("a") is None
    assert state_of(empty).write_plan(NOW, late=True) == WritePlan()


def test_late_plan_of_invalidate_still_drops_the_session() -> None:
    session = _stored({"user": "alice"})
    session.invalidate()
    assert state_of(session).write_plan(NOW, late=True) == WritePlan(drop=SID, drop_first=True)
    written_after = _stored({"user": "alice"})
    written_after.invalidate()
    written_after["user"] = "bob"
    assert state_of(written_after).write_plan(NOW, late=True) == WritePlan(
        drop=SID, drop_first=True, refused="new_session"
    )


def test_late_plan_repr_names_what_it_refused() -> None:
    session = _stored({"a": 1})
    session.regenerate()
    plan = state_of(session).write_plan(NOW, late=True)
    assert repr(plan) == "<WritePlan cookie=keep refused=regenerate>"


def test_is_changed_names_the_keys_a_plan_writes_or_removes() -> None:
    session = _stored({"a": 1, "b": 2, "c": [1]})
    session["a"] = 1  # the same JSON text
    del session["b"]
    session["c"].append(2)
    session["d"] = 0
    assert [key for key in "abcde" if state_of(session).is_changed(key)] == ["b", "c", "d"]
    unread = Session(_missing, SID)
    assert not state_of(unread).is_changed("a")
    assert not state_of(unread).loaded  # asking reads nothing


def test_mark_written_after_create() -> None:
    session = Session(_missing, None)
    session["a"] = [1]
    plan = state_of(session).write_plan(NOW)
    state_of(session).mark_written(plan)
    assert state_of(session).stored_id == plan.save_to and not session.new
    assert state_of(session).had_cookie
    assert session.created == NOW and dict(session) == {"a": [1]}
    assert state_of(session).write_plan(NOW).unchanged and not session.modified
    session["a"].append(2)  # the next change is an update of the new id
    assert state_of(session).write_plan(NOW) == WritePlan(
        save_to=plan.save_to, changed={"a": "[1,2]"}, lifetime_start=NOW
    )


def test_mark_written_after_update_and_after_invalidate() -> None:
    session = _stored({"a": 1, "b": 2})
    session["a"] = 3
    del session["b"]
    state_of(session).mark_written(state_of(session).write_plan(NOW))
    assert state_of(session).write_plan(NOW).unchanged and dict(session) == {"a": 3}
    assert state_of(session).stored_id == SID
    session.invalidate()
    state_of(session).mark_written(state_of(session).write_plan(NOW))
    assert session.new and state_of(session).stored_id is None and not state_of(session).had_cookie
    assert len(session) == 0 and not state_of(session).invalidated
    assert state_of(session).write_plan(NOW).unchanged  # the cookie is cleared once, not again


def test_mark_gone_leaves_an_empty_new_session() -> None:
    session = _stored({"a": 1})
    session["a"] = 2
    state_of(session).mark_gone()
    assert session.new and state_of(session).stored_id is None and not state_of(session).had_cookie
    assert dict(session) == {} and state_of(session).write_plan(NOW).unchanged


def test_plan_repr_shows_neither_ids_nor_values() -> None:
    session = _stored({"password_hint": "hunter2"})
    session.regenerate()
    plan = state_of(session).write_plan(NOW)
    assert plan.save_to is not None
    text = repr(plan)
    assert SID not in text and plan.save_to not in text and "hunter2" not in text
    assert "move" in text and "cookie=set" in text


# -- saving before the response, and an app's ask to end --------------------------------


def test_save_stores_a_new_session_now_and_the_response_owes_its_cookie(
    store: SessionStore, clock: FakeClock,
) -> None:
    manager, app = session_browser(store, clock)

    def save_empty(session: Session, environ: dict[str, Any]) -> object:
        assert live_session_keys(store) == []
        session.save()  # even empty: the app asked for it
        stored = live_session_keys(store)
        session["a"] = 1  # a change after the save: persisted with the response
        return [len(stored), session.new]

    app.handlers.update({"/save": save_empty, "/read": read_all})
    answer = app.get("/save")
    assert answer.json == [1, False]
    (cookie,) = answer.headers.getall("Set-Cookie")
    assert cookie.startswith(COOKIE + "=") and len(live_session_keys(store)) == 1
    assert app.get("/read").json == {"a": 1}


def test_save_of_a_session_ended_meanwhile_raises_and_writes_nothing(
    store: SessionStore, clock: FakeClock,
) -> None:
    manager, app = session_browser(store, clock)

    def end_elsewhere_then_save(session: Session, environ: dict[str, Any]) -> object:
        assert session["a"] == 1
        (key,) = live_session_keys(store)
        store.delete(key)  # another app's logout, as the store sees it
        session["a"] = 2
        with pytest.raises(SessionEnded, match="ended elsewhere") as raised:
            session.save()
        assert raised.value.moved is False
        return [dict(session), session.new]

    app.handlers.update({"/new": set_values({"a": 1}), "/late": end_elsewhere_then_save,
                         "/read": read_all})
    app.get("/new")
    answer = app.get("/late")
    assert answer.json == [{}, True]
    assert live_session_keys(store) == []  # not brought back, not even by the response
    assert "Max-Age=0" in answer.headers["Set-Cookie"]  # and the browser's cookie cleared
    assert app.get("/read").json == {}


def test_save_moves_a_regenerated_session_at_once(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)

    def regenerate_and_save(session: Session, environ: dict[str, Any]) -> object:
        (before,) = live_session_keys(store)
        session.regenerate()
        session.save()
        after = live_session_keys(store)
        return [before in after, len(after)]

    app.handlers.update({"/new": set_values({"a": 1}), "/move": regenerate_and_save,
                         "/read": read_all})
    app.get("/new")
    old_cookie = app.cookies[COOKIE]
    answer = app.get("/move")
    assert answer.json == [False, 1]
    assert app.cookies[COOKIE] != old_cookie and app.get("/read").json == {"a": 1}


def test_save_is_refused_where_nothing_can_persist_before_the_response() -> None:
    with pytest.raises(RuntimeError, match="cannot be saved before its response"):
        Session().save()


def test_an_ask_to_end_ends_the_session_for_every_app_when_it_passes(
    store: SessionStore, clock: FakeClock,
) -> None:
    manager, app = session_browser(store, clock)
    other, other_app = session_browser(store, clock)  # a second app of the same deployment

    def ask(session: Session, environ: dict[str, Any]) -> object:
        session.expire_at(clock() + 60)
        return [manager.lifecycle.time_left(session),
                manager.lifecycle.time_left(session, own_ask=False)]

    app.handlers.update({"/new": set_values({"a": 1}), "/ask": ask, "/read": read_all})
    app.get("/new")
    assert app.get("/ask").json == [60, 1800]
    clock.advance(59)
    assert app.get("/read").json == {"a": 1}
    clock.advance(2)
    other_app.handlers["/read"] = read_all
    other_app.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other_app.get("/read").json == {}  # ended, for any app that reads it
    assert live_session_keys(store) == []


def test_an_ask_can_only_shorten_the_sessions_life(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock, idle_timeout=600)

    def ask_long(session: Session, environ: dict[str, Any]) -> object:
        session["a"] = 1
        session.expire_at(clock() + 14 * 86400)
        return manager.lifecycle.time_left(session)

    app.handlers.update({"/ask": ask_long, "/read": read_all})
    assert app.get("/ask").json == 600  # capped to the idle timeout


def test_an_ask_in_the_past_ends_the_session_when_persisted(
    store: SessionStore, clock: FakeClock,
) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1}),
        "/past": lambda s, e: s.expire_at(clock() - 10),
        "/read": read_all,
    })
    app.get("/new")
    assert "Max-Age=0" in app.get("/past").headers["Set-Cookie"]
    assert live_session_keys(store) == [] and app.get("/read").json == {}


@pytest.mark.parametrize("when", [float("nan"), float("inf"), "soon", True])
def test_an_ask_must_be_a_time(when: Any) -> None:
    with pytest.raises(ValueError, match="seconds since the epoch"):
        Session().expire_at(when)


def test_withdrawing_no_ask_writes_nothing() -> None:
    session = Session()
    session.expire_at(None)
    assert not session.modified



@pytest.mark.parametrize(
    ("meta", "default", "start"),
    [({}, 9, 9), ({"c": 5}, 9, 5), ({"c": 5, "a": 8}, 0, 8), ({"a": 8}, 0, 8),
     ({"c": 5, "a": 3}, 0, 5)],
    ids=["none", "created", "signed in later", "sign-in only", "older sign-in"],
)
def test_lifetime_start(meta: dict[str, int], default: int, start: int) -> None:
    assert lifetime_start(meta, default) == start


def test_metadata_names_are_the_stored_letters() -> None:
    # The wire format: apps of an older version sharing the store read these.
    assert (META_CREATED, META_AUTHENTICATED) == ("c", "a")


def test_session_module_imports_no_manager() -> None:
    """No import cycle, not even one for type checking only."""
    import sessionshare.core.session as module

    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[arg-type]
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
         for alias in node.names]
    assert imported and not [name for name in imported if "manager" in name]


def test_items_lists_each_key_once() -> None:
    # Reading a value while iterating loads it; a lazy walk then listed it twice.
    session = Session(lambda sid: SessionRecord({"a": "1", "b": "2", "c": "3"}, {}), "x" * 43)
    session["d"] = 4
    assert sorted(session.items()) == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    assert len(list(session)) == len(session) == 4


# -- the decoder's shortcut for plain strings ---------------------------------------


def _decoded(decode: Any, text: Any) -> tuple[str, Any]:
    """What ``decode`` makes of ``text``: its value, or the class of error it raised."""
    try:
        return "value", decode(text)
    except (ValueError, TypeError) as exc:
        return type(exc).__name__, None


@settings(max_examples=2000, deadline=None)
@given(st.one_of(
    st.text(),
    st.text().map(lambda t: f'"{t}"'),
    st.text().map(json.dumps),
    st.text().map(lambda t: json.dumps(t, ensure_ascii=False)),
))
def test_a_stored_value_decodes_as_json_would(text: str) -> None:
    """The shortcut for plain strings gives exactly what json.loads gives, or its error."""
    assert _decoded(_loads, text) == _decoded(json.loads, text)


@pytest.mark.parametrize("text", ['"', '""', '"a"b"', '"tab\there"', '"caf\u00e9"', '"a\\"b"',
                                  '"\x7f"', "'single'", '"line\u2028sep"', ['"', '"'], None])
def test_the_decoders_edge_cases(text: Any) -> None:
    assert _decoded(_loads, text) == _decoded(json.loads, text)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
                 st.booleans(), st.none()))
def test_a_whole_number_encodes_as_json_would(value: Any) -> None:
    """The shortcut for whole numbers writes exactly json's text (bools are not numbers)."""
    assert _encode("k", value) == json.dumps(value)


def test_a_whole_number_json_cannot_write_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="only JSON values"):
        _encode("k", 10**5000)  # past Python's digit limit for int -> str


# -- review: a value the app holds across an early save -------------------------------------


@pytest.mark.parametrize("hold", [
    lambda s: s.setdefault("cart", []),
    lambda s: s.__setitem__("cart", held := []) or held,  # type: ignore[name-defined]
], ids=["setdefault", "assigned"])
def test_a_value_assigned_before_save_and_changed_in_place_after_is_persisted(
    store: SessionStore, clock: FakeClock, hold: Any,
) -> None:
    # Before save() the key is among the assigned ones, so an in-place change is found when
    # the response persists. save() must not forget that the app still holds the value:
    # ``cart = session.setdefault("cart", [])``, a save (Django's login() cycles the key and
    # stores at once), ``cart.append(x)`` -- the append must reach the store.
    manager, app = session_browser(store, clock)

    def hold_save_append(session: Session, environ: dict[str, Any]) -> object:
        cart = hold(session)
        session.save()
        cart.append("x")
        return None

    app.handlers.update({"/new": set_values({"a": 1}), "/hold": hold_save_append,
                         "/read": read_all})
    app.get("/new")
    app.get("/hold")
    assert app.get("/read").json == {"a": 1, "cart": ["x"]}


def test_save_of_a_session_another_request_moved_meanwhile_raises(
    store: SessionStore, clock: FakeClock,
) -> None:
    # The docstring's promise: SessionEnded (moved=True) when another request of the browser
    # moved the session (a sign-in in another tab) before this one read it. Django's save()
    # then raises UpdateError -- not a silent success that stored nothing.
    manager, app = session_browser(store, clock)

    def moved_elsewhere_then_save(session: Session, environ: dict[str, Any]) -> object:
        (key,) = live_session_keys(store)
        elsewhere = key[:-2] + ("1" if key[-2] == "0" else "0") + "}"  # another key
        store.move(key, elsewhere, changed={}, ttl=600, retired_at=int(clock()),
                   grace=30)  # another tab's sign-in moved it, just before this read
        session["a"] = 2
        try:
            session.save()
        except SessionEnded as exc:
            return ["raised", exc.moved]
        return ["saved", live_session_keys(store) != []]

    app.handlers.update({"/new": set_values({"a": 1}), "/late": moved_elsewhere_then_save})
    app.get("/new")
    assert app.get("/late").json == ["raised", True]


@pytest.mark.parametrize("far", [1e300, 10**20, 10**400], ids=["float", "int", "huge_int"])
def test_an_ask_far_past_any_limit_is_kept_and_ends_nothing(
    store: SessionStore, clock: FakeClock, far: float,
) -> None:
    # An ask can only shorten a session's life: one centuries away (Django's set_expiry()
    # with a big number of seconds) changes nothing -- no ValueError/OverflowError at the
    # ask, and no stored time the next read takes for a damaged record.
    manager, app = session_browser(store, clock)

    def ask(session: Session, environ: dict[str, Any]) -> object:
        session.expire_at(far)
        return manager.lifecycle.time_left(session)

    app.handlers.update({"/new": set_values({"a": 1}), "/ask": ask, "/read": read_all})
    app.get("/new")
    assert app.get("/ask").json == 1800
    assert app.get("/read").json == {"a": 1}


@pytest.mark.parametrize("text", ["[1e999]", "[NaN]", '{"a": Infinity}'])
def test_a_stored_value_python_decodes_past_json_is_no_500_when_handed_out(text: str) -> None:
    # "1e999" is valid JSON (a number past a double's range: Python reads it as inf); NaN and
    # Infinity are what Python's json reads besides. Stored by another writer (an older
    # version, a hand edit), such a list reached the app through dict(session) / items() --
    # and persisting, which encodes handed-out lists again with allow_nan=False, raised
    # TypeError: a 500 on every such request while the session lives. It is no change.
    session = Session(lambda sid: SessionRecord({"n": text, "m": "1"},
                                                {META_CREATED: CREATED}), SID)
    assert dict(session)["m"] == 1
    assert state_of(session).write_plan(NOW).unchanged


def test_a_value_the_stores_read_decoded_is_taken_for_that_very_text_only() -> None:
    """A store's read may hand the session a long string it decoded already (base.py's
    ``unescaped``): taken for the text object it was decoded from, never for another one,
    however equal; and taken once."""
    # A note for a text that is no plain string: taking it shows what the note says (the
    # text without its quotes), where json reads something else -- so which is shown says
    # whether the note was taken.
    text = json.dumps(["lorem"] * 300)
    twin = (text + " ")[:-1]  # the same characters, another object
    assert twin == text and twin is not text
    token = unescaped.set({"notes": text, "other": twin})
    try:
        session = Session(lambda sid: SessionRecord({"notes": text, "other": text},
                                                    {META_CREATED: CREATED}), SID)
        assert session["notes"] == text[1:-1]  # the note, taken for its very text
        assert session["other"] == ["lorem"] * 300  # another text object: scanned as ever
        assert unescaped.get() is None  # taken by the decode it was for
    finally:
        unescaped.reset(token)
