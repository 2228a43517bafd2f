"""The SessionStore contract, run against MemoryStore and a real Redis server.

Expiry is driven by the injected clock for MemoryStore; for Redis, TTLs are
read back from the server (the server's clock is real, so the tests check
the TTL it holds rather than sleeping).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from typing import Any

import pytest
import redis
from conftest import FakeClock, issuing
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from servers import RedisServer

from sessionshare import MemoryStore, RedisStore, SessionStore, StoreUnavailable
from sessionshare.store.base import MARKED_BEFORE, NOT_HELD, RETIRED, SessionRecord
from sessionshare.store.redisproto import PENDING, parse_record


def _ttl(store: SessionStore, key: str, clock: FakeClock) -> float | None:
    """Seconds left on ``key``, asked of the backend itself."""
    if isinstance(store, RedisStore):
        left = store.client.ttl(key)
        return None if left < 0 else float(left)
    assert isinstance(store, MemoryStore)
    entry = store.sessions().get(key)
    return None if entry is None else entry.expires - clock()


def test_save_then_load(store: SessionStore) -> None:
    assert store.load("k", 60) is None
    assert store.save("k", changed={"a": "1", "b": '"x"'}, meta={"c": 5}, ttl=60, create=True)
    record = store.load("k", 60)
    assert record is not None
    assert record.fields == {"a": "1", "b": '"x"'}
    assert record.meta == {"c": 5}


def test_values_stay_json_text_exactly(store: SessionStore) -> None:
    # The server must never re-encode an app's numbers or strings.
    values = {"big": "12345678901234567890", "float": "0.1", "uni": '"\\u00e9 é \\/ </"',
              "nested": '{"a":[1,2.50,{"b":null}]}'}
    store.save("k", changed=values, ttl=60, create=True)
    record = store.load("k", 60)
    assert record is not None and record.fields == values
    assert json.loads(record.fields["big"]) == 12345678901234567890


def test_update_does_not_resurrect_a_deleted_session(store: SessionStore) -> None:
    assert store.save("gone", changed={"a": "1"}, ttl=60) is False
    assert store.load("gone", 60) is None
    store.save("k", changed={"a": "1"}, ttl=60, create=True)
    store.delete("k")
    assert store.save("k", changed={"user": '"mallory"'}, ttl=60) is False
    assert store.load("k", 60) is None


def test_per_key_merge_keeps_both_writers(store: SessionStore) -> None:
    store.save("k", changed={"a": "1", "b": "2", "c": "3"}, ttl=60, create=True)
    # Two apps that loaded the same session each write their own key.
    store.save("k", changed={"a": "10"}, ttl=60)
    store.save("k", changed={"b": "20"}, deleted=["c"], ttl=60)
    record = store.load("k", 60)
    assert record is not None and record.fields == {"a": "10", "b": "20"}


def test_delete_and_missing_delete(store: SessionStore) -> None:
    store.save("k", changed={"a": "1"}, ttl=60, create=True)
    store.delete("k")
    store.delete("k")
    store.delete("never-there")
    assert store.load("k", 60) is None


def test_ttl_is_set_and_slides_on_read(store: SessionStore, clock: FakeClock) -> None:
    store.save("k", changed={"a": "1"}, ttl=100, create=True)
    left = _ttl(store, "k", clock)
    assert left is not None and 95 <= left <= 100
    store.load("k", 1000)
    left = _ttl(store, "k", clock)
    assert left is not None and 995 <= left <= 1000


def test_memory_store_expires_by_the_clock(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    store.save("k", changed={"a": "1"}, ttl=10, create=True)
    clock.advance(9)
    assert store.load("k", 10) is not None  # slides to now + 10
    clock.advance(9)
    assert store.load("k", 10) is not None
    clock.advance(10)
    assert store.load("k", 10) is None
    store.claim_state(*issuing("t", "v", 5))
    clock.advance(5)
    assert store.take_ticket("t") is None
    assert len(store) == 0


def test_redis_expires_for_real(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    store.save("k", changed={"a": "1"}, ttl=1, create=True)
    store.client.pexpire("k", 30)  # shorten on the server rather than sleep a second
    deadline = 200
    while store.client.exists("k") and deadline:
        deadline -= 1
        threading.Event().wait(0.005)
    assert store.load("k", 60) is None


def test_tickets_are_taken_once(store: SessionStore) -> None:
    store.claim_state(*issuing("t", "session-a", 60))
    assert store.take_ticket("t") == "session-a"
    assert store.take_ticket("t") is None  # taken already: a replay
    # Never held here (issue 13: an IdP on another store) is told apart from taken.
    assert store.take_ticket("never") == NOT_HELD and NOT_HELD is not None


def test_a_ticket_is_given_again_only_to_its_own_redemptions_retry(store: SessionStore) -> None:
    store.claim_state(*issuing("t", "session-a", 60))
    mine, other = "a" * 32, "b" * 32
    assert store.take_ticket("t", mine) == "session-a"
    assert store.take_ticket("t", mine) == "session-a"  # the same redemption, retried
    assert store.take_ticket("t", other) is None
    assert store.take_ticket("t") is None
    assert store.take_ticket("never", mine) == NOT_HELD


def test_mark_answers_what_it_replaced_and_once_writes_once(store: SessionStore) -> None:
    # Keys of one hash slot ({k}): a session and the once keys kept next to it.
    store.save("s:{k}", changed={"a": "1"}, meta={"c": 5}, ttl=60, create=True)
    before = store.mark("s:{k}", {"o:x": 2}, 60, "j:{k}1", 30)
    assert before is not None and before is not MARKED_BEFORE and before.meta == {"c": 5}
    assert store.mark("s:{k}", {"o:x": 3}, 60, "j:{k}1", 30) is MARKED_BEFORE  # not again
    other = store.mark("s:{k}", {"o:x": 4}, 60, "j:{k}2", 30)  # another name: written
    assert other is not None and other.meta == {"c": 5, "o:x": 2}
    assert store.mark("s:{k}", {"o:x": 5}, 60, "j:{k}1", 30) is MARKED_BEFORE  # still
    plain = store.mark("s:{k}", {"o:x": 6}, 60)  # no once: always written
    assert plain is not None and plain.meta["o:x"] == 4
    record = store.load("s:{k}", 60)
    assert record is not None and record.meta == {"c": 5, "o:x": 6}
    assert record.fields == {"a": "1"}  # the once key's lifetime was no deleted field
    assert store.mark("s:{gone}", {"o:x": 1}, 60, "j:{gone}1", 30) is None
    assert store.load("s:{gone}", 60) is None
    # The session being gone wrote no once key: were it back, that mark would be made.
    store.save("s:{gone}", changed={}, meta={"c": 1}, ttl=60, create=True)
    assert store.mark("s:{gone}", {"o:x": 1}, 60, "j:{gone}1", 30) is not MARKED_BEFORE


def test_a_once_key_lasts_its_own_lifetime(store: SessionStore, clock: FakeClock) -> None:
    store.save("s:{k}", changed={}, meta={"c": 1}, ttl=600, create=True)
    assert store.mark("s:{k}", {"o:x": 1}, 600, "j:{k}1", 2) is not MARKED_BEFORE
    assert store.mark("s:{k}", {"o:x": 1}, 600, "j:{k}1", 2) is MARKED_BEFORE
    if isinstance(store, RedisStore):
        # Redis expires by its own clock: the key's lifetime is what it was given.
        assert 0 < store.client.pttl("j:{k}1") <= 2000
        return
    clock.advance(3)
    assert store.mark("s:{k}", {"o:x": 1}, 600, "j:{k}1", 2) is not MARKED_BEFORE


def test_a_claim_is_any_of_its_owners_names(store: SessionStore) -> None:
    # The claim and its ticket share a hash tag: one command, on a cluster too.
    claim, ticket = "c:{s1}", "t:{s1}x"
    assert store.claim_state(claim, ("new", "old"), 60) is True
    assert store.claim_state(claim, ("other", "new"), 60) is True
    assert store.claim_state(claim, ("other",), 60) is False
    assert store.claim_state(claim, "new", 60, (ticket, "v", 60)) is True  # one name as text
    assert store.take_ticket(ticket) == "v"


def test_tickets_taken_from_8_threads_have_one_winner(store: SessionStore) -> None:
    for round_ in range(20):
        name = f"t{round_}"
        store.claim_state(*issuing(name, "sid", 60))
        barrier = threading.Barrier(8)
        wins: list[str | None] = []

        def take(
            name: str = name,
            barrier: threading.Barrier = barrier,
            wins: list[str | None] = wins,
        ) -> None:
            barrier.wait()
            wins.append(store.take_ticket(name))

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wins.count("sid") == 1 and wins.count(None) == 7, wins


def test_parallel_writers_of_different_keys_lose_nothing(store: SessionStore) -> None:
    store.save("k", changed={}, meta={"c": 1}, ttl=60, create=True)

    def write(prefix: str) -> None:
        for i in range(100):
            store.save("k", changed={f"{prefix}{i}": str(i)}, ttl=60)

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.load("k", 60)
    assert record is not None and len(record.fields) == 400


def test_a_move_is_one_step_that_keeps_what_others_wrote_meanwhile(
    store: SessionStore, clock: FakeClock
) -> None:
    store.save("s:{old}", changed={"a": "1", "b": "2"}, meta={"c": 7}, ttl=60, create=True)
    # Another app writes a key after the moving request read the session: the move takes
    # the record as stored *now* and merges only its own changes in.
    store.save("s:{old}", changed={"other": "9"}, ttl=60)
    moved = store.move("s:{old}", "s:{new}", changed={"b": "3"}, deleted=["a"],
                       meta={"a": 5}, ttl=600, retired_at=1234, grace=30)
    assert moved is True
    assert store.load("s:{new}", 600) == SessionRecord({"b": "3", "other": "9"},
                                                       {"c": 7, "a": 5})
    ttl = _ttl(store, "s:{new}", clock)
    assert ttl is not None and 590 <= ttl <= 600
    # The old id is a marker: no data, when it was retired, for the grace seconds only.
    assert store.peek("s:{old}") == SessionRecord({}, {RETIRED: 1234})
    ttl = _ttl(store, "s:{old}", clock)
    assert ttl is not None and 20 <= ttl <= 30


def test_a_move_run_again_is_the_same_move(store: SessionStore) -> None:
    # A retry after a lost reply (redis-py retries once) must not turn a done move into a
    # refused one: the request would answer signed out with the session moved.
    store.save("s:{old}", changed={"a": "1"}, ttl=60, create=True)
    for _ in range(2):
        assert store.move("s:{old}", "s:{new}", changed={"b": "2"}, ttl=60, retired_at=1,
                          grace=30) is True
    assert store.peek("s:{new}") == SessionRecord({"a": "1", "b": "2"}, {})
    assert not store.move("s:{old}", "s:{other}", changed={}, ttl=60, retired_at=1, grace=30)


def test_a_move_of_a_session_not_live_writes_nothing(store: SessionStore) -> None:
    # Ended (a logout, a revocation) before the move: nothing comes back.
    assert store.move("s:{gone}", "s:{new}", changed={"a": "1"}, meta={"c": 1}, ttl=60,
                      retired_at=1, grace=30) is False
    assert store.peek("s:{new}") is None and store.peek("s:{gone}") is None
    # Moved already (another request of the browser): the second move is refused too.
    store.save("s:{old}", changed={"a": "1"}, ttl=60, create=True)
    assert store.move("s:{old}", "s:{one}", changed={}, ttl=60, retired_at=1, grace=30)
    assert not store.move("s:{old}", "s:{two}", changed={}, ttl=60, retired_at=1, grace=30)
    assert store.peek("s:{two}") is None
    # A new key that is taken is never overwritten.
    store.save("s:{live}", changed={"a": "1"}, ttl=60, create=True)
    assert not store.move("s:{live}", "s:{one}", changed={}, ttl=60, retired_at=1, grace=30)
    assert store.peek("s:{live}") == SessionRecord({"a": "1"}, {})


def test_an_end_follows_the_session_where_it_moved(store: SessionStore) -> None:
    # A logout sent with the old id after the move (another tab) ends the new one, and
    # the one after it: nothing survives "sign out everywhere" by having moved.
    store.save("s:{one}", changed={"user": '"alice"'}, ttl=60, create=True)
    assert store.move("s:{one}", "s:{two}", changed={}, ttl=60, retired_at=1, grace=30)
    assert store.move("s:{two}", "s:{three}", changed={}, ttl=60, retired_at=2, grace=30)
    store.save("s:{other}", changed={"user": '"bob"'}, ttl=60, create=True)
    store.delete("s:{one}")
    assert store.peek("s:{three}") is None
    for key in ("s:{one}", "s:{two}"):  # markers for their few seconds, holding nothing
        assert store.peek(key) == SessionRecord({}, {RETIRED: int(key == "s:{two}") + 1}), key
    store.delete("s:{one}")  # run again (a retry after a lost reply): the same end
    assert store.peek("s:{other}") is not None
    # A later move of the ended id finds nothing to move.
    assert not store.move("s:{one}", "s:{four}", changed={}, ttl=60, retired_at=3, grace=30)


def test_no_write_goes_into_a_moved_id(store: SessionStore) -> None:
    store.save("s:{old}", changed={"a": "1"}, ttl=60, create=True)
    assert store.move("s:{old}", "s:{new}", changed={}, ttl=60, retired_at=1, grace=30)
    # A request that read the old id before the move: its write would reach nobody, so it
    # is refused rather than acknowledged and lost; a remote's join sees the marker.
    assert store.save("s:{old}", changed={"b": "2"}, ttl=60) is False
    assert store.save("s:{old}", changed={"b": "2"}, ttl=60, create=True) is False
    assert store.mark("s:{old}", {"o:x": 5}, 60) == SessionRecord({}, {RETIRED: 1})
    assert store.peek("s:{old}") == SessionRecord({}, {RETIRED: 1})
    assert store.peek("s:{new}") == SessionRecord({"a": "1"}, {})


def test_a_join_moves_with_its_session_and_a_marker_takes_none(store: SessionStore) -> None:
    # A remote joins (a mark with its hand-off's own once key) after an IdP request read
    # the session and before that request moves it: the new id holds the join, as the
    # store held it at the move.
    store.save("s:{old}", changed={"a": "1"}, meta={"c": 5}, ttl=60, create=True)
    before = store.mark("s:{old}", {"o:x": 2}, 60, once="j:{old}9", once_ttl=60)
    assert before == SessionRecord({"a": "1"}, {"c": 5})
    assert store.move("s:{old}", "s:{new}", changed={}, meta={"c": 5}, ttl=60, retired_at=1,
                      grace=30)
    assert store.peek("s:{new}") == SessionRecord({"a": "1"}, {"c": 5, "o:x": 2})
    # A hand-off to the new id joins once (its once key in the new id's slot).
    assert store.mark("s:{new}", {"o:x": 3}, 60, once="j:{new}9", once_ttl=60) == \
        SessionRecord({"a": "1"}, {"c": 5, "o:x": 2})
    assert store.mark("s:{new}", {"o:x": 4}, 60, once="j:{new}9", once_ttl=60) is MARKED_BEFORE
    assert store.peek("s:{new}") == SessionRecord({"a": "1"}, {"c": 5, "o:x": 3})
    # The old id is a marker: a join -- once or not -- is answered with the marker (the
    # caller sees it moved), writes nothing into it and makes no once key.
    marker = SessionRecord({}, {RETIRED: 1})
    assert store.mark("s:{old}", {"o:x": 3}, 60) == marker
    assert store.mark("s:{old}", {"o:x": 3}, 60, once="j:{old}7", once_ttl=60) == marker
    assert store.peek("s:{old}") == marker
    store.save("t:{old}", changed={"a": "1"}, ttl=60, create=True)  # same slot
    assert store.mark("t:{old}", {"o:x": 4}, 60, once="j:{old}7", once_ttl=60) == \
        SessionRecord({"a": "1"}, {})  # j:{old}7 was not made by the refused join


def test_an_index_entry_is_set_only_while_its_session_lives(store: SessionStore) -> None:
    entry = _entry(4_000_000_000)
    store.save("s:{live}", changed={"a": "1"}, ttl=60, create=True)
    store.save("s:{old}", changed={"a": "1"}, ttl=60, create=True)
    assert store.move("s:{old}", "s:{new}", changed={}, ttl=60, retired_at=1, grace=30)
    assert store.index_put("u:{a}", "live", entry, ttl=60, now=1, live="s:{live}") == {
        "live": entry}
    # An ended session, or an id just moved, is never entered (again).
    assert store.index_put("u:{a}", "gone", entry, ttl=60, now=1, live="s:{gone}",
                           drop=["live"]) == {}
    assert store.index_put("u:{a}", "old", entry, ttl=60, now=1, live="s:{old}") == {}
    assert store.index_read("u:{a}") == {}


def test_a_foreign_value_under_a_session_key_is_no_session(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    store.client.set("k", b"\x80 not json")
    assert store.load("k", 60) is None
    store.client.set("k", b"[1, 2]")
    assert store.load("k", 60) is None


def _parsed_as_json_loads_would(raw: bytes) -> SessionRecord | None:
    """parse_record's meaning, spelled with json.loads."""
    try:
        obj = json.loads(raw.decode())
        fields, meta = obj["d"], obj["m"]
    except (ValueError, KeyError, TypeError):
        return None
    if type(meta) is dict and PENDING in meta:
        return None
    return SessionRecord(fields, meta)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.builds(lambda d, m, lead, trail: (lead + json.dumps({"d": d, "m": m}) + trail).encode(),
              st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=4),
              st.dictionaries(st.sampled_from(["c", "a", PENDING, "o:x"]), st.integers(),
                              max_size=3),
              st.sampled_from(["", " ", "\n", "x"]), st.sampled_from(["", " ", "\n", "x", "}"])),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
))
def test_a_record_parses_as_json_loads_would(raw: bytes) -> None:
    """The read's parser takes the scanner's shortcut only where it gives json.loads's answer:
    whitespace around the text, trailing garbage, not JSON, another shape -- all the same."""
    assert parse_record(raw) == _parsed_as_json_loads_would(raw)


