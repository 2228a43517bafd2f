"""The Redis store: one key per session, one round trip per read and per write.

Layout (DESIGN section 3 gives the measurements behind it): a session is one
string key holding ``{"d": {key: JSON text}, "m": {meta: int}}``.

- **read** = ``GETEX key EX idle``: the value and the sliding expiry in one
  command, about as cheap as a plain GET;
- **write** = one ``EVALSHA`` of a small Lua script that merges only the
  changed and deleted top-level keys on the server. Values stay JSON *text*
  inside the object, so the server never re-encodes an app's numbers;
- **tickets** = ``SET NX EX`` and ``GETDEL``: taken atomically, once.

Any redis-py client works: ``redis.Redis``, a Sentinel master
(``Sentinel(...).master_for("mymaster")``) or ``redis.cluster.RedisCluster``.
Each session key carries its digest as a hash tag (``{...}``) so that keys
belonging to one session land in one cluster slot.

Every driver error becomes :class:`~sessionshare.errors.StoreUnavailable`;
redis-py reconnects on the next command, so the app recovers by itself when
the server is back.

Speed: on a plain ``redis.Redis`` (one server, RESP2, no client-side cache)
every command skips redis-py's client and pool machinery, which costs about
10 microseconds per command in redis-py 8 -- a third of a whole session read
on loopback (measured in ``benchmarks/README.md``). Commands go out on
connections the store borrowed from the client's pool, with the same
settings and retry policy; *all* of them use those connections, so a pool
with ``max_connections`` is never starved by connections the store parked.

    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    store = RedisStore(Sentinel([("s1", 26379)]).master_for("sessions"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Mapping
from typing import Any

import redis as redis_py
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from ..errors import ConfigurationError, StoreUnavailable
from .base import SessionRecord

__all__ = ["RedisStore"]

# RedisClusterException does not derive from RedisError; OSError covers a
# socket failing below redis-py's own wrapping.
_ERRORS = (RedisError, RedisClusterException, OSError)

# KEYS[1] session key. ARGV: ttl, create flag, #changed, #meta, then the
# changed pairs, the meta pairs and the deleted names. Returns 1, or 0 when
# the session is gone and create is off (a logged-out session stays gone).
_MERGE = """
local raw = redis.call('GET', KEYS[1])
local obj
if raw then
  obj = cjson.decode(raw)
elseif ARGV[2] == '1' then
  obj = {d = {}, m = {}}
else
  return 0
