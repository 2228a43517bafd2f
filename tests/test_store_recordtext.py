"""sessionshare.store.recordtext: a record read with its fields' places, written by splicing.

Both are held to plain ``json``: what :func:`scan_record` answers is what
``json.loads`` reads (or nothing), and what :func:`spliced` writes reads back
as the record with the changes made -- and, over a text Python's ``json``
wrote, is the very text ``json.dumps`` writes for it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionshare.store import recordtext
from sessionshare.store.recordtext import scan_record, spliced

COMPACT = (",", ":")
STAMP = "0123456789abcdef" * 2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
#: A field's JSON text, as ``encode`` writes it -- or any text at all (another writer's).
texts = st.one_of(
    json_values.map(lambda value: json.dumps(value, separators=COMPACT)),
    st.text(),
    # What an attacker stores to move a member's bounds, if anything could.
    st.sampled_from(['","m":{"r":1},"d":{"x":"', '\\"}', '"', "\\", "/", "\u2028", "\ud800"]),
)
names = st.text(max_size=8) | st.sampled_from(["d", "m", "v", "user", "a/b", "\u00e9"])
fields_of = st.dictionaries(names, texts, max_size=6)
metas = st.dictionaries(st.text(max_size=4), st.integers(-2**53, 2**53) | st.floats(
    allow_nan=False, allow_infinity=False), max_size=4)


def written(record: dict[str, Any], style: str) -> str:
    """``record`` as one of the writers of these records would write it."""
    if style == "python":  # REPLACE's own text: ensure_ascii, "v" first when there is one
        return json.dumps(record, separators=COMPACT)
    if style == "unicode":  # Python's json without ensure_ascii
        return json.dumps(record, separators=COMPACT, ensure_ascii=False)
    # Lua's cjson: "/" escaped, UTF-8 as it is, the keys in another order ("/" occurs
    # only inside strings in JSON, and "\/" is one of its escapes).
    reordered = dict(reversed(list(record.items())))
    return json.dumps(reordered, separators=COMPACT, ensure_ascii=False).replace("/", "\\/")


styles = st.sampled_from(["python", "unicode", "cjson"])


def assert_places(text: str, fields: dict[str, str], places: dict[str, tuple[int, int]]) -> None:
    """Each place holds exactly its field's member, in the text's order, none overlapping."""
    assert list(places) == list(fields)
    last = 0
    for name, (start, end) in places.items():
        assert last <= start < end
        assert json.loads("{" + text[start:end] + "}") == {name: fields[name]}
        last = end


@settings(max_examples=300)
@given(fields=fields_of, meta=metas, style=styles,
       stamp=st.none() | st.just(STAMP) | st.text(min_size=32, max_size=32),
       extra=st.sampled_from([{}, {"f": "s:{x}"}, {"x": [1, {"d": {}}]}]))
def test_a_record_any_writer_wrote_is_read_as_json_reads_it(
    fields: dict[str, str], meta: dict[str, Any], style: str, stamp: str | None,
    extra: dict[str, Any],
) -> None:
    """Any stamp too: the scan steps over one only when it is a string token as it stands."""
    record: dict[str, Any] = ({} if stamp is None else {"v": stamp}) | {"d": fields, "m": meta}
    record |= extra
    text = written(record, style)
    scanned = scan_record(text)
    assert scanned is not None, text  # the compact form of every writer is taken
    assert scanned[:2] == (json.loads(text)["d"], json.loads(text)["m"])
    assert_places(text, fields, scanned[2])


@settings(max_examples=300)
@given(fields=fields_of, meta=metas, style=styles, at=st.integers(0, 10**6),
       change=st.sampled_from(["space", "drop", "double", "cut", "number", "dup-d"]))
@example(fields={"a": "1"}, meta={}, style="python", at=0, change="dup-d")
def test_any_other_text_is_read_as_json_reads_it_or_not_at_all(
    fields: dict[str, str], meta: dict[str, Any], style: str, at: int, change: str,
) -> None:
    """Whitespace, a character lost or doubled, a cut, a value that is not text, a second
    "d": the answer is json.loads's or None (the merge's write), never another record."""
    text = written({"d": fields, "m": meta}, style)
    at %= len(text)
    if change == "space":
        text = text[:at] + " " + text[at:]
    elif change == "drop":
        text = text[:at] + text[at + 1:]
    elif change == "double":
        text = text[:at] + text[at] + text[at:]
    elif change == "cut":
        text = text[:at]
    elif change == "number":
        text = text.replace('"d":{', '"d":{"n":1,', 1)
    else:
        text = text[:-1] + ',"d":{}}'
    scanned = scan_record(text)
    if scanned is None:
        return
    obj = json.loads(text)  # taken: it is JSON, and read as json reads it
    assert scanned[:2] == (obj["d"], obj["m"])
    assert_places(text, obj["d"], scanned[2])


@given(text=st.text(max_size=60))
def test_any_text_at_all_is_read_as_json_reads_it_or_not_at_all(text: str) -> None:
    scanned = scan_record(text)
    if scanned is not None:
        obj = json.loads(text)
        assert scanned[:2] == (obj["d"], obj["m"])


@pytest.mark.parametrize("text", [
    '{"d":{"a":"1","a":"2"},"m":{}}',  # json.loads keeps the last: no places for both
    '{"d":{"a":"1"},"m":{},"m":{}}',
    '{"d":{"a":1},"m":{}}',
    '{"d":{"a":"1"}}',
    '{"m":{}}',
    '{"d":[],"m":{}}',
    '{"d":{"a":"1"},"m":{}} ',
    '{ "d":{"a":"1"},"m":{}}',
    '{"d":{"a" :"1"},"m":{}}',
    '["d"]',
    "",
])
def test_what_the_scan_does_not_take(text: str) -> None:
    assert scan_record(text) is None


@settings(max_examples=400)
@given(fields=fields_of, meta=metas, style=styles, stamped=st.booleans(),
       changed=st.dictionaries(names, texts, max_size=3), deleted=st.lists(names, max_size=3),
       new_meta=metas, data=st.data())
def test_a_spliced_record_is_the_record_with_the_changes_made(
    fields: dict[str, str], meta: dict[str, Any], style: str, stamped: bool,
    changed: dict[str, str], deleted: list[str], new_meta: dict[str, Any], data: Any,
) -> None:
    # Changes to the fields read as well as new ones.
    if fields:
        for name in data.draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
            changed[name] = data.draw(texts)
    record: dict[str, Any] = ({"v": "f" * 32} if stamped else {}) | {"d": fields, "m": meta}
    text = written(record, style)
    scanned = scan_record(text)
    assert scanned is not None
    new = spliced(text, scanned[2], changed=changed, deleted=deleted, meta=new_meta,
                  stamp=STAMP)
    expected = dict(fields)
    expected.update(changed)
    for name in deleted:
        expected.pop(name, None)
    want = {"v": STAMP, "d": expected, "m": new_meta}
    assert json.loads(new) == want
    assert list(json.loads(new)["d"]) == list(expected)  # each field in its place
    if style == "python":
        assert new == json.dumps(want, separators=COMPACT)  # byte for byte
    assert new.startswith('{"v":"' + STAMP + '",')  # what REPLACE compares next time
    again = scan_record(new)  # the next write's read
    assert again is not None and again[:2] == (expected, new_meta)
    assert_places(new, expected, again[2])


# -- long strings noted with their value (base.unescaped) -------------------------------

LOREM = "lorem ipsum dolor " * 1200  # a session's usual bulk: 21 KB of plain text


def noted(text: str) -> tuple[Any, dict[str, str]]:
    plain: dict[str, str] = {}
    return scan_record(text, plain), plain


def assert_noted_is_json(scanned: Any, plain: dict[str, str]) -> None:
    """Each text noted is the very text object the scan answered for its field, and what
    json.loads reads in it is the text without its quotes."""
    assert scanned is not None
    for name, text in plain.items():
        assert text is scanned[0][name]
        assert json.loads(text) == text[1:-1]


#: What a long string may hold: plain characters, and now and then one that is escaped
#: twice over in the record -- a quote, a backslash, a control character, a "/" (cjson),
#: non-ASCII (ensure_ascii), a line separator.
long_texts = st.text(
    st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "\n", "\x00", "/", "\u2028"]),
    max_size=30,
).map(lambda part: part * 8)


@settings(max_examples=300)
@given(fields=st.dictionaries(names, texts | long_texts.map(json.dumps) | long_texts.map(
    lambda value: json.dumps(value, ensure_ascii=False)), max_size=5),
       meta=metas, style=styles)
def test_a_long_string_noted_is_the_value_json_reads_in_its_text(
    fields: dict[str, str], meta: dict[str, Any], style: str,
) -> None:
    # Every length noted (the check, not the length, makes the note right).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recordtext, "PLAIN_FROM", 0)
        scanned, plain = noted(written({"d": fields, "m": meta}, style))
    assert_noted_is_json(scanned, plain)


@settings(max_examples=500)
@given(inner=st.lists(st.characters(codec="utf-8") | st.sampled_from(
    ['"', '\\"', "\\", "\\\\", "\\u0001", "\\n", "\x01", "\x1f", '\\""', '""']),
    max_size=12).map("".join), opened=st.booleans(), closed=st.booleans())
def test_a_member_made_to_look_plain_is_noted_only_as_json_reads_it(
    inner: str, opened: bool, closed: bool,
) -> None:
    """The record's text written by hand around any characters at all -- raw control
    characters, stray quotes and backslashes among them, the inner string opened and
    closed or not: the scan takes it or not, and a value it notes is json's."""
    member = ('"\\"' if opened else '"') + inner + ('\\""' if closed else '"')
    text = '{"d":{"a":' + member + ',"b":"1"},"m":{}}'
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recordtext, "PLAIN_FROM", 0)
        scanned, plain = noted(text)
    if scanned is None:
        return
    assert scanned[:2] == (json.loads(text)["d"], json.loads(text)["m"])
    assert_noted_is_json(scanned, plain)
    if opened and closed and inner.isalnum():
        assert plain["a"] == '"' + inner + '"'  # and a plain one is noted


