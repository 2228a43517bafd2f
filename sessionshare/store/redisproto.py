"""Each Redis store operation written once, as a value both Redis stores run.

:class:`~sessionshare.store.RedisStore` (threads) and
:class:`~sessionshare.store.AsyncRedisStore` (asyncio) share every byte on
the wire, so a WSGI app and an ASGI app share sessions in one Redis. What a
store method sends and how it reads the answer lives here, once; each store
only runs it -- on a thread's connection or on the event loop's
(``exchange.py`` and ``aexchange.py``) -- so the two cannot drift.

An operation is a :data:`Command` -- ``(args, key, read)``: the command or
script with its arguments, the key it touches, the parser of its reply -- or,
for the few that take more than one exchange, a *program*: a generator that
yields commands, is sent each one's answer and returns its own (the protocol
core's steps, one level down). A store runs either with a few lines:

    def run(operation):
        if not isinstance(operation, tuple):   # a program: run what it yields
            ...
        args, key, read = operation
        return read(line.call(args, key))

The layout: a session is one string key holding ``{"d": {key: JSON text},
"m": {meta: int}}``; a read is ``GETEX`` (the value and the sliding expiry in
one command); every write is a script of ``lua.py`` (a move on a cluster,
whose two ids sit in different slots, three steps).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from .base import (
    MARKED_BEFORE,
    MAX_HOPS,
    PENDING,
    RETIRED,
    SessionRecord,
    entry_digest,
    member_of,
    owners_of,
    scan_json,
    unescaped,
)
from .lua import (
    CENSUS,
    CENSUS_CHECK,
    CENSUS_SETTLE,
    CLAIM,
    END,
    IDENTITY,
    INDEX_PUT,
    MERGE,
    MOVE,
    MOVE_IN,
    MOVE_OUT,
    PREPARED,
    REDEEM,
    REPLACE,
    SCRIPTS,
    Script,
)
from .recordtext import STAMP, Places, scan_record, spliced

__all__ = [
    "Command", "Operation", "Program", "Seen", "census_add", "census_check", "census_due",
    "census_members", "census_read", "claim_state", "delete", "evaluated", "index_drop",
    "index_put", "index_read", "load", "mark", "move", "parse_record", "peek", "ping", "save",
    "store_identity", "take_ticket",
]

T = TypeVar("T")


#: One exchange: ``(args, key, read)`` -- the command, the key whose node answers it (a
#: cluster routes by it; None for a command of no key), and the parser that turns the raw
#: reply into the answer. A plain tuple: the read path builds one per request.
Command = tuple[tuple[str | int, ...], str | None, Callable[[Any], T]]
#: An operation of more than one exchange: yields commands, is sent their answers,
#: returns its own.
Program = Generator[Command[Any], Any, T]
#: What a store runs for one of its methods.
Operation = Command[T] | Program[T]
#: The shortest record text (in bytes) whose write goes as :data:`REPLACE`. Below it the
#: server's merge costs less than building the record here: each value is JSON text
#: inside a JSON string, so encoding the record escapes every value again -- what the
#: server's cjson spends decoding it, in Python. Measured 2026-12-06, one process timing
#: both ways over one pinned Redis (``load`` and ``save`` of one key): REPLACE from 1 KB
#: costs a 2 KB session's read and write 21 us more of the app's CPU for 11 us less of
#: the server's; a small record encoded whole at the write, 18 us more for 4 us less
#: (measured again in place with ``python -m benchmarks.hotpath write --pin 1``: 16.5
#: us more for 8.5 less at 200 B, 21 more for 15.7 less at 2 KB).
#: Past 4 KB the merge's decode and encode of the whole record on the server grows (1.2
#: ms of its time at 200 KB, against a SET's 5 us). docs/performance.md has the write's
#: budget.
REPLACE_FROM = 4096

#: The live session a context (a request's thread or task) last read: its key, the
#: record's text, where each field sits in it (``recordtext.py``) and a copy of its meta.
#: A write in the same context sends the whole new record spliced from that text, stored
#: only if the server still holds it (:data:`REPLACE`); each store keeps one, so nothing
#: outlives the next read of its thread or task.
Seen = ContextVar[tuple[str, str, Places | None, dict[str, int]] | None]


def _evalsha(script: Script, keys: tuple[str, ...], argv: Sequence[str | int],
             read: Callable[[Any], T]) -> Command[T]:
    """``EVALSHA`` of ``script`` (its keys share one hash slot: the first routes it)."""
    return ("EVALSHA", script.sha, len(keys), *keys, *argv), keys[0], read


def evaluated(args: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The ``EVAL`` of an ``EVALSHA`` the server answered ``NOSCRIPT`` (it lost its script
    cache: a restart, ``SCRIPT FLUSH``): the script's text, which caches it again."""
    return ("EVAL", SCRIPTS[str(args[1])].text, *args[2:])


