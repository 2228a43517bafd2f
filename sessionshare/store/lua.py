"""The Lua scripts of the Redis stores: each one store step, atomic on the server.

Every write of a session is a script, so that what it checks and what it
writes happen in one step no other client can come between: a merge never
brings back a session a logout ended, a move happens only while the session
is live, a ticket is taken once. Each script touches the keys of one hash
slot, so it runs unchanged on a Redis Cluster; there a move, whose two ids sit
apart, takes three steps (a ``SET NX`` of :data:`PREPARED`, :data:`MOVE_OUT`,
:data:`MOVE_IN`). Every script is safe to run twice (redis-py retries a
command that timed out, which may have run): each says what a second run
does. It is sent by its SHA1 (``EVALSHA``), its text only when the server
lost it (a restart, ``SCRIPT FLUSH``).

Records are ``{"d": {key: JSON text}, "m": {meta: int}}``; a marker (an id a
move retired) is ``{"d": {}, "m": {"r": when}, "f": new key}``.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["CENSUS", "CENSUS_CHECK", "CENSUS_SETTLE", "CLAIM", "END", "IDENTITY", "INDEX_PUT",
           "MERGE", "MOVE", "MOVE_IN", "MOVE_OUT", "PREPARED", "REDEEM", "REPLACE", "SCRIPTS",
           "Script"]


class Script(NamedTuple):
    """A Lua script's text and the SHA1 ``EVALSHA`` names it by."""

    text: str
    sha: str


def _script(text: str) -> Script:
    return Script(text, hashlib.sha1(text.encode()).hexdigest())


#: Lua: ``ended(obj)`` -- true when a decoded record is no session to write to: a marker
#: (``m.r``) or a key a cluster move is still preparing (``m.p``).
_ENDED = """
local function ended(obj)
  local m = obj['m']
  return type(m) ~= 'table' or m['r'] ~= nil or m['p'] ~= nil
end
"""

#: Lua: ``apply(obj, i, last)`` -- merge ARGV's changed pairs, meta pairs and deleted names
#: into ``obj``, reading ``#changed`` at ARGV[i] and ``#meta`` at ARGV[i + 1]; the deleted
#: names run to ARGV[last]. It also takes out the stamp :data:`REPLACE` puts at the head
#: of a record: a record this changes is no longer the one the stamp named, and cjson
#: might write the old stamp first again, where REPLACE would take it for its own.
_APPLY = """
local function apply(obj, i, last)
  obj['v'] = nil
  local d, m = obj['d'], obj['m']
  local nchanged, nmeta = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, nchanged do d[ARGV[i]] = ARGV[i + 1]; i = i + 2 end
  for _ = 1, nmeta do m[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
  while i <= last do d[ARGV[i]] = nil; i = i + 1 end
end
"""

