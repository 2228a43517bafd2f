"""What both Redis stores send and read: the scripts, their arguments, the record format.

:class:`~sessionshare.store.RedisStore` (threads) and
:class:`~sessionshare.store.AsyncRedisStore` (asyncio) share every byte on
the wire, so a WSGI app and an ASGI app share sessions in one Redis. This
module holds that shared part; each store only decides how a command goes
out (``exchange.py`` and ``aexchange.py``).

- a session is one string key holding ``{"d": {key: JSON text}, "m": {meta: int}}``;
- a write is one run of :data:`MERGE`, which merges the changed and deleted
  top-level keys on the server and never brings back a session that is gone;
- a move to a new id is one run of :data:`MOVE` (both keys in one script), only
  while the session is live; it leaves the old key a marker naming the new one.
  On a Redis Cluster the two keys sit in different slots, so a move prepares
  the new key, runs :data:`MOVE_OUT` on the old key, then :data:`MOVE_IN` on
  the new one;
- an end is :data:`END`: the session goes, and a marker's forward name says
  where it moved, which is ended too (a prepared key included, so the last step
  of a cluster move still on its way finds nothing and creates nothing);
- a ticket is issued with its state's claim (:data:`CLAIM`) and redeemed with
  :data:`REDEEM`;
- the store's identity is read, or written first, with :data:`IDENTITY`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from ..errors import ConfigurationError, StoreUnavailable
from .base import MARKED_BEFORE, PENDING, RETIRED, SessionRecord

__all__ = [
    "CLAIM",
    "CLAIM_SHA",
    "DRIVER_ERRORS",
    "END",
    "END_SHA",
    "EVICTING_POLICIES",
    "IDENTITY",
    "IDENTITY_SHA",
    "INDEX_PUT",
    "PREPARED",
    "INDEX_PUT_SHA",
    "MERGE",
    "MERGE_SHA",
    "MOVE",
    "MOVE_IN",
    "MOVE_IN_SHA",
    "MOVE_OUT",
    "MOVE_OUT_SHA",
    "MOVE_SHA",
    "REDEEM",
    "REDEEM_SHA",
    "eviction_warning",
    "claim_args",
    "index_args",
    "index_entries",
    "is_live_text",
    "mark_args",
    "mark_reply",
    "merge_args",
    "move_args",
    "move_in_args",
    "move_out_args",
    "moved_to",
    "moved_to_by",
    "parse_record",
    "redeem_nonce",
    "server_name",
    "warn_without_timeout",
    "ticket_text",
    "unavailable",
    "web_client",
]

#: Everything the driver may raise for an unreachable or failing server.
#: RedisClusterException does not derive from RedisError; OSError covers a
#: socket failing below redis-py's own wrapping.
DRIVER_ERRORS = (RedisError, RedisClusterException, OSError)

#: Lua: ``ended(obj)`` -- true when a decoded record is no session to write to: an id a
#: move retired (``m.r``, a marker holding no data) or one a cluster move is still
#: preparing (``m.p``).
_ENDED = """
local function ended(obj)
  local m = obj['m']
  return type(m) ~= 'table' or m['r'] ~= nil or m['p'] ~= nil