end
local d, m = obj['d'], obj['m']
local i = 5
for _ = 1, tonumber(ARGV[3]) do d[ARGV[i]] = ARGV[i + 1]; i = i + 2 end
for _ = 1, tonumber(ARGV[4]) do m[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
while i <= #ARGV do d[ARGV[i]] = nil; i = i + 1 end
redis.call('SET', KEYS[1], cjson.encode(obj), 'EX', ARGV[1])
return 1
"""


def _unavailable(exc: Exception) -> StoreUnavailable:
    # The message names the error class only: redis-py messages can echo a URL
    # with a password in it.
    return StoreUnavailable(f"redis: {type(exc).__name__}")


class _DirectLine:
    """Send a command on a borrowed redis-py connection, skipping client and pool.

    Connections are borrowed from the client's pool once (so its
    ``max_connections`` still bounds them) and kept on an idle list:
    ``list.pop``/``append`` are atomic, so each thread or greenlet gets a
    connection of its own. redis-py's connection does the rest as it does
    for the client -- connect, auth, TLS, timeouts, the configured retry, and
    a disconnect on any failure, so a broken connection reconnects on reuse.
    """

    __slots__ = ("_idle", "_pid", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    @classmethod
    def for_client(cls, client: Any) -> _DirectLine | None:
        """A line for a plain single-server client; None where the client must route."""
        pool = getattr(client, "connection_pool", None)
        if (
            type(client) is not redis_py.Redis
            or type(pool) is not redis_py.ConnectionPool
            or getattr(client, "connection", None) is not None  # single-connection mode
            or getattr(pool, "cache", None) is not None  # client-side caching
            or str(pool.connection_kwargs.get("protocol") or 2) != "2"  # RESP3 pushes
        ):
            return None
        return cls(pool)

    def call(self, *args: str | int) -> Any:
        if self._pid != os.getpid():
            # Forked: the parent's sockets are not this process's to use.
            self._idle, self._pid = [], os.getpid()
        try:
            conn = self._idle.pop()
        except IndexError:
            try:
                conn = self._pool.get_connection()
            except TypeError:  # redis-py < 5.3 wants a command name
                conn = self._pool.get_connection(args[0])
        try:
            packed = conn.pack_command(*args)
            return conn.retry.call_with_retry(
                lambda: _exchange(conn, packed), lambda _error: conn.disconnect()
            )
        finally:
            self._idle.append(conn)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._pool.release(conn)


def _exchange(conn: Any, packed: Any) -> Any:
    conn.send_packed_command(packed)
    return conn.read_response()


class RedisStore:
    """A :class:`~sessionshare.store.SessionStore` over any redis-py client."""

    def __init__(self, client: Any, *, sentinel_check_interval: float = 1.0) -> None:
        if not hasattr(client, "getex"):
            raise ConfigurationError(
                "RedisStore needs a redis-py client (redis.Redis, a Sentinel master or "
                "RedisCluster); use RedisStore.from_url('redis://host:6379/0') for a URL"
            )
        self.client = client
        self._merge = client.register_script(_MERGE)
        self._direct = _DirectLine.for_client(client)
        # redis-py's Sentinel client keeps using the connections it opened to the
        # master it first found. After a switchover (SENTINEL FAILOVER) the old master
        # stays up and answers until the sentinels demote it, 10-20 s later, and every
        # write it takes meanwhile is lost. Asking the sentinels again every second makes
        # redis-py drop its connections to a master that no longer is one.
        pool = getattr(client, "connection_pool", None)
        is_master = isinstance(pool, SentinelConnectionPool) and pool.is_master
        self._sentinel_pool: Any = pool if is_master else None
        self._sentinel_check_interval = sentinel_check_interval
        self._next_sentinel_check = 0.0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        max_connections: int | None = None,
        **client_options: Any,
    ) -> RedisStore:
        """A store over ``redis.Redis.from_url(url)`` with timeouts suited to a web request.

        Short timeouts make an outage a quick 503 rather than a hung worker;
        one retry rides over a connection the server closed while idle.
        """
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                "store URL must start with redis://, rediss:// or unix://, "
                f"got {url.split(':')[0]!r}"
            )
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            "health_check_interval": 0,
        }
        if max_connections is not None:
            options["max_connections"] = max_connections
        options.update(client_options)
        try:
            client = redis_py.Redis.from_url(url, **options)
        except ValueError as exc:
            raise ConfigurationError(f"bad store URL: {exc}") from None
        return cls(client)

    def _check_master(self) -> None:
        """Re-ask the sentinels for the master, at most every ``sentinel_check_interval`` s."""
        now = time.monotonic()
        if now < self._next_sentinel_check:
            return
        self._next_sentinel_check = now + self._sentinel_check_interval
        try:
            self._sentinel_pool.get_master_address()
        except _ERRORS:
            pass  # no sentinel answers: keep the master we know; its own errors still show

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if self._direct is not None:
                raw = self._direct.call("GETEX", key, "EX", idle_ttl)
            else:
                raw = self.client.getex(key, ex=idle_ttl)
        except _ERRORS as exc:
            raise _unavailable(exc) from None
        if raw is None:
            return None
        try:
            obj = json.loads(raw)
            return SessionRecord(obj["d"], obj["m"])
        except (ValueError, KeyError, TypeError):
            # Not ours (a key-prefix clash) or damaged: treat as no session.
            return None

    def save(
        self,
        key: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str] = (),
        meta: Mapping[str, int] | None = None,
        ttl: int,
        create: bool = False,
    ) -> bool:
        meta = meta or {}
        args: list[str | int] = [max(int(ttl), 1), "1" if create else "0", len(changed), len(meta)]
        for name, text in changed.items():
            args += (name, text)
        for name, value in meta.items():
            args += (name, int(value))
        args.extend(deleted)
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if self._direct is None:
                return bool(self._merge(keys=[key], args=args))
            try:
                return bool(self._direct.call("EVALSHA", self._merge.sha, 1, key, *args))
            except NoScriptError:  # a restarted or flushed server: EVAL caches it again
                return bool(self._direct.call("EVAL", _MERGE, 1, key, *args))
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def delete(self, key: str) -> None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if self._direct is not None:
                self._direct.call("DEL", key)
            else:
                self.client.delete(key)
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if self._direct is not None:
                self._direct.call("SET", key, value, "EX", max(int(ttl), 1), "NX")
            else:
                self.client.set(key, value, ex=max(int(ttl), 1), nx=True)
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def take_ticket(self, key: str) -> str | None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if self._direct is not None:
                raw = self._direct.call("GETDEL", key)
            else:
                raw = self.client.getdel(key)
        except _ERRORS as exc:
            raise _unavailable(exc) from None
        if raw is None:
            return None
        return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)

    def ping(self) -> None:
        try:
            if self._direct is not None:
                self._direct.call("PING")
            else:
                self.client.ping()
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        try:
            if self._direct is not None:
                self._direct.close()
            self.client.close()
        except _ERRORS:
            pass
