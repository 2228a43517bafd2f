"""The merge script's one-key write: the field set in the record's text, on a real Redis.

``lua.py``'s ``MERGE`` sets one changed field without decoding the record
(``splice``) when the text has the shape every writer here makes, and falls
back to cjson's full decode otherwise. Either way the record must read back
as the one it held with that field set -- whatever the values hold (quotes,
backslashes, text made to look like a member), whichever writer wrote it
(Python's ``json``, with or without ``ensure_ascii``; cjson, ``/`` escaped, in
another key order), stamped by ``REPLACE`` or not -- and a marker or a
prepared key is never written to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sessionshare.store.lua import MERGE

COMPACT = (",", ":")
STAMP = "0123456789abcdef" * 2
KEY = "splice:{record}"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
#: A field's JSON text -- or what an attacker stores to look like a member of the record.
texts = st.one_of(
    json_values.map(lambda value: json.dumps(value, separators=COMPACT)),
    st.text(max_size=12),
    st.sampled_from(['","user":"evil', '\\"}', '"', "\\", "\\\\", "/", '{"d":{', '"m":{"r":1}',
                     ',"user":"x"}', "\u2028", "\u00e9"]),
)
#: Field names: plain ones (the text path) and any other (the full decode).
plain_names = st.sampled_from(["user", "cart", "_flashes", "a.b-c:d", "x", "r", "p", "d", "m"])
names = plain_names | st.text(max_size=6) | st.sampled_from(['us"er', "a/b", "\u00e9", "u\\"])
fields_of = st.dictionaries(names, texts, max_size=5)
#: Meta: whole numbers (what the library writes), now and then a marker's or a prepared
#: key's mark.
metas = st.dictionaries(
    st.sampled_from(["a", "c", "o:https://shop.example", "e0", "r", "p"]),
    st.integers(-(10**13), 10**13), max_size=4,
)
styles = st.sampled_from(["python", "unicode", "cjson", "server"])


def written(record: dict[str, Any], style: str) -> str:
    """``record`` as one of the writers of these records writes it (``server``: the
    server's own cjson, see :func:`server_cjson`)."""
    if style == "python":  # REPLACE's own text: ensure_ascii, the stamp first
        return json.dumps(record, separators=COMPACT)
    if style == "unicode":  # Python's json without ensure_ascii
        return json.dumps(record, separators=COMPACT, ensure_ascii=False)
    # Lua's cjson: "/" escaped, UTF-8 as it is, the keys in another order.
    reordered = dict(reversed(list(record.items())))
    return json.dumps(reordered, separators=COMPACT, ensure_ascii=False).replace("/", "\\/")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, protocol=2) as connection:
        connection.script_load(MERGE.text)
        yield connection
        connection.delete(KEY)


def merge_one(client: redis.Redis, text: str, name: str, value: str, *, ttl: int = 600,
              mode: str = "0", expiry: int | None = 600) -> tuple[Any, bytes]:
    """MERGE of one changed field over ``text`` (stored with ``expiry``; ``ttl`` 0 keeps
    it): its answer and the text stored after it."""
    client.set(KEY, text.encode(), ex=expiry)
    answer = client.evalsha(MERGE.sha, 1, KEY, ttl, mode, 1, 0, name, value)
    stored = client.get(KEY)
    assert isinstance(stored, bytes)
    return answer, stored


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a name twice (json.loads would keep the last and
    hide a stale member before it)."""
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"a member twice: {names}"
    return dict(pairs)


def read_back(stored: bytes) -> Any:
    return json.loads(stored, object_pairs_hook=unique_keys)


def server_cjson(client: redis.Redis, text: str) -> str:
    """``text`` as the server's own cjson writes it (its key order, its escapes)."""
    encoded = client.eval("return cjson.encode(cjson.decode(ARGV[1]))", 0, text)
    assert isinstance(encoded, bytes)
    return encoded.decode()


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=fields_of, meta=metas, stamped=st.booleans(), style=styles,
       name=names | plain_names, value=texts, existing=st.booleans())
@example(fields={"user": '"alice"', "note": '","user":"evil'}, meta={"a": 1}, stamped=False,
         style="python", name="user", value='"bob"', existing=False)
@example(fields={"d": '{"d":{'}, meta={"c": 2}, stamped=True, style="cjson", name="d",
         value="1", existing=False)
