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

    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    store = RedisStore(Sentinel([("s1", 26379)]).master_for("sessions"))
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import redis as redis_py
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

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


class RedisStore:
    """A :class:`~sessionshare.store.SessionStore` over any redis-py client."""

    def __init__(self, client: Any) -> None:
        if not hasattr(client, "getex"):
            raise ConfigurationError(
                "RedisStore needs a redis-py client (redis.Redis, a Sentinel master or "
                "RedisCluster); use RedisStore.from_url('redis://host:6379/0') for a URL"
            )
        self.client = client
        self._merge = client.register_script(_MERGE)

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

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        try:
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
        try:
            return bool(self._merge(keys=[key], args=args))
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete(key)
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        try:
            self.client.set(key, value, ex=max(int(ttl), 1), nx=True)
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def take_ticket(self, key: str) -> str | None:
        try:
            raw = self.client.getdel(key)
        except _ERRORS as exc:
            raise _unavailable(exc) from None
        if raw is None:
            return None
        return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)

    def ping(self) -> None:
        try:
            self.client.ping()
        except _ERRORS as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        try:
            self.client.close()
        except _ERRORS:
            pass