def _nothing(raw: Any) -> None:
    return None


def _raw(raw: Any) -> Any:
    return raw


# -- the operations, one per store method ---------------------------------------------


def load(key: str, idle_ttl: int, seen: Seen | None = None) -> Command[SessionRecord | None]:
    """The session, its idle expiry slid in the same command (and, with ``seen``, its text
    kept for a write of this context: :func:`save`)."""
    if seen is None:
        return ("GETEX", key, "EX", idle_ttl), key, parse_record

    def read(raw: Any) -> SessionRecord | None:
        if raw is not None and len(raw) >= REPLACE_FROM:
            try:
                text: str = raw.decode() if type(raw) is bytes else str(raw)
            except UnicodeDecodeError:
                text = ""  # damage: no places (and parse_record says no session)
            plain: dict[str, str] = {}
            scanned = scan_record(text, plain)
            if scanned is not None:
                fields, meta, places = scanned
                if type(meta) is dict and RETIRED not in meta and PENDING not in meta:
                    # A copy of the meta: the caller may change the record it is handed
                    # before it writes. (The fields are spliced from the text itself.)
                    seen.set((key, text, places, dict(meta)))
                    # Long strings, decoded once (base.py); or none, so that no earlier
                    # read's texts stay noted past this one.
                    unescaped.set(plain or None)
                    return _record(SessionRecord, (fields, meta))
        # Anything else -- small, not compact, a marker, damage, nothing -- is read as
        # ever, and its write is the merge's.
        if (seen.get() or ("",))[0] == key:
            seen.set(None)  # only a live session's text is ever written over
        return parse_record(raw)

    return ("GETEX", key, "EX", idle_ttl), key, read


def peek(key: str) -> Command[SessionRecord | None]:
    """The session, its expiry left as it is."""
    return ("GET", key), key, parse_record


def save(key: str, *, changed: Mapping[str, str], deleted: Collection[str],
         meta: Mapping[str, int] | None, ttl: int, create: bool,
         seen: Seen | None = None) -> Operation[bool]:
    """One run of :data:`~sessionshare.store.lua.MERGE` (``ttl=0``: an update that keeps
    the record's expiry) -- or, for an update of the session this context just read
    (``seen``), :data:`~sessionshare.store.lua.REPLACE` first."""
    if ttl == 0 and create:
        raise ValueError("a session is created with a ttl; only an update keeps its expiry")
    ttl_arg = 0 if ttl == 0 else max(int(ttl), 1)
    base = None if seen is None or create else seen.get()
    if base is None or base[0] != key:
        return _merge(key, ttl_arg, create, changed, deleted, meta)
    assert seen is not None
    return _replace(key, base, changed, deleted, meta, ttl_arg, seen)


def _merge(key: str, ttl: int, create: bool, changed: Mapping[str, str],
           deleted: Collection[str], meta: Mapping[str, int] | None) -> Command[bool]:
    mode = "1" if create else "0"
    if len(changed) == 1 and not deleted and not meta:
        # The usual write, one field: its command built in one step (the same arguments).
        for name, text in changed.items():
            return ("EVALSHA", MERGE.sha, 1, key, ttl, mode, 1, 0, name, text), key, bool
    argv = [ttl, mode, *_changes(changed, deleted, meta)]
    return _evalsha(MERGE, (key,), argv, bool)