#: Lua: ``splice(raw)`` -- the record ``raw`` with MERGE's one changed field (ARGV[5] its
#: name, ARGV[6] its JSON text) set in the text itself, every other byte as it was; false
#: when the record is no session to write to (a marker, a prepared key); nil when the text
#: is not one this reads, for cjson to decode instead.
#:
#: A write of one field is the usual request's, and cjson decoding and encoding the whole
#: record was most of its cost on the server (13.8 us of the script's 22 at 200 B, 17.5 of
#: 30 at 2 KB, pinned: ``python -m benchmarks.hotpath write``, whose layers measure this
#: path and the full decode side by side).
#:
#: Finding the field by searching the text is sound because of JSON's grammar and the
#: record's shape, never because of what a value holds. A quote inside a JSON string is
#: always escaped (``\"``), so an unescaped quote is a string's delimiter, and after a
#: closing one only ``:``, ``,`` or ``}`` can come. The records searched are the ones the
#: writers here make (Python's ``json`` with compact separators, cjson; nothing else writes
#: these keys): top-level members ``v``, ``f`` (strings), ``d`` (an object of strings) and
#: ``m`` (an object of numbers), no whitespace, no name written with an escape when it
#: needs none. In such a text ``"d":{`` and ``"m":{`` occur once each, as those members:
#: their first quote cannot close a string (a ``d`` or ``m`` follows it), so it opens the
#: member's name, and no other member's value is an object. Within ``d``, ``{"name":`` or
#: ``,"name":`` is the member of that name, for a name of plain characters (letters,
#: digits, ``_-.:``, which no encoder escapes) that does not start with ``:`` -- else the
#: ``"`` after the ``,`` could close a name ending in ``,`` (``"q,":":"`` for ``:``). A
#: value an attacker chose -- quotes, ``","name":"`` and all -- is escaped text inside its
#: string and cannot match. The old value ends at the first quote after it that an even
#: number of backslashes precedes. What is checked rather than assumed: ``d`` and ``m``
#: are the last two members, side by side; the live check asks what ``ended`` asks of
#: ``m``'s text, which it first finds free of whitespace, of ``\u`` escapes (the only
#: other spellings of a name ``r`` or ``p``) and of nested objects and arrays (whose
#: members are not ``m``'s); the field's old value is a string and its name occurs once;
#: REPLACE's stamp at the head is taken out (as ``apply`` does) and no second one is
#: left there for REPLACE to match. Anything else -- another name, another layout, a
#: value with many escaped quotes -- is nil: the full decode, as ever.
#: The text path keeps every byte it does not change, where cjson would rewrite them
#: (``/`` as ``\/``, a number past 14 digits rounded).
_SPLICE = """
local function splice(raw)
  local find, sub, byte = string.find, string.sub, string.byte
  local name = ARGV[5]
  if not find(name, '^[%w_%-%.][%w_%-%.:]*$') then return nil end
  if sub(raw, 1, 5) == '{"v":' then
    if sub(raw, 6, 6) ~= '"' or sub(raw, 39, 40) ~= '",'
        or (find(raw, '[^0-9a-f]', 7) or 0) ~= 39 then return nil end
    raw = '{' .. sub(raw, 41)
    if sub(raw, 1, 5) == '{"v":' then return nil end  -- a second stamp: REPLACE's to match
  end
  if byte(raw, -1) ~= 125 or byte(raw, -2) ~= 125 then return nil end
  local d = find(raw, '"d":{', 1, true)
  local m = find(raw, '"m":{', 1, true)
  if not d or not m then return nil end
  local second = d > m and d or m
  if byte(raw, second - 1) ~= 44 or byte(raw, second - 2) ~= 125 then
    return nil
  end
  local d_end, m_end = m - 2, #raw - 1
  if d > m then d_end, m_end = #raw - 1, d - 2 end
  -- ended()'s question, asked of the "m" object's text: written without whitespace or a
  -- \\u escape (the only other ways to write a name "r" or "p") and holding no object or
  -- array (so that '{"' and ',"' start its own members alone).
  local meta = sub(raw, m + 4, m_end)
  if not find(meta, '^{[^%s{%[]*$') or find(meta, '\\\\u', 1, true) then return nil end
  if find(meta, '{"r":', 1, true) or find(meta, ',"r":', 1, true)
      or find(meta, '{"p":', 1, true) or find(meta, ',"p":', 1, true) then
    return false
  end
  local value = ARGV[6]
  if find(value, '^[^%c"\\\\/\\128-\\255]*$') then
    value = '"' .. value .. '"'  -- nothing to escape: what cjson.encode would write
  else
    value = cjson.encode(value)
  end
  local key = '"' .. name .. '":'
  local open = d + 4
  local at
  if sub(raw, open + 1, open + #key) == key then
    at = open + 1
  else
    at = find(raw, ',' .. key, open, true)
    if at and at < d_end then at = at + 1 else at = nil end
  end
  if at and byte(raw, at + #key) ~= 34 then return nil end  -- a value that is no string
  if not at then
    local sep = ','
    if open + 1 == d_end then sep = '' end
    return sub(raw, 1, open) .. '"' .. name .. '":' .. value .. sep
      .. sub(raw, open + 1)
  end
  local close = at + #key
  for _ = 1, 16 do
    close = find(raw, '"', close + 1, true)
    if not close or close > d_end then return nil end
    local before = close - 1
    while byte(raw, before) == 92 do before = before - 1 end
    if (close - 1 - before) % 2 == 0 then
      local again = find(raw, ',' .. key, close, true)
      if again and again < d_end then return nil end
      return sub(raw, 1, at - 1) .. '"' .. name .. '":' .. value
        .. sub(raw, close + 1)
    end
  end
  return nil
end
"""