def test_a_one_field_merge_reads_back_as_the_record_with_that_field_set(
    client: redis.Redis, fields: dict[str, str], meta: dict[str, int], stamped: bool,
    style: str, name: str, value: str, existing: bool,
) -> None:
    if existing and fields:
        name = sorted(fields)[0]  # a field the record holds, changed in place
    record: dict[str, Any] = {"v": STAMP} if stamped and style == "python" else {}
    record.update(d=fields, m=meta)
    text = server_cjson(client, written(record, "unicode")) if style == "server" else written(
        record, style)
    answer, stored = merge_one(client, text, name, value)
    assert 0 < client.ttl(KEY) <= 600
    if "r" in meta or "p" in meta:
        # A marker or a prepared key: no session to write to. Nothing changes.
        assert answer == 0 and stored == text.encode()
        return
    assert answer == 1
    expected = dict(fields, **{name: value})
    after = read_back(stored)
    assert after == {"d": expected, "m": meta}  # the stamp gone with the old text


def test_the_text_path_keeps_every_other_byte_and_takes_the_stamp_out(
    client: redis.Redis,
) -> None:
    # Python's json writes "/" as it is, cjson as "\/": an untouched member still written
    # Python's way shows the record was not decoded and encoded again.
    text = json.dumps({"v": STAMP, "d": {"next": '"/orders"', "n": "1"}, "m": {"a": 5}},
                      separators=COMPACT)
    answer, stored = merge_one(client, text, "n", "2")
    assert answer == 1
    assert stored == b'{"d":{"next":"\\"/orders\\"","n":"2"},"m":{"a":5}}'
    # A new field goes first in "d"; an empty "d" gets it alone.
    answer, stored = merge_one(client, stored.decode(), "cart", '["teapot"]')
    assert stored == b'{"d":{"cart":"[\\"teapot\\"]","next":"\\"/orders\\"","n":"2"},"m":{"a":5}}'
    answer, stored = merge_one(client, '{"m":{"a":5},"d":{}}', "n", "1")
    assert stored == b'{"m":{"a":5},"d":{"n":"1"}}'


@pytest.mark.parametrize("text", [
    '{"d":{"n":"1"},"m":{"r":5},"f":"sessionshare:other"}',  # a marker: the id moved
    '{"d":{},"m":{"p":1}}',  # a cluster move's prepared key
    '{"m":{"a":1,"r":5},"d":{"n":"1"}}',
], ids=["marker", "prepared", "retired-meta-first"])
def test_a_marker_or_a_prepared_key_is_never_written_to(client: redis.Redis, text: str) -> None:
    answer, stored = merge_one(client, text, "n", "2")
    assert answer == 0 and stored == text.encode()


def test_a_duplicate_member_is_left_to_the_full_decode(client: redis.Redis) -> None:
    # Not a text any writer here makes: the text path would pick one of the two, so it
    # does not; cjson reads the last (as json.loads does) and writes one.
    answer, stored = merge_one(client, '{"d":{"n":"1","n":"2"},"m":{"a":1}}', "n", "3")
    assert answer == 1 and json.loads(stored) == {"d": {"n": "3"}, "m": {"a": 1}}


def test_a_name_starting_with_a_colon_is_left_to_the_full_decode(client: redis.Redis) -> None:
    # '"q,":":"' holds ',":":"': the quote after the comma closes the name "q,", and a
    # search for the member ':' would take its value for that member. The text path does
    # not take such a name; the record reads back whole, with the field set.
    text = '{"d":{"q,":":","user":"\\"alice\\""},"m":{"a":1}}'
    for value in ("1", '","'):
        answer, stored = merge_one(client, text, ":", value)
        assert answer == 1
        assert read_back(stored) == {"d": {"q,": ":", "user": '"alice"', ":": value},
                                     "m": {"a": 1}}


@pytest.mark.parametrize("text", [
    '{"d":{},"m":{ "r":5}}',
    '{"d":{},"m":{"r" :5}}',
    '{"d":{},"m":{"\\u0072":5}}',
    '{"d":{},"m":{"a":1, "p":1}}',
], ids=["space-before", "space-after", "escaped-name", "space-between"])
def test_the_live_check_does_not_hang_on_how_the_meta_is_written(
    client: redis.Redis, text: str,
) -> None:
    # No writer here spaces or escapes the meta; were one to, the record is still a
    # marker or a prepared key: the check decodes "m" rather than searching it.
    answer, stored = merge_one(client, text, "n", "2")
    assert answer == 0 and stored == text.encode()