def _replace(key: str, base: tuple[str, str, Places | None, dict[str, int]],
             changed: Mapping[str, str], deleted: Collection[str],
             meta: Mapping[str, int] | None, ttl: int, seen: Seen) -> Program[bool]:
    # The server's merge decodes and encodes the whole record: about 6 ns a byte in its
    # Lua, 1.2 ms for a 200 KB session against the 5 us of a plain SET. Built here -- the
    # fields left alone copied from the text read, not encoded again (recordtext.py) --
    # sent whole, stored only over what was read; else merged as ever.
    seen.set(None)
    raw, places, stored = base[1], base[2], base[3]
    if places is None:
        # The text this context wrote last (a second write in a row): its places, found
        # when they are wanted rather than on every write.
        scanned = scan_record(raw)
        if scanned is None:
            return bool((yield _merge(key, ttl, False, changed, deleted, meta)))
        places = scanned[2]
    for name, value in (meta or {}).items():
        stored[name] = int(value)
    # The record as parse_record reads it ("d" and "m"; a marker is never a base), a new
    # stamp at its head: the next write of this text compares those 40 bytes, not all.
    text = spliced(raw, places, changed=changed, deleted=deleted, meta=stored,
                   stamp=secrets.token_hex(16))
    head = stamp_head(raw)
    compare = (raw, "text") if head is None else (head, "head")
    if (yield _evalsha(REPLACE, (key,), [ttl, compare[0], text, compare[1]], _raw)) == 1:
        seen.set((key, text, None, stored))
        return True
    return bool((yield _merge(key, ttl, False, changed, deleted, meta)))


def stamp_head(raw: Any) -> str | None:
    """The stamp :data:`~sessionshare.store.lua.REPLACE` put at the head of a record's
    text (``{"v":"<32 hex>",``, 40 characters), or None for a record without one."""
    head = raw[:40]
    if type(head) is bytes:
        head = head.decode("ascii", "replace")
    return head if isinstance(head, str) and STAMP.match(head) else None


def mark(key: str, meta: Mapping[str, int], idle_ttl: int, once: str | None,
         once_ttl: int) -> Command[SessionRecord | None]:
    """:data:`~sessionshare.store.lua.MERGE` of metadata only, never creating, answering the
    record as it was; with ``once`` (the script's KEYS[2]), mode '3'."""
    argv: list[str | int] = [max(int(idle_ttl), 1), "2" if once is None else "3", 0,
                             len(meta)]
    for name, value in meta.items():
        argv += (name, int(value))
    if once is None:
        return _evalsha(MERGE, (key,), argv, _marked)
    argv.append(max(int(once_ttl), 1))
    return _evalsha(MERGE, (key, once), argv, _marked)


def move(key: str, new_key: str, *, changed: Mapping[str, str], deleted: Collection[str],
         meta: Mapping[str, int] | None, ttl: int, retired_at: int, grace: int,
         apart: bool) -> Operation[bool]:
    """One run of :data:`~sessionshare.store.lua.MOVE`; ``apart`` (a cluster, where the
    two keys sit in different slots), three steps."""
    changes = _changes(changed, deleted, meta)
    if apart:
        return _move_apart(key, new_key, changes, ttl=ttl, retired_at=retired_at, grace=grace)
    argv = [max(int(ttl), 1), max(int(grace), 1), int(retired_at), *changes]
    return _evalsha(MOVE, (key, new_key), argv, bool)


def _move_apart(key: str, new_key: str, changes: list[str | int], *, ttl: int,
                retired_at: int, grace: int) -> Program[bool]:
    # Prepare the new key, retire the old one (answering its record), then fill the new
    # one -- unless an end meanwhile followed the marker there and deleted it.
    prepared: Command[bool] = (("SET", new_key, PREPARED, "EX", max(int(grace), 1), "NX"),
                               new_key, bool)
    if not (yield prepared):
        # Taken: done already (this move, run again) if the old id names it and it holds
        # the session; else not ours to fill.
        if (yield ("GET", key), key, moved_to_by) != new_key:
            return False
        return bool((yield ("GET", new_key), new_key, is_live_text))
    argv: list[str | int] = [0, max(int(grace), 1), int(retired_at), new_key]
    record = yield _evalsha(MOVE_OUT, (key,), argv, _raw)
    if not record:
        return False
    text = record.decode() if isinstance(record, bytes) else str(record)
    return bool((yield _evalsha(MOVE_IN, (new_key,), [text, max(int(ttl), 1), *changes], bool)))