#: KEYS[1] session key. ARGV: ttl (0: keep the record's expiry), mode, #changed, #meta,
#: then the changed pairs, the meta pairs and the deleted names. Mode '1' creates a
#: session that is gone, '0' does not (a logged-out session stays gone); both return 1
#: or 0. '2' (``mark``) returns the record's text as it was *before* the merge, or 0;
#: '3' is '2' with a ``once`` key, KEYS[2] (same hash slot), whose lifetime is the last
#: ARGV: created NX, and when it exists already nothing is written and -1 returned. No
#: mode writes into a marker or a prepared key: '2' and '3' answer its text unchanged
#: (and make no once key), the others 0. An update of one field and nothing else ('0' or
#: '1' over a record that exists) is set in the record's text (``splice``) when its text
#: has the writers' shape; anything else is decoded whole.
MERGE = _script(_ENDED + _APPLY + _SPLICE + """
local raw = redis.call('GET', KEYS[1])
local obj
if raw then
  if (ARGV[2] == '0' or ARGV[2] == '1') and #ARGV == 6 and ARGV[3] == '1'
      and ARGV[4] == '0' then
    -- One field changed, nothing else: set in the text (see splice), no full decode.
    local text = splice(raw)
    if text == false then return 0 end
    if text then
      if ARGV[1] == '0' then
        redis.call('SET', KEYS[1], text, 'KEEPTTL')
      else
        redis.call('SET', KEYS[1], text, 'EX', ARGV[1])
      end
      return 1
    end
  end
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
""")

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
#: ``SessionStore.move`` in one step: 1, or 0 (and nothing written) when the session is
#: not live any more or the new key is taken. Run again, it answers 1 again.
MOVE = _script(_ENDED + _APPLY + _RETIRE + """
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
""")

#: A move on a Redis Cluster, after the new key was *prepared* (``SET NX`` of
#: :data:`PREPARED`): on the old key (KEYS[1]), retire it if live -- the marker names the
#: new key, ARGV[4] -- and answer the record it held, else 0. ARGV: unused, grace, retired
#: at, new key.
MOVE_OUT = _script(_ENDED + """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local obj = cjson.decode(raw)
if ended(obj) then return 0 end
local marker = {d = {}, m = {r = tonumber(ARGV[3])}, f = ARGV[4]}
redis.call('SET', KEYS[1], cjson.encode(marker), 'EX', ARGV[2])
return raw
""")

#: The last step of a cluster move, on the new key (KEYS[1]). ARGV: the record
#: ``MOVE_OUT`` answered, ttl, #changed, #meta, the pairs and the deleted names. Fills the
#: prepared key only if it is still there (an end of the old id in between deleted it):
#: answers 1, else 0 (1 again when run again after it filled the key).
MOVE_IN = _script(_APPLY + """
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
""")

#: What a cluster move prepares at the new key first (see :data:`MOVE_OUT`).
PREPARED = '{"d":{},"m":{"p":1}}'

#: KEYS[1] a session's key, KEYS[2] (optional) the deployment's census (see
#: :data:`CENSUS`), ARGV[1] the session's digest (its member there). A session is deleted
#: (answer: false); a marker answers the key its session moved to, which the caller ends
#: too, and stays until it expires, so that an end run again (a retry after a lost reply)
#: still finds where to go. Either way the digest leaves the census.
END = _script("""
if #KEYS > 1 then redis.call('ZREM', KEYS[2], ARGV[1]) end
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local ok, obj = pcall(cjson.decode, raw)
if ok and type(obj) == 'table' and type(obj['m']) == 'table' and obj['m']['r'] ~= nil
    and type(obj['f']) == 'string' then
  return obj['f']
end
redis.call('DEL', KEYS[1])
return false
""")