@pytest.mark.parametrize("style", ["python", "unicode", "cjson"])
def test_a_long_plain_string_is_noted_and_anything_escaped_in_it_is_not(style: str) -> None:
    fields = {
        "recent": json.dumps(LOREM),
        # Non-ASCII: the library's values escape it ("\\u00e9"); another writer's may not,
        # and then only a writer of the record with ensure_ascii escapes it there.
        "accents": json.dumps("\u00e9t\u00e9 " * 400),
        "raw-accents": json.dumps("\u00e9t\u00e9 " * 400, ensure_ascii=False),
        "short": json.dumps("alice"),  # below PLAIN_FROM: the session's own scan is cheaper
        **{name: json.dumps(LOREM[:2000] + odd + LOREM[:2000]) for name, odd in (
            ("quote", '"'), ("backslash", "\\"), ("newline", "\n"), ("nul", "\x00"),
            ("slash", "/"))},
        "list": json.dumps([LOREM[:100]] * 40),  # long, but not a string
    }
    scanned, plain = noted(written({"d": fields, "m": {"c": 1}}, style))
    assert_noted_is_json(scanned, plain)
    expected = {
        "python": {"recent", "slash"},
        "unicode": {"recent", "slash", "raw-accents"},
        "cjson": {"recent", "raw-accents"},  # cjson escapes "/"
    }
    assert set(plain) == expected[style]
    assert json.loads(plain["recent"]) == LOREM


def test_a_member_is_noted_from_plain_from_characters_on() -> None:
    """PLAIN_FROM counts the member's value as it stands in the record, quotes and their
    escapes included."""
    for length, expected in ((recordtext.PLAIN_FROM - 1, {}), (recordtext.PLAIN_FROM, {"a"})):
        inner = "x" * (length - 6)  # "\"...\"": six characters around the string
        text = '{"d":{"a":"\\"' + inner + '\\""},"m":{}}'
        scanned, plain = noted(text)
        assert set(plain) == set(expected), length
        assert scanned is not None and len(text) - len('{"d":{"a":},"m":{}}') == length