def delete(key: str, census: str | None = None, *, apart: bool = False) -> Program[None]:
    """:data:`~sessionshare.store.lua.END`, and again where a marker says its session went
    (a few moves deep at most); each id ended leaves the census ``census`` in the same
    script -- or, ``apart`` (a cluster: the census has a slot of its own), by a ``ZREM``
    right after."""
    next_key: str | None = key
    for _ in range(MAX_HOPS):
        if next_key is None:
            return
        ended = next_key
        if census is None:
            next_key = yield _evalsha(END, (ended,), (), moved_to)
        elif apart:
            next_key = yield _evalsha(END, (ended,), (), moved_to)
            yield ("ZREM", census, member_of(ended)), census, _nothing
        else:
            next_key = yield _evalsha(END, (ended, census), (member_of(ended),), moved_to)


def claim_state(key: str, owners: str | Sequence[str], ttl: int,
                ticket: tuple[str, str, int] | None) -> Command[bool]:
    """One run of :data:`~sessionshare.store.lua.CLAIM` (the ticket's key shares the
    claim's hash tag)."""
    names = owners_of(owners)
    if not names:
        raise ValueError("a claim needs at least one owner")
    if ticket is None:
        return _evalsha(CLAIM, (key,), [max(int(ttl), 1), "", 1, *names], bool)
    argv: list[str | int] = [max(int(ttl), 1), ticket[1], max(int(ticket[2]), 1), *names]
    return _evalsha(CLAIM, (key, ticket[0]), argv, bool)


def take_ticket(key: str, nonce: str | None) -> Command[str | None]:
    """One run of :data:`~sessionshare.store.lua.REDEEM`, named by ``nonce`` (so a retry of
    this redemption is recognised) or by a fresh one nothing can repeat."""
    return _evalsha(REDEEM, (key,), [_redemption(nonce)], _text)


def store_identity(key: str, candidate: str) -> Command[str]:
    """One run of :data:`~sessionshare.store.lua.IDENTITY`."""
    return _evalsha(IDENTITY, (key,), [candidate], _identity)


def index_put(key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str],
              live: str | None, census: str | None = None, apart: bool
              ) -> Operation[dict[str, str]]:
    """One run of :data:`~sessionshare.store.lua.INDEX_PUT` checking ``live`` in the same
    step (and keeping the census ``census``) -- or, ``apart`` (a cluster, where the index,
    the session and the census sit in different slots), set, then checked and taken out
    again if the session ended meanwhile, then the census kept by a step of its own."""
    drops = [name for name in drop if name != ref]
    argv: list[str | int] = [ref, entry, max(int(ttl), 1), int(now), *drops]
    if live is None:
        return _evalsha(INDEX_PUT, (key,), argv, index_entries)
    if not apart:
        keys = (key, live) if census is None else (key, live, census)
        return _evalsha(INDEX_PUT, keys, argv, index_entries)
    return _index_put_apart(key, ref, live, argv, census, drops, int(now))


def _index_put_apart(key: str, ref: str, live: str, argv: list[str | int], census: str | None,
                     drops: list[str], now: int) -> Program[dict[str, str]]:
    gone: list[str] = []
    if census is not None and drops:
        dropped = yield ("HMGET", key, *drops), key, _raw
        gone = [digest for text in dropped or () if text is not None
                if (digest := entry_digest(_decoded(text))) is not None]
    entries: dict[str, str] = yield _evalsha(INDEX_PUT, (key,), argv, index_entries)
    is_live = yield ("GET", live), live, is_live_text
    if not is_live:
        yield ("HDEL", key, ref), key, _nothing
        entries.pop(ref, None)
    if census is None:
        return entries
    if gone:
        yield ("ZREM", census, *gone), census, _nothing
    if is_live:
        # Due at once: the next sweep reads its expiry (this step did not, in its slot).
        yield ("ZADD", census, now, member_of(live)), census, _nothing
    return entries