#: KEYS[1] ticket key, ARGV[1] this redemption's nonce (always 32 characters: the marker
#: is compared by that length, see ``_redemption`` in ``redisproto.py``). The first
#: redemption marks the ticket spent by that nonce (keeping its expiry) and returns the
#: value; the same nonce -- a retry of that very call -- gets the value again, any other
#: nothing: a retry is safe where a retried GETDEL would answer "replayed". A ticket never
#: held answers '' (``NOT_HELD``): the spent marker tells "taken already" from "unknown".
REDEEM = _script("""
local v = redis.call('GET', KEYS[1])
if not v then return '' end
if string.byte(v, 1) == 0 then
  local n = #ARGV[1]
  if string.sub(v, 2, n + 1) == ARGV[1] then return string.sub(v, n + 2) end
  return false
end
redis.call('SET', KEYS[1], '\\0' .. ARGV[1] .. v, 'KEEPTTL')
return v
""")

#: KEYS[1] a state's claim, KEYS[2] (optional) a ticket under the same hash tag. ARGV:
#: claim ttl, ticket value, ticket ttl, then the browser's owner names; another browser
#: gets 0 and no ticket (``SessionStore.claim_state``). Run twice, it changes nothing (NX).
CLAIM = _script("""
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
""")

#: KEYS[1] the store's identity, ARGV[1] a new one. Returns the identity held, writing
#: ARGV[1] (with no expiry) first when there is none.
IDENTITY = _script("""
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
""")

#: Lua: ``digest_of(text)`` -- the ``"k"`` (session digest) of an index entry's text, or nil.
_DIGEST_OF = """
local function digest_of(text)
  if not text then return nil end
  local ok, entry = pcall(cjson.decode, text)
  if ok and type(entry) == 'table' and type(entry['k']) == 'string' then return entry['k'] end
  return nil
end
"""

#: KEYS[1] a user's index (a hash: ref -> entry JSON), KEYS[2] (optional) the session the
#: entry names, KEYS[3] (optional, with KEYS[2]) the deployment's census. ARGV: ref, entry,
#: ttl, now, then refs to drop. ``SessionStore.index_put`` in one step; answers the entries
#: left as a flat list. Run twice, it ends in the same state.
INDEX_PUT = _script(_ENDED + _DIGEST_OF + """
local put = true
if #KEYS > 1 then
  local raw = redis.call('GET', KEYS[2])
  put = false
  if raw then
    local ok, obj = pcall(cjson.decode, raw)
    put = ok and type(obj) == 'table' and not ended(obj)
  end
end
local census = #KEYS > 2
local now = tonumber(ARGV[4])
if put then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  local digest = census and digest_of(ARGV[2])
  if digest then
    local ttl = redis.call('TTL', KEYS[2])
    if ttl < 0 then ttl = 0 end
    redis.call('ZADD', KEYS[3], now + ttl, digest)
  end
end
for i = 5, #ARGV do
  if census then
    local gone = digest_of(redis.call('HGET', KEYS[1], ARGV[i]))
    if gone then redis.call('ZREM', KEYS[3], gone) end
  end
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local all = redis.call('HGETALL', KEYS[1])
local left = {}
for i = 1, #all, 2 do
  local ok, entry = pcall(cjson.decode, all[i + 1])
  local e = nil
  if ok and type(entry) == 'table' then e = tonumber(entry['e']) end
  if e == nil or e <= now then
    redis.call('HDEL', KEYS[1], all[i])
    if census then
      local gone = digest_of(all[i + 1])
      if gone then redis.call('ZREM', KEYS[3], gone) end
    end
  else
    left[#left + 1] = all[i]; left[#left + 1] = all[i + 1]
  end
end
if #left > 0 and redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return left
""")

