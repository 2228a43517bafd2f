"""A Redis session record's text, read with the place of each field and written by splicing.

A record is ``{"d": {key: JSON text}, "m": {meta: int}}`` (``redis.py`` says
why): each value is JSON text *inside* a JSON string, so encoding the record
escapes every value again -- for a 200 KB session about half a millisecond
of the app's CPU on every write, most of a write's cost, while a one-key
write changes a few bytes of it. So the read of a large record
(:func:`scan_record`) notes where each field's ``"key":"text"`` member sits
in the text, and the write (:func:`spliced`) builds the new record from
those members as they are -- copies, not an encoding -- and the changed ones
encoded afresh:

    fields, meta, places = scan_record(text)
    new = spliced(text, places, changed={"n": "2"}, deleted=(), meta=meta,
                  stamp=secrets.token_hex(16))

The places come from the same C scanner ``json.loads`` uses, token by token,
never from a search of the text: a value an attacker chose (a display name,
a search term stored in a session) is a string the scanner steps over whole,
so nothing in it can move a member's bounds, and the spliced record holds
exactly the fields and values the record read held, but for the changes.
Only the compact form every writer of these records produces (Python's
``json`` with ``(",", ":")``, Lua's cjson, in any key order) is taken; any
other text -- whitespace, a duplicate name, a value that is not text -- gets
no places, and its write is the server's merge. (That merge sets a single
changed field in the text itself, which it searches: ``lua.py``'s ``splice``
says why JSON's grammar makes that search sound for the names it takes.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from json import encoder
from typing import Any

from .base import scan_json

__all__ = ["PLAIN_FROM", "STAMP", "Places", "scan_record", "spliced"]

#: The stamp REPLACE writes at the head of a record's text: ``{"v":"<32 hex>",``.
STAMP = re.compile(r'\{"v":"[0-9a-f]{32}",')

#: Each field's member in a record's text: key -> (start, end) of ``"key":"text"``,
#: in the text's order.
Places = dict[str, tuple[int, int]]

#: A string as a JSON string, ASCII only -- what ``json.dumps`` writes for it (the same C
#: function its encoder calls), without building an encoder.
_quoted = encoder.encode_basestring_ascii

#: ``json.dumps(..., separators=(",", ":"))`` without building an encoder per write (the
#: meta: a few numbers, written as Python's ``json`` writes them -- floats included, which
#: Lua's cjson writes for a number past 14 digits).
_compact = json.JSONEncoder(separators=(",", ":")).encode

#: What ends a scan that does not take the text: an index past its end, a token the
#: scanner refuses (StopIteration, ValueError), a value of the wrong type.
_REFUSED = (IndexError, StopIteration, ValueError, TypeError)


#: How long a field's member must be for the scan to note its value when it is a string
#: with nothing escaped (below it, the session's scan of the text costs less than the
#: check).
PLAIN_FROM = 1024


def scan_record(text: str, plain: dict[str, str] | None = None,
                ) -> tuple[dict[str, str], Any, Places] | None:
    """A record's fields, its meta and each field's place, or None for a text not in
    the compact form (or not a record): read it with ``json.loads`` instead.

    What it answers is what ``json.loads(text)`` holds under ``"d"`` and ``"m"``
    (``tests/test_store_recordtext.py`` holds it to that, text by text). With
    ``plain``, a long field whose member in the text is a string with nothing
    escaped in it, ``"\\"...\\""``, is noted there too: name -> its text, whose
    value, as ``json.loads`` reads it, is the text without its quotes
    (``base.unescaped`` says who takes it).
    """
    try:
        return _scan(text, plain)
    except _REFUSED:
        return None


def _scan(text: str, plain: dict[str, str] | None,
          ) -> tuple[dict[str, str], Any, Places] | None:
    if text[0] != "{":
        return None
    fields: dict[str, str] | None = None
    places: Places = {}
    meta: Any = None
    has_meta = False
    at = 1
    if STAMP.match(text):
        # The stamp REPLACE writes first, stepped over: a string token as it stands (no
        # quote, backslash or control character inside).
        at = 40
    while True:
        if text[at] != '"':
            return None
        name, at = scan_json(text, at)
        if text[at] != ":":
            return None
        at += 1
        if name == "d":
            if fields is not None or text[at] != "{":
                return None  # a second "d" (json.loads keeps the last) or not an object
            fields, at = _scan_fields(text, at + 1, places, plain)
            if fields is None:
                return None
        else:
            value, at = scan_json(text, at)
            if name == "m":
                if has_meta:
                    return None
                meta, has_meta = value, True
        if text[at] == "}":
            break
        if text[at] != ",":
            return None
        at += 1
    if fields is None or not has_meta or at + 1 != len(text):
        return None
    return fields, meta, places


def _scan_fields(text: str, at: int, places: Places, plain: dict[str, str] | None,
                 ) -> tuple[dict[str, str] | None, int]:
    """The ``"d"`` object's members from ``at`` (just past its ``{``): the fields, their
    places noted, and the index past its ``}``; None for anything but text values."""
    fields: dict[str, str] = {}
    if text[at] == "}":
        return fields, at + 1
    while True:
        start = at
        if text[at] != '"':
            return None, at
        name, at = scan_json(text, at)
        if text[at] != ":":
            return None, at
        begin = at + 1
        value, at = scan_json(text, begin)
        if type(value) is not str or name in places:
            return None, at
        fields[name] = value
        places[name] = (start, at)
        # The member is "\"X\"" (six characters at least) with no backslash in X: then X
        # holds no quote (the string ends at the first quote without a backslash before
        # it, and X has none) and no control character (the scanner refuses those raw),
        # so the text is X in quotes and its value is X -- one scan of X where the session
        # would make two.
        if (plain is not None and at - begin >= PLAIN_FROM and at - begin >= 6
                and text.startswith('"\\"', begin) and text.startswith('\\""', at - 3)
                and text.find("\\", begin + 3, at - 3) < 0):
            plain[name] = value
        if text[at] == "}":
            return fields, at + 1
        if text[at] != ",":
            return None, at
        at += 1


def spliced(text: str, places: Places, *, changed: Mapping[str, str],
            deleted: Collection[str], meta: dict[str, Any], stamp: str) -> str:
    """The record ``text`` held with ``changed`` set and ``deleted`` removed, ``meta`` as
    its meta, ``stamp`` at its head: ``{"v":"<stamp>","d":{...},"m":{...}}``.

    A field neither changed nor deleted is its member as read (``places``), in
    its place; a changed one is encoded in its place, a new one after them
    all; a name both changed and deleted is deleted. Read by ``json.loads``,
    the text is ``{"v": stamp, "d": fields, "m": meta}`` with those changes,
    and for a text Python's ``json`` wrote it is the very text
    ``json.dumps(..., separators=(",", ":"))`` writes.
    """
    members: list[str] = []
    for name, (start, end) in places.items():
        if name not in deleted:
            value = changed.get(name)
            members.append(text[start:end] if value is None
                           else f"{_quoted(name)}:{_quoted(value)}")
    for name, value in changed.items():
        if name not in places and name not in deleted:
            members.append(f"{_quoted(name)}:{_quoted(value)}")
    return f'{{"v":{_quoted(stamp)},"d":{{{",".join(members)}}},"m":{_meta_text(meta)}}}'


def _meta_text(meta: dict[str, Any]) -> str:
    """``meta`` as Python's ``json`` writes it: whole numbers written here (in half the
    encoder's time), anything else by the encoder."""
    members = []
    for name, value in meta.items():
        if type(value) is not int:
            return _compact(meta)
        members.append(f"{_quoted(name)}:{value}")
    return f"{{{','.join(members)}}}"