def index_read(key: str) -> Command[dict[str, str]]:
    return ("HGETALL", key), key, index_entries


def index_drop(key: str, refs: Collection[str]) -> Program[None]:
    if refs:  # HDEL of no field is a syntax error: nothing to send
        yield ("HDEL", key, *refs), key, _nothing


def ping() -> Command[None]:
    return ("PING",), None, _nothing


# -- the census (SessionAdmin.count_sessions; thread stores only) --------------------------


def census_read(key: str, lock: str, lock_ttl: float) -> Command[tuple[int, bool]]:
    """One run of :data:`~sessionshare.store.lua.CENSUS`: the members, and whether this
    caller took the sweep lock (``lock_ttl`` seconds; 0: no lock asked for)."""
    return _evalsha(CENSUS, (key, lock), [max(int(lock_ttl * 1000), 0)], _census)


def census_due(key: str, now: int, limit: int) -> Command[list[str]]:
    """The members whose check time is ``now`` or earlier, at most ``limit``."""
    return (("ZRANGEBYSCORE", key, "-inf", int(now), "LIMIT", 0, max(int(limit), 1)), key,
            _texts)


def census_check(key: str, sessions: Mapping[str, str], now: int, *, apart: bool
                 ) -> Operation[int]:
    """One run of :data:`~sessionshare.store.lua.CENSUS_CHECK` over ``sessions`` (member
    -> session key); ``apart`` (a cluster), a ``PTTL`` per session, then
    :data:`~sessionshare.store.lua.CENSUS_SETTLE`. How many left the census."""
    if not sessions:
        return _none_left()
    if not apart:
        return _evalsha(CENSUS_CHECK, (key, *sessions.values()), [int(now), *sessions], int)
    return _census_check_apart(key, sessions, now)


def _none_left() -> Program[int]:
    return 0
    yield  # a program that sends nothing


def _census_check_apart(key: str, sessions: Mapping[str, str], now: int) -> Program[int]:
    argv: list[str | int] = [int(now)]
    for member, session_key in sessions.items():
        argv += (member, int((yield ("PTTL", session_key), session_key, int)))
    return int((yield _evalsha(CENSUS_SETTLE, (key,), argv, int)))


def census_add(key: str, members: Collection[str], now: int) -> Program[int]:
    """Add ``members`` the census lacks (``ZADD NX``), due for a check at ``now``; how many
    were added. A thousand a command."""
    names = list(members)
    added = 0
    for start in range(0, len(names), 1000):
        pairs: list[str | int] = []
        for member in names[start:start + 1000]:
            pairs += (int(now), member)
        added += yield ("ZADD", key, "NX", *pairs), key, int
    return added


def census_members(key: str) -> Program[list[str]]:
    """Every member of the census: ``ZSCAN`` in batches, so the server is never held up."""
    found: list[str] = []
    cursor: Any = 0
    while True:
        cursor, batch = yield ("ZSCAN", key, cursor, "COUNT", 1000), key, _scanned
        found.extend(batch[0::2])
        if cursor == 0:
            return found


# -- arguments and replies ----------------------------------------------------------------


def _changes(
    changed: Mapping[str, str], deleted: Collection[str], meta: Mapping[str, int] | None
) -> list[str | int]:
    """``#changed, #meta``, the changed pairs, the meta pairs, the deleted names."""
    meta = meta or {}
    args: list[str | int] = [len(changed), len(meta)]
    for name, text in changed.items():
        args += (name, text)
    for name, value in meta.items():
        args += (name, int(value))
    args.extend(deleted)
    return args


_NONCE = re.compile(r"[0-9a-f]{32}")