#: The census of a deployment: a sorted set, one member per live signed-in session (its
#: digest), scored by when to check it next (before then only an end, which takes it out
#: at once, can end it). :data:`INDEX_PUT` and :data:`END` keep it; a session that idles
#: out is found by the sweep (:data:`CENSUS_CHECK`). KEYS[1] the census, KEYS[2] its
#: sweep lock (same hash tag). ARGV[1] the lock's lifetime in milliseconds, or 0 for no
#: lock. Answers ``{members, 1 when this caller took the lock}``: O(1).
CENSUS = _script("""
local won = 0
if tonumber(ARGV[1]) > 0 and redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  won = 1
end
return {redis.call('ZCARD', KEYS[1]), won}
""")

#: Lua: ``settle(i, pttl)`` -- the census member ARGV[i] whose session key has ``pttl``
#: ms left (-2 gone, -1 no expiry): gone, it leaves the census (answer 1); live, its next
#: check is ``now`` (ARGV[1]) + its time left (an hour without expiry) -- only while it is
#: still a member (XX): an end that took it out meanwhile stands.
_SETTLE = """
local function settle(i, pttl)
  if pttl == -2 then return redis.call('ZREM', KEYS[1], ARGV[i]) end
  if pttl < 0 then pttl = 3600000 end
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + pttl / 1000, ARGV[i])
  return 0
end
"""

#: KEYS[1] the census, KEYS[2..] the session keys of members due for a check. ARGV[1]
#: now, ARGV[2..] those members, in the same order (see ``settle``). Answers how many
#: left; run twice, the second run finds them gone already (0).
CENSUS_CHECK = _script(_SETTLE + """
local left = 0
for i = 2, #KEYS do left = left + settle(i, redis.call('PTTL', KEYS[i])) end
return left
""")

#: :data:`CENSUS_CHECK` on a cluster, where the ``PTTL``s are read first, one command per
#: slot. KEYS[1] the census. ARGV[1] now, then member, ms-left pairs. Answers how many left.
CENSUS_SETTLE = _script(_SETTLE + """
local left = 0
for i = 2, #ARGV, 2 do left = left + settle(i, tonumber(ARGV[i + 1])) end
return left
""")

#: KEYS[1] session key. ARGV: ttl (0: keep the record's expiry), what the caller read,
#: the text to store instead (the record with the caller's changes merged in, a fresh
#: random stamp at its head: ``{"v":"<32 hex>",...``), and how to compare: ``head`` --
#: ARGV[2] is the stamped head read (40 bytes; only this script writes a stamp, and every
#: other script that writes a record takes it out, see ``apply``) -- or ``text``: ARGV[2]
#: is the whole text read. Writes only when the key still holds what was read: what
#: :data:`MERGE` would have written, without decoding the whole record on the server.
#: Returns 1, or 0 and writes nothing when the record changed meanwhile (the caller then
#: runs MERGE). Run twice, it finds its own stamp and answers 0. An app not yet upgraded
#: keeps the stamp, but cjson writes it after "d" and "m", never at the head
#: (``tests/test_store_exchange.py`` checks this server's order).
REPLACE = _script("""
local held
if ARGV[4] == 'head' then
  held = redis.call('GETRANGE', KEYS[1], 0, #ARGV[2] - 1)
else
  held = redis.call('GET', KEYS[1])
end
if held ~= ARGV[2] then return 0 end
if ARGV[1] == '0' then
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])
end
return 1
""")

#: Every script by its SHA1: what to send again as ``EVAL`` when the server lost it.
SCRIPTS = {script.sha: script for script in (
    MERGE, REPLACE, MOVE, MOVE_OUT, MOVE_IN, END, REDEEM, CLAIM, IDENTITY, INDEX_PUT, CENSUS,
    CENSUS_CHECK, CENSUS_SETTLE)}