end
"""

#: Lua: ``apply(obj, i, last)`` -- merge ARGV's changed pairs, meta pairs and deleted names
#: into ``obj``, reading ``#changed`` at ARGV[i] and ``#meta`` at ARGV[i + 1]; the deleted
#: names run to ARGV[last].
_APPLY = """
local function apply(obj, i, last)
  local d, m = obj['d'], obj['m']
  local nchanged, nmeta = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, nchanged do d[ARGV[i]] = ARGV[i + 1]; i = i + 2 end
  for _ = 1, nmeta do m[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
  while i <= last do d[ARGV[i]] = nil; i = i + 1 end
end
"""

#: KEYS[1] session key. ARGV: ttl (0: keep the record's expiry), mode, #changed, #meta,
#: then the changed pairs, the meta pairs and the deleted names. Mode '1' creates a session that
#: is gone, '0' does not (a logged-out session stays gone) and returns 1 or 0,
#: '2' does not either and returns the record's text as it was *before* the
#: merge, or 0 (``mark``); '3' is '2' with a ``once`` key, KEYS[2] (same hash
#: slot), whose lifetime is the last ARGV instead of a deleted name: the key is
#: created (NX), and when it exists already nothing is written and -1 returned.
#: No mode writes into an id a move retired (or one a cluster move prepares): '2' and '3'
#: answer its text unchanged (the caller sees it retired; no once key is made), the
#: others 0.
MERGE = _ENDED + _APPLY + """
local raw = redis.call('GET', KEYS[1])
local obj
if raw then
  obj = cjson.decode(raw)
  if ended(obj) then
    if ARGV[2] == '2' or ARGV[2] == '3' then return raw end
    return 0
  end
elseif ARGV[2] == '1' then
  obj = {d = {}, m = {}}
else
  return 0
end
local last = #ARGV
if ARGV[2] == '3' then
  last = last - 1
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[#ARGV]) then return -1 end
end
apply(obj, 3, last)
local text = cjson.encode(obj)
if ARGV[1] == '0' and raw then
  redis.call('SET', KEYS[1], text, 'KEEPTTL')
else
  redis.call('SET', KEYS[1], text, 'EX', ARGV[1])
end
if ARGV[2] == '2' or ARGV[2] == '3' then return raw end
return 1
"""

#: Lua: ``retire()`` -- replace KEYS[1] by a marker forwarding to KEYS[2] (ARGV[2] is
#: its ttl, ARGV[3] when it was retired).
_RETIRE = """
local function retire()
  local marker = {d = {}, m = {r = tonumber(ARGV[3])}, f = KEYS[2]}
  redis.call('SET', KEYS[1], cjson.encode(marker), 'EX', ARGV[2])
end
"""

#: KEYS[1] the session's key, KEYS[2] its new id's key. ARGV: ttl, grace, retired at,
#: #changed, #meta, then the changed pairs, the meta pairs and the deleted names.
#: Moves a session to a new id in one step, only while it is live: the new key gets the
#: record as stored *now* (a write another app made meanwhile is kept) with the changes
#: merged in, and the old key becomes a marker holding no data but the new key's name for
#: ``grace`` seconds, which an end follows. Returns 1, or 0 (and writes nothing) when the
#: session is not live any more (or the new key is taken). Run again, it answers 1 again.
MOVE = _ENDED + _APPLY + _RETIRE + """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local obj = cjson.decode(raw)
if ended(obj) then
  -- This very move, run again (a retry after a lost reply): done already.
  if type(obj['m']) == 'table' and obj['m']['r'] ~= nil and obj['f'] == KEYS[2] then
    return 1
  end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
apply(obj, 4, #ARGV)
redis.call('SET', KEYS[2], cjson.encode(obj), 'EX', ARGV[1])
retire()
return 1
"""

#: A move on a Redis Cluster, where the two keys live in different slots (one script may
#: touch only one), in three steps. First the new key is *prepared*: ``SET NX`` of a record
#: no read returns (:data:`~sessionshare.store.base.PENDING`). Then, on the old key
#: (KEYS[1]): retire it if live -- the marker names the new key, passed as text in ARGV[4]
#: -- and answer the record it held, else 0. ARGV: unused, grace, retired at, new key.
MOVE_OUT = _ENDED + """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local obj = cjson.decode(raw)
if ended(obj) then return 0 end
local marker = {d = {}, m = {r = tonumber(ARGV[3])}, f = ARGV[4]}
redis.call('SET', KEYS[1], cjson.encode(marker), 'EX', ARGV[2])
return raw
"""

#: The last step of a cluster move, on the new key (KEYS[1]). ARGV: the record
#: ``MOVE_OUT`` answered, ttl, #changed, #meta, the pairs and the deleted names. Turns the
#: prepared record into the session -- only if it is still there: an end of the old id in
#: between followed the marker and deleted it -- and answers 1, else 0 (1 again when run
#: again after it filled the key).
MOVE_IN = _APPLY + """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local held = cjson.decode(raw)
if type(held['m']) ~= 'table' then return 0 end
-- Filled already: this very step, run again (a retry after a lost reply).
if held['m']['p'] == nil then return held['m']['r'] == nil and 1 or 0 end
local obj = cjson.decode(ARGV[1])
apply(obj, 3, #ARGV)
redis.call('SET', KEYS[1], cjson.encode(obj), 'EX', ARGV[2])
return 1
"""

#: What a cluster move prepares at the new key first (see :data:`MOVE_OUT`).
PREPARED = '{"d":{},"m":{"p":1}}'

#: KEYS[1] a session's key. Ends it: a session is deleted (answer: false); a marker --
#: an id a move retired -- answers the key its session moved to, which the caller ends
#: too, and stays as it is until it expires, so that an end run again (a retry after a
#: lost reply) still finds where to go. A marker holds no data and takes no write.
END = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local ok, obj = pcall(cjson.decode, raw)
if ok and type(obj) == 'table' and type(obj['m']) == 'table' and obj['m']['r'] ~= nil
    and type(obj['f']) == 'string' then
  return obj['f']
end
redis.call('DEL', KEYS[1])
return false
"""

#: KEYS[1] ticket key, ARGV[1] this redemption's nonce (always 32 characters: the marker
#: is compared by that length, see :func:`redeem_nonce`). The first redemption
#: marks the ticket spent by that nonce (keeping its expiry) and returns the
#: value; the same nonce -- a retry of that very call, after a timeout whose
#: first attempt did run -- gets the value again; any other redemption gets
#: nothing. So a retry is safe where a retried GETDEL would answer "replayed".
#: A ticket the store never held answers '' (``NOT_HELD``), not nil: the
#: spent marker is what tells "taken already" from "unknown here".
REDEEM = """
local v = redis.call('GET', KEYS[1])
if not v then return '' end
if string.byte(v, 1) == 0 then
  local n = #ARGV[1]
  if string.sub(v, 2, n + 1) == ARGV[1] then return string.sub(v, n + 2) end
  return false
end
redis.call('SET', KEYS[1], '\\0' .. ARGV[1] .. v, 'KEEPTTL')
return v
"""

#: KEYS[1] a state's claim, KEYS[2] (optional) a ticket under the same hash tag. ARGV:
#: claim ttl, ticket value, ticket ttl, then the browser's owner names. A claim is made
#: for the first name and lasts its ttl; a claim held by any of the names is this
#: browser's; another browser gets 0 and no ticket. Run twice, it changes nothing (NX).
CLAIM = """
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[1])
else
  local mine = false
  for i = 4, #ARGV do
    if held == ARGV[i] then mine = true; break end
  end
  if not mine then return 0 end
end
if #KEYS > 1 then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3], 'NX') end
return 1
"""

#: KEYS[1] the store's identity, ARGV[1] a new one. Returns the identity held, writing
#: ARGV[1] (with no expiry) first when there is none.
IDENTITY = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

#: KEYS[1] a user's index (a hash: ref -> entry JSON), KEYS[2] (optional) the session the
#: entry names. ARGV: ref, entry, ttl, now, then refs to drop. Sets the entry -- with
#: KEYS[2], only while that session is live, so an ended session is never entered again --
#: drops those refs and every entry whose "e" is not after ``now`` (or that does not
#: parse), keeps the key at least ``ttl`` more seconds and returns what is left as a flat
#: list. Run twice, it ends in the same state.
INDEX_PUT = _ENDED + """
local put = true
if #KEYS > 1 then
  local raw = redis.call('GET', KEYS[2])
  put = false
  if raw then
    local ok, obj = pcall(cjson.decode, raw)
    put = ok and type(obj) == 'table' and not ended(obj)
  end
end
if put then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
for i = 5, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
local now = tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
local left = {}
for i = 1, #all, 2 do
  local ok, entry = pcall(cjson.decode, all[i + 1])
  local e = nil
  if ok and type(entry) == 'table' then e = tonumber(entry['e']) end
  if e == nil or e <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    left[#left + 1] = all[i]; left[#left + 1] = all[i + 1]
  end
end
if #left > 0 and redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return left
"""

MERGE_SHA = hashlib.sha1(MERGE.encode()).hexdigest()
MOVE_SHA = hashlib.sha1(MOVE.encode()).hexdigest()
END_SHA = hashlib.sha1(END.encode()).hexdigest()
MOVE_OUT_SHA = hashlib.sha1(MOVE_OUT.encode()).hexdigest()
MOVE_IN_SHA = hashlib.sha1(MOVE_IN.encode()).hexdigest()

INDEX_PUT_SHA = hashlib.sha1(INDEX_PUT.encode()).hexdigest()
CLAIM_SHA = hashlib.sha1(CLAIM.encode()).hexdigest()
IDENTITY_SHA = hashlib.sha1(IDENTITY.encode()).hexdigest()
REDEEM_SHA = hashlib.sha1(REDEEM.encode()).hexdigest()

#: Eviction policies under which Redis may drop sessions and tickets silently.
EVICTING_POLICIES = frozenset({
    "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
})


def server_name(connection_kwargs: Any, pool: Any = None) -> str:
    """Where the client's connections go, for a log line: ``host:port`` or the socket path.

    Built from the connection settings, never from a URL, so no password can
    slip in; a Sentinel master is named by its service.
    """
    kwargs = connection_kwargs if isinstance(connection_kwargs, Mapping) else {}
    if kwargs.get("path"):
        where = f"unix socket {kwargs['path']}"
    elif kwargs.get("host"):
        where = f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    elif getattr(pool, "service_name", None):
        where = f"sentinel master {pool.service_name!r}"
    else:
        where = "the server"
    return where[:200]


def unavailable(exc: BaseException, server: str = "the server") -> StoreUnavailable:
    """The store's error for a driver failure: where it went and why, never a password.

    Only the error classes and, for a socket failure, its errno and the
    operating system's text appear: redis-py's own messages can echo a URL with
    a password in it, so they are never used.
    """
    return StoreUnavailable(f"redis at {server} did not answer: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    """``ConnectionError (ConnectionRefusedError, errno 111: Connection refused)``."""
    cause: BaseException | None = exc
    for _ in range(5):  # the OSError redis-py wrapped, a few links down its chain at most
        if cause is None or isinstance(cause, OSError):
            break
        cause = cause.__cause__ or cause.__context__
    text = type(exc).__name__
    parts: list[str] = []
    errno: int | None = None
    if isinstance(cause, OSError):
        if cause is not exc and type(cause).__name__ != text:
            parts.append(type(cause).__name__)
        if isinstance(cause.errno, int) and cause.errno > 0:
            errno = cause.errno
            # Spelled by the operating system from the number, not taken from the
            # exception: its strerror may be a library's own text (asyncio writes
            # "Connect call failed ('127.0.0.1', 1)"), which can name the address.
            parts.append(f"errno {errno}: {os.strerror(errno)}")
    else:
        # redis.asyncio drops the OSError from the chain; its message starts "Error 111
        # connecting to ...". Only the number is taken from it, and spelled by the OS.
        first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        match = _CONNECT_ERRNO.match(first)
        if match:
            errno = int(match.group(1))
            parts.append(f"errno {errno}: " + (
                os.strerror(errno) if errno > 0 else "the host name did not resolve"
            ))
    return f"{text} ({', '.join(parts)})" if parts else text


_CONNECT_ERRNO = re.compile(r"Error (-?[0-9]{1,5}) connecting to ")


def web_client(
    from_url: Any,
    retry_class: Any,
    url: str,
    *,
    socket_timeout: float,
    max_connections: int | None,
    client_options: Mapping[str, Any],
) -> Any:
    """``from_url(url, ...)`` with the settings both stores' ``from_url`` give a client.

    Short timeouts make an outage a quick 503 rather than a hung worker; one
    quick retry rides over a connection the server closed while idle (every
    command the stores send is safe to run twice); RESP2 unless ``protocol=3``
    is passed, since the fast paths need it.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "store URL must start with redis://, rediss:// or unix://, "
            f"got {url.split(':')[0]!r}"
        )
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": retry_class(ExponentialBackoff(cap=0.05, base=0.01), 1),
        "health_check_interval": 0,
        "protocol": 2,
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    if not {"driver_info", "lib_name", "lib_version"} & set(client_options):
        options.update(_driver_info())  # lib_name=None etc. keep their meaning
    options.update(client_options)
    try:
        return from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"bad store URL: {exc}") from None


def _driver_info() -> dict[str, Any]:
    """What ``CLIENT SETINFO`` says of the driver, worked out once for the client.

    redis-py 7 and later, given nothing, work it out for every connection they
    open, reading the installed package's metadata: about 5 ms of CPU each, so
    a burst that opens a hundred connections would hold an event loop (or the
    GIL) for half a second. The same facts built once cost nothing per
    connection. Older redis-py computes them once already.
    """
    try:
        from redis.driver_info import DriverInfo
    except ImportError:
        return {}
    return {"driver_info": DriverInfo()}


def merge_args(
    *,
    changed: Mapping[str, str],
    deleted: Collection[str],
    meta: Mapping[str, int] | None,
    ttl: int,
    create: bool,
) -> list[str | int]:
    """ARGV of :data:`MERGE` for one write (``ttl=0``: an update that keeps the expiry)."""
    if ttl == 0 and create:
        raise ValueError("a session is created with a ttl; only an update keeps its expiry")
    keep = ttl == 0
    return [0 if keep else max(int(ttl), 1), "1" if create else "0",
            *_changes(changed, deleted, meta)]


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


def move_args(
    key: str,
    new_key: str,
    *,
    changed: Mapping[str, str],
    deleted: Collection[str],
    meta: Mapping[str, int] | None,
    ttl: int,
    retired_at: int,
    grace: int,
) -> list[str | int]:
    """``numkeys, KEYS..., ARGV...`` of :data:`MOVE`."""
    return [2, key, new_key, max(int(ttl), 1), max(int(grace), 1), int(retired_at),
            *_changes(changed, deleted, meta)]


def move_out_args(key: str, new_key: str, *, retired_at: int, grace: int) -> list[str | int]:
    """``numkeys, KEYS..., ARGV...`` of :data:`MOVE_OUT` (a cluster move's first step)."""
    return [1, key, 0, max(int(grace), 1), int(retired_at), new_key]


def move_in_args(
    new_key: str,
    record: Any,
    *,
    changed: Mapping[str, str],
    deleted: Collection[str],
    meta: Mapping[str, int] | None,
    ttl: int,
) -> list[str | int]:
    """``numkeys, KEYS..., ARGV...`` of :data:`MOVE_IN` (a cluster move's second step)."""
    text = record.decode() if isinstance(record, bytes) else str(record)
    return [1, new_key, text, max(int(ttl), 1), *_changes(changed, deleted, meta)]


_NONCE = re.compile(r"[0-9a-f]{32}")


def redeem_nonce(nonce: str | None) -> str:
    """The nonce :data:`REDEEM` is run with: the caller's (32 hex characters), or a fresh
    one that nothing can repeat."""
    if nonce is None:
        return secrets.token_hex(16)
    if not _NONCE.fullmatch(nonce):
        # REDEEM compares a spent marker's prefix by the nonce's length: a shorter one
        # could match the start of a longer one.
        raise ValueError("a redemption nonce is 32 lowercase hex characters")
    return nonce


def claim_args(
    key: str, owners: tuple[str, ...], ttl: int, ticket: tuple[str, str, int] | None
) -> list[str | int]:
    """``numkeys, KEYS..., ARGV...`` of :data:`CLAIM`."""
    if not owners:
        raise ValueError("a claim needs at least one owner")
    if ticket is None:
        return [1, key, max(int(ttl), 1), "", 1, *owners]
    return [2, key, ticket[0], max(int(ttl), 1), ticket[1], max(int(ticket[2]), 1), *owners]


def mark_args(*, meta: Mapping[str, int], idle_ttl: int, once_ttl: int | None = None
              ) -> list[str | int]:
    """ARGV of :data:`MERGE` for a ``mark``: metadata only, never create, answer the record
    as it was; with ``once_ttl`` (KEYS[2] is the once key), mode '3'."""
    args: list[str | int] = [max(int(idle_ttl), 1), "2" if once_ttl is None else "3", 0,
                             len(meta)]
    for name, value in meta.items():
        args += (name, int(value))
    if once_ttl is not None:
        args.append(max(int(once_ttl), 1))
    return args


def mark_reply(raw: Any) -> SessionRecord | None:
    """The answer of a ``mark``: the record before, None when gone, or
    :data:`~sessionshare.store.base.MARKED_BEFORE` (the script's -1)."""
    if raw == -1:
        return MARKED_BEFORE
    return parse_record(raw)


def index_args(
    key: str, ref: str, entry: str, ttl: int, now: int, drop: Collection[str],
    live: str | None = None,
) -> list[str | int]:
    """``numkeys, KEYS..., ARGV...`` of :data:`INDEX_PUT` (``live``: the session the entry
    names, checked in the same step; None: set it unchecked)."""
    keys: list[str | int] = [1, key] if live is None else [2, key, live]
    return [*keys, ref, entry, max(int(ttl), 1), int(now), *(r for r in drop if r != ref)]


def index_entries(raw: Any) -> dict[str, str]:
    """An index as ref -> entry text, from a flat ``HGETALL``-style list or a dict."""
    def text(value: Any) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw or ())
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def parse_record(raw: Any) -> SessionRecord | None:
    """The session in a ``GETEX`` (or ``mark``) reply, or None for nothing, damage or a
    foreign key."""
    if raw is None or raw == 0:
        return None
    try:
        # Decoded first: json.loads would sniff the bytes for UTF-16/32 on every read.
        obj = json.loads(raw.decode() if type(raw) is bytes else raw)
        fields, meta = obj["d"], obj["m"]
    except (ValueError, KeyError, TypeError):
        # Not ours (a key-prefix clash) or damaged: treat as no session.
        return None
    # Valid JSON of the wrong shape is damage too; Lifecycle.read checks the shape of
    # every store's records, once, so it is not checked twice here.
    if type(meta) is dict and PENDING in meta:
        return None  # a cluster move's new key, not ready: no session yet (see MOVE_OUT)
    return SessionRecord(fields, meta)


def moved_to(raw: Any) -> str | None:
    """The key :data:`END` answered (where an ended id's session had moved), or None."""
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


def warn_without_timeout(store: str, connection_kwargs: Any) -> None:
    """Log a warning when the client's connections wait for a reply forever.

    A Redis that accepts connections but stops answering (paused, swapping, a
    half-open TCP connection after a failover) holds every request -- and so
    every worker thread or event-loop task -- until the process is restarted:
    an outage that should be a quick 503 becomes a hung site. redis-py's
    ``from_url`` and Sentinel masters default to no socket timeout.
    """
    kwargs = connection_kwargs if isinstance(connection_kwargs, Mapping) else {}
    if kwargs.get("socket_timeout") is None:
        logging.getLogger("sessionshare").warning(
            "store_without_timeout store=%s: the Redis client has no socket_timeout, so a "
            "hung Redis blocks requests forever instead of answering 503; build it with "
            "socket_timeout=1 (as %s.from_url does)", store, store,
        )


def ticket_text(raw: Any) -> str | None:
    """A redeemed ticket's value as text (clients may or may not decode replies)."""
    if raw is None:
        return None
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)


def eviction_warning(answer: Any) -> str | None:
    """What ``CONFIG GET maxmemory-policy`` says about sessions being evicted, or None."""
    policies = answer.values() if isinstance(answer, dict) else [answer]
    for policy in policies:
        text = policy.decode() if isinstance(policy, bytes) else str(policy)
        if text in EVICTING_POLICIES:
            return (f"maxmemory-policy is {text}: Redis may evict sessions and tickets "
                    "(users signed out, hand-offs refused as replayed); give sessions a "
                    "Redis of their own with maxmemory-policy noeviction")
    return None


#: When ``CONFIG GET`` is refused (managed Redis often renames CONFIG).
POLICY_UNKNOWN = ("could not read maxmemory-policy (CONFIG GET refused?); make sure the "
                  "server does not evict keys: maxmemory-policy noeviction")