def _redemption(nonce: str | None) -> str:
    """The nonce :data:`~sessionshare.store.lua.REDEEM` is run with: the caller's (32 hex
    characters), or a fresh one that nothing can repeat."""
    if nonce is None:
        return secrets.token_hex(16)
    if not _NONCE.fullmatch(nonce):
        # REDEEM compares a spent marker's prefix by the nonce's length: a shorter one
        # could match the start of a longer one.
        raise ValueError("a redemption nonce is 32 lowercase hex characters")
    return nonce


#: SessionRecord built as a tuple is: its own constructor is Python, and this is the read path.
_record = tuple.__new__


def parse_record(raw: Any) -> SessionRecord | None:
    """The session in a ``GETEX`` (or ``mark``) reply, or None for nothing, damage or a
    foreign key."""
    if raw is None or raw == 0:
        return None
    try:
        # Decoded first: json.loads would sniff the bytes for UTF-16/32 on every read.
        text = raw.decode() if type(raw) is bytes else raw
        # json.loads(text), exactly: the scanner alone for text it takes whole (a record as
        # the server writes it), without the Python layers and the two whitespace matches
        # around it; anything else -- whitespace around it, not JSON -- goes to json.loads,
        # which decodes it or raises as it always does.
        try:
            obj, end = scan_json(text, 0)
        except (StopIteration, ValueError, TypeError):
            obj = json.loads(text)
        else:
            if end != len(text):
                obj = json.loads(text)
        fields, meta = obj["d"], obj["m"]
    except (ValueError, KeyError, TypeError):
        # Not ours (a key-prefix clash) or damaged: treat as no session.
        return None
    # Valid JSON of the wrong shape is damage too; Lifecycle.read checks the shape of
    # every store's records, once, so it is not checked twice here.
    if type(meta) is dict and PENDING in meta:
        return None  # a cluster move's new key, not ready: no session yet (see MOVE_OUT)
    return _record(SessionRecord, (fields, meta))


def _marked(raw: Any) -> SessionRecord | None:
    """A ``mark``'s answer: the record before, None when gone, or
    :data:`~sessionshare.store.base.MARKED_BEFORE` (the script's -1)."""
    if raw == -1:
        return MARKED_BEFORE
    return parse_record(raw)


def index_entries(raw: Any) -> dict[str, str]:
    """An index as ref -> entry text, from a flat ``HGETALL``-style list or a dict."""
    if isinstance(raw, dict):
        return {_decoded(k): _decoded(v) for k, v in raw.items()}
    items = list(raw or ())
    return {_decoded(items[i]): _decoded(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _census(raw: Any) -> tuple[int, bool]:
    members, won = raw
    return int(members), int(won) == 1


def _texts(raw: Any) -> list[str]:
    return [_decoded(item) for item in raw or ()]


def _scanned(raw: Any) -> tuple[int, list[str]]:
    """A ``ZSCAN`` reply: the next cursor, and member, score, member, score... as text."""
    cursor, items = raw
    return int(cursor), _texts(items)


def _decoded(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def moved_to(raw: Any) -> str | None:
    """The key :data:`~sessionshare.store.lua.END` answered (where an ended id's session
    had moved), or None."""
    if raw is None or raw is False or raw == 0:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def moved_to_by(raw: Any) -> str | None:
    """The key a marker in a ``GET`` reply forwards to (where its session moved), or None."""
    if raw is None:
        return None
    try:
        obj = json.loads(raw.decode() if type(raw) is bytes else raw)
        forward = obj["f"] if RETIRED in obj["m"] else None
    except (ValueError, KeyError, TypeError):
        return None
    return forward if isinstance(forward, str) else None


def is_live_text(raw: Any) -> bool:
    """True when a ``GET`` reply holds a live session: not a marker, nor a key a cluster
    move is still preparing."""
    record = parse_record(raw)
    return record is not None and RETIRED not in record.meta


def _text(raw: Any) -> str | None:
    """A redeemed ticket's value as text (clients may or may not decode replies)."""
    if raw is None:
        return None
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)


def _identity(raw: Any) -> str:
    return _text(raw) or ""