@pytest.mark.parametrize("meta", [
    '{"o:https://auth.example":1,"a":2}',  # a "u", and no \u escape for all that
    '{"o:https:\\/\\/forum.localhost:8004":1}',  # as cjson writes it
], ids=["letter-u", "cjson-escaped"])
def test_the_text_path_takes_a_meta_of_any_origin(client: redis.Redis, meta: str) -> None:
    # The untouched member keeps Python's "/" (cjson would write "\/"): no full decode.
    text = '{"d":{"next":"\\"/x\\"","n":"1"},"m":' + meta + "}"
    answer, stored = merge_one(client, text, "n", "2")
    assert answer == 1 and stored == text.replace('"n":"1"', '"n":"2"').encode()


def test_a_marker_whose_mark_is_null_or_a_meta_holding_an_object(client: redis.Redis) -> None:
    # ended() asks whether m.r or m.p is there at all; a member inside an object that m
    # holds is not m's own (no writer here puts one there; the full decode answers).
    text = '{"d":{"n":"1"},"m":{"r":null}}'
    assert merge_one(client, text, "n", "2") == (0, text.encode())
    answer, stored = merge_one(client, '{"d":{"n":"1"},"m":{"a":{"r":1},"b":[{"p":1}]}}', "n", "2")
    assert answer == 1 and read_back(stored) == {"d": {"n": "2"},
                                                 "m": {"a": {"r": 1}, "b": [{"p": 1}]}}


@pytest.mark.parametrize(("text", "expected"), [
    ('{"d":{"n":1},"m":{"a":1}}', {"d": {"n": "2"}, "m": {"a": 1}}),
    ('{"d":{"n":null,"x":"1"},"m":{"a":1}}', {"d": {"n": "2", "x": "1"}, "m": {"a": 1}}),
    ('{"v":"' + STAMP + '","v":"' + STAMP + '","d":{"n":"1"},"m":{"a":1}}',
     {"d": {"n": "2"}, "m": {"a": 1}}),
], ids=["number-value", "null-value", "two-stamps"])
def test_texts_no_writer_makes_are_left_to_the_full_decode(
    client: redis.Redis, text: str, expected: dict[str, Any],
) -> None:
    # Setting the field in the text would leave the old member beside it (json.loads keeps
    # the last) or a stamp at the head that REPLACE would take for its own.
    answer, stored = merge_one(client, text, "n", "2")
    assert answer == 1 and read_back(stored) == expected
    assert not stored.startswith(b'{"v":')


def test_an_old_value_with_many_escaped_quotes_or_backslash_runs(client: redis.Redis) -> None:
    many = json.dumps(['"'] * 20)  # 40 escaped quotes in the record: past the text path's 16
    runs = json.dumps("a\\\\" + '"' + "\\")  # backslash runs before a quote and at the end
    for old in (many, runs):
        text = json.dumps({"d": {"n": old, "x": '"/"'}, "m": {"a": 1}}, separators=COMPACT)
        answer, stored = merge_one(client, text, "n", "3")
        assert answer == 1 and read_back(stored) == {"d": {"n": "3", "x": '"/"'}, "m": {"a": 1}}
    # The short one went by the text path: the untouched member keeps Python's "/".
    assert b'"x":"\\"/\\""' in stored


def test_keepttl_keeps_the_expiry_or_its_absence_and_mode_1_writes_a_live_session(
    client: redis.Redis,
) -> None:
    text = '{"d":{"n":"1"},"m":{"a":1}}'
    answer, stored = merge_one(client, text, "n", "2", ttl=0, expiry=1000)
    assert answer == 1 and 600 < client.ttl(KEY) <= 1000
    answer, stored = merge_one(client, text, "n", "2", ttl=0, expiry=None)
    assert answer == 1 and client.ttl(KEY) == -1  # no expiry given, none added
    answer, stored = merge_one(client, text, "n", "2", mode="1")
    assert answer == 1 and read_back(stored) == {"d": {"n": "2"}, "m": {"a": 1}}
    marker = '{"m":{"r":5},"d":{},"f":"sessionshare:next"}'
    answer, stored = merge_one(client, marker, "n", "2", mode="1")
    assert answer == 0 and stored == marker.encode()
