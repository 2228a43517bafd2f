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
styles = st.sampled_from(["python", "unicode", "cjson"])


def written(record: dict[str, Any], style: str) -> str:
    """``record`` as one of the writers of these records writes it."""
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


def merge_one(client: redis.Redis, text: str, name: str, value: str) -> tuple[Any, bytes]:
    """MERGE of one changed field (an update, the idle expiry) over ``text``: its answer
    and the text stored after it."""
    client.set(KEY, text.encode(), ex=600)
    answer = client.evalsha(MERGE.sha, 1, KEY, 600, "0", 1, 0, name, value)
    stored = client.get(KEY)
    assert isinstance(stored, bytes)
    assert 0 < client.ttl(KEY) <= 600
    return answer, stored


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
    text = written(record, style)
    answer, stored = merge_one(client, text, name, value)
    if "r" in meta or "p" in meta:
        # A marker or a prepared key: no session to write to. Nothing changes.
        assert answer == 0 and stored == text.encode()
        return
    assert answer == 1
    expected = dict(fields, **{name: value})
    after = json.loads(stored)
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