# -- errors -----------------------------------------------------------------------


def test_errors_when_the_server_is_stopped_and_recovery() -> None:
    with RedisServer() as server:
        store = RedisStore.from_url(server.url, socket_timeout=0.5)
        store.save("k", changed={"a": "1"}, ttl=60, create=True)
        server.stop()
        calls = [
            lambda: store.load("k", 60),
            lambda: store.save("k", changed={"a": "2"}, ttl=60),
            lambda: store.delete("k"),
            lambda: store.claim_state(*issuing("t", "v", 60)),
            lambda: store.take_ticket("t"),
            store.ping,
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as info:
                call()
            assert "redis" in str(info.value)
            assert not isinstance(info.value, redis.RedisError)
        server.start()
        # The same store object works again, no restart needed.
        store.ping()
        assert store.save("k", changed={"a": "3"}, ttl=60, create=True)
        store.close()


def test_from_url_rejects_other_schemes() -> None:
    from sessionshare import ConfigurationError

    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStore.from_url("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="redis-py client"):
        RedisStore(object())


def test_a_bounded_pool_is_never_starved(redis_url: str) -> None:
    """Every command shares the pool's bound: parked fast-path connections starve nothing."""
    store = RedisStore.from_url(redis_url, max_connections=2)
    store.save("k", changed={"a": "1"}, ttl=60, create=True)
    barrier = threading.Barrier(2)

    def read() -> None:
        barrier.wait()
        for _ in range(50):
            store.load("k", 60)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.claim_state(*issuing("t", "v", 60))
    assert store.take_ticket("t") == "v"
    store.ping()
    store.delete("k")
    assert store.load("k", 60) is None
    store.close()


def test_memory_store_inspection_helpers(clock: FakeClock) -> None:
    """``sessions()`` / ``tickets()`` show what is held, as copies, without side effects."""
    store = MemoryStore(clock=clock)
    assert store.sessions() == {} and store.tickets() == {}
    store.save("k", changed={"a": "1"}, meta={"c": 5}, ttl=60, create=True)
    store.claim_state(*issuing("t", "v", 30))
    (entry,) = store.sessions().values()
    assert entry.fields == {"a": "1"} and entry.meta == {"c": 5}
    assert entry.expires == clock() + 60
    assert store.tickets()["t"].value == "v" and store.tickets()["t"].expires == clock() + 30
    # Copies: changing them changes nothing stored.
    entry.fields["a"] = "2"
    entry.meta["c"] = 6
    record = store.load("k", 60)
    assert record is not None and record.fields == {"a": "1"} and record.meta == {"c": 5}
    # Looking neither slides an expiry nor takes a ticket; expired records still show.
    clock.advance(45)
    assert store.sessions()["k"].expires == clock() + 15
    assert store.tickets()["t"].expires < clock()
    assert store.take_ticket("t") is None
    assert store.tickets() == {}


@pytest.mark.parametrize(
    ("url", "named", "cause"),
    [
        ("redis://:hunter2pw@127.0.0.1:1/0", "redis at 127.0.0.1:1 ",
         f"ConnectionRefusedError, errno {errno.ECONNREFUSED}: {os.strerror(errno.ECONNREFUSED)}"),
        ("unix:///nonexistent/redis.sock?password=hunter2pw",
         "redis at unix socket /nonexistent/redis.sock ",
         f"FileNotFoundError, errno {errno.ENOENT}: {os.strerror(errno.ENOENT)}"),
    ],
    ids=["tcp", "unix socket"],
)
def test_an_outage_names_the_server_and_the_cause_never_the_password(
    url: str, named: str, cause: str
) -> None:
    """Issue 13: "redis: ConnectionError" named neither the server nor why."""
    store = RedisStore.from_url(url, socket_timeout=0.5)
    with pytest.raises(StoreUnavailable) as info:
        store.load("k", 60)
    message = str(info.value)
    assert message.startswith(named) and "did not answer: ConnectionError (" in message
    assert cause in message
    assert "hunter2pw" not in message
    store.close()


def test_an_outage_of_a_sentinel_master_names_its_service() -> None:
    from redis.sentinel import Sentinel

    client = Sentinel([("127.0.0.1", 1)], socket_timeout=0.2).master_for(
        "sessions", socket_timeout=0.2, password="hunter2pw"
    )
    store = RedisStore(client)
    with pytest.raises(StoreUnavailable) as info:
        store.ping()
    assert str(info.value).startswith("redis at sentinel master 'sessions' did not answer: ")
    assert "hunter2pw" not in str(info.value)


# -- the per-user index (issue 17) -----------------------------------------------------
def _entry(expires: int, **more: object) -> str:
    return json.dumps({"e": expires, **more})


def test_peek_reads_without_sliding_the_expiry(store: SessionStore, clock: FakeClock) -> None:
    assert store.peek("k") is None
    store.save("k", changed={"a": "1"}, meta={"c": 5}, ttl=100, create=True)
    clock.advance(50)
    record = store.peek("k")
    assert record is not None and record.fields == {"a": "1"} and record.meta == {"c": 5}
    left = _ttl(store, "k", clock)
    if isinstance(store, MemoryStore):
        assert left == 50  # a load would have made it 100 again
    else:
        store.client.expire("k", 30)
        store.peek("k")
        assert _ttl(store, "k", clock) == 30


def test_index_put_read_and_drop(store: SessionStore) -> None:
    now = 1_000
    assert store.index_read("u") == {}
    left = store.index_put("u", "r1", _entry(now + 60, c=1), ttl=60, now=now)
    assert left == {"r1": _entry(now + 60, c=1)}
    left = store.index_put("u", "r2", _entry(now + 90), ttl=90, now=now)
    assert set(left) == {"r1", "r2"} and store.index_read("u") == left
    # A move: the new ref in, the old one out, in one command.
    assert set(store.index_put("u", "r3", _entry(now + 90), ttl=90, now=now, drop=["r2"])) == {
        "r1", "r3"}
    store.index_drop("u", ["r1", "never-there"])
    assert set(store.index_read("u")) == {"r3"}
    store.index_drop("u", ["r3"])
    assert store.index_read("u") == {}
    store.index_drop("u", [])


def test_index_put_prunes_expired_and_damaged_entries(store: SessionStore) -> None:
    store.index_put("u", "old", _entry(100), ttl=600, now=50)
    store.index_put("u", "bad", "not json", ttl=600, now=50)
    store.index_put("u", "shape", '["e", 1]', ttl=600, now=50)
    assert store.index_put("u", "new", _entry(700), ttl=600, now=100) == {"new": _entry(700)}
    # Running a put twice ends in the same state (a retried script).
    assert store.index_put("u", "new", _entry(700), ttl=600, now=100) == {"new": _entry(700)}


def test_an_index_lives_as_long_as_its_longest_entry(store: SessionStore, clock: FakeClock) -> None:
    store.index_put("u", "long", _entry(10_000), ttl=500, now=0)
    store.index_put("u", "short", _entry(10_000), ttl=100, now=0)  # never shortens the key
    left = _ttl(store, "u", clock) if isinstance(store, RedisStore) else None
    if isinstance(store, RedisStore):
        assert left is not None and 490 <= left <= 500
    else:
        clock.advance(200)
        assert set(store.index_read("u")) == {"long", "short"}
        clock.advance(301)
        assert store.index_read("u") == {}


def test_an_update_with_ttl_zero_keeps_the_expiry(store: SessionStore, clock: FakeClock) -> None:
    # An operator's change (SessionAdmin.withdraw) neither extends nor cuts a session's life.
    store.save("s:{k}", changed={"a": "1"}, ttl=600, create=True)
    before = _ttl(store, "s:{k}", clock)
    assert store.save("s:{k}", changed={}, meta={"o:x": 0}, ttl=0) is True
    after = _ttl(store, "s:{k}", clock)
    assert before is not None and after is not None and 0 <= before - after <= 1
    assert store.peek("s:{k}") == SessionRecord({"a": "1"}, {"o:x": 0})
    assert store.save("s:{gone}", changed={}, meta={"o:x": 0}, ttl=0) is False
    with pytest.raises(ValueError, match="created with a ttl"):
        store.save("s:{new}", changed={"a": "1"}, ttl=0, create=True)


# -- the census: the set the O(1) count of live sessions reads ------------------------------

CENSUS = "n:{census}"


def _indexed(digest: str, expires: int) -> str:
    return json.dumps({"k": digest, "c": 0, "l": 0, "e": expires})


def test_an_index_write_enters_its_session_in_the_census_only_while_it_lives(
    store: SessionStore
) -> None:
    census: Any = store
    store.save("s:{aaa}", changed={"user": '"alice"'}, ttl=600, create=True)
    store.index_put("u:{alice}", "aaa", _indexed("aaa", 2_000_000_000), ttl=60, now=1000,
                    live="s:{aaa}", census=CENSUS)
    # An ended session is never entered (the same step checks it).
    store.index_put("u:{alice}", "bbb", _indexed("bbb", 2_000_000_000), ttl=60, now=1000,
                    live="s:{bbb}", census=CENSUS)
    assert census.census_members(CENSUS) == ["aaa"]
    assert census.census_read(CENSUS, lock="n:{census}:sweep") == (1, False)
    # Due when the session's key would expire now (on the caller's clock), not before --
    # on a cluster, at once: the index write cannot read the session's expiry in the
    # census's slot, and the next sweep does.
    apart = isinstance(getattr(store, "client", None), RedisCluster)
    assert census.census_due(CENSUS, 1000 + 590, 10) == (["aaa"] if apart else [])
    assert census.census_due(CENSUS, 1000 + 600, 10) == ["aaa"]
    # A move's index write drops the old entry: its session leaves the census.
    store.save("s:{ccc}", changed={"user": '"alice"'}, ttl=600, create=True)
    store.index_put("u:{alice}", "ccc", _indexed("ccc", 2_000_000_000), ttl=60, now=1000,
                    drop=("aaa",), live="s:{ccc}", census=CENSUS)
    assert census.census_members(CENSUS) == ["ccc"]
    # So do the entries past their absolute expiry that a write prunes.
    store.save("s:{ddd}", changed={"user": '"bob"'}, ttl=600, create=True)
    store.index_put("u:{bob}", "ddd", _indexed("ddd", 1500), ttl=60, now=1000,
                    live="s:{ddd}", census=CENSUS)
    assert sorted(census.census_members(CENSUS)) == ["ccc", "ddd"]
    store.index_put("u:{bob}", "eee", _indexed("eee", 2_000_000_000), ttl=60, now=1500,
                    live="s:{eee}", census=CENSUS)
    if not apart:
        assert census.census_members(CENSUS) == ["ccc"]
    else:
        # A cluster's index write reads no entry it prunes: such a session is past its
        # absolute timeout, so due already, and the next sweep takes it out.
        assert sorted(census.census_members(CENSUS)) == ["ccc", "ddd"]
        assert "ddd" in census.census_due(CENSUS, 1500, 10)


def test_an_end_takes_each_id_it_ends_out_of_the_census(store: SessionStore) -> None:
    census: Any = store
    for digest in ("old", "new", "other"):
        store.save(f"s:{{{digest}}}", changed={"a": "1"}, ttl=600, create=True)
    assert census.census_add(CENSUS, ["old", "new", "other"], 1000) == 3
    assert census.census_add(CENSUS, ["old"], 1000) == 0  # there already
    assert store.move("s:{old}", "s:{new2}", changed={}, ttl=600, retired_at=1, grace=30)
    assert census.census_add(CENSUS, ["new2"], 1000) == 1
    store.delete("s:{old}", census=CENSUS)  # follows the marker to where the session went
    assert census.census_members(CENSUS) == ["new", "other"]
    assert store.load("s:{new2}", 600) is None
    store.delete("s:{gone}", census=CENSUS)  # nothing there: no error
    store.delete("s:{other}")  # an end told of no census leaves it as it was
    assert sorted(census.census_members(CENSUS)) == ["new", "other"]


def test_a_census_check_keeps_the_live_and_drops_the_gone(
    store: SessionStore, clock: FakeClock
) -> None:
    census: Any = store
    store.save("s:{live}", changed={"a": "1"}, ttl=600, create=True)
    store.save("s:{idle}", changed={"a": "1"}, ttl=600, create=True)
    census.census_add(CENSUS, ["live", "idle", "ended"], 1000)
    if isinstance(store, RedisStore):
        store.client.delete("s:{idle}")  # as if it had idled out
    else:
        clock.advance(601)
        assert store.load("s:{live}", 600) is None  # the memory store's clock moved all
        store.save("s:{live}", changed={"a": "1"}, ttl=600, create=True)
    store.delete("s:{ended}", census=CENSUS)
    due = census.census_due(CENSUS, 1000, 10)
    assert sorted(due) == ["idle", "live"]
    assert census.census_check(CENSUS, {m: f"s:{{{m}}}" for m in due}, 1000) == 1
    assert census.census_members(CENSUS) == ["live"]
    # The live one is due again when its key would expire: about 600 s from now.
    assert census.census_due(CENSUS, 1000 + 598, 10) == []
    assert census.census_due(CENSUS, 1000 + 601, 10) == ["live"]
    # A member an end took out meanwhile is not put back by a check that read it live.
    assert census.census_check(CENSUS, {"ended": "s:{live}"}, 1000) == 0
    assert census.census_members(CENSUS) == ["live"]


def test_one_caller_takes_the_sweep_lock_at_a_time(store: SessionStore) -> None:
    census: Any = store
    lock = "n:{census}:sweep"
    assert census.census_read(CENSUS, lock=lock, lock_ttl=60) == (0, True)
    assert census.census_read(CENSUS, lock=lock, lock_ttl=60) == (0, False)
    assert census.census_read(CENSUS, lock=lock) == (0, False)  # none asked for
