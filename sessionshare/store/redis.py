"""The Redis store: one key per session, one round trip per read and per write.

Layout (DESIGN section 3 gives the measurements behind it): a session is one
string key holding ``{"d": {key: JSON text}, "m": {meta: int}}``.

- **read** = ``GETEX key EX idle``: the value and the sliding expiry in one
  command, about as cheap as a plain GET;
- **write** = one ``EVALSHA`` of a small Lua script that merges only the
  changed and deleted top-level keys on the server. Values stay JSON *text*
  inside the object, so the server never re-encodes an app's numbers;
- **tickets** = issued with their login state's claim (one script), and
  redeemed by a small script that marks the ticket spent by one call, so it
  is taken once even when a timed-out command is retried;
- **user indexes** = one hash per user (``HGETALL`` / ``HDEL``, and one script
  that sets an entry and prunes the expired), written by the IdP at sign-in.

Any redis-py client works: ``redis.Redis``, a Sentinel master
(``Sentinel(...).master_for("mymaster")``) or ``redis.cluster.RedisCluster``.
A session is one key, so every command of the store touches one key and
works unchanged on a cluster.

Every driver error becomes :class:`~sessionshare.errors.StoreUnavailable`;
redis-py reconnects on the next command, so the app recovers by itself when
the server is back.

Safety: no reply is ever left on a connection for the next request to read,
whatever interrupts a command (``exchange.py`` says how and why). Give
sessions a Redis of their own with ``maxmemory-policy noeviction``: an
evicting policy signs users out at random (:meth:`RedisStore.eviction_warning`,
which ``python -m sessionshare check`` reports).

Speed: on a plain ``redis.Redis`` speaking RESP2 (what ``from_url`` builds)
commands skip redis-py's client and pool machinery, which costs about 10
microseconds per command in redis-py 8 -- a third of a whole session read on
loopback (measured in ``benchmarks/README.md``). Those connections are
borrowed from the client's pool, so its ``max_connections`` still bounds them.

    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    store = RedisStore(Sentinel([("s1", 26379)]).master_for("sessions"))
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis as redis_py
from redis import utils as redis_utils
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from ..errors import ConfigurationError
from .base import MAX_HOPS, SessionRecord, owners_of
from .exchange import (
    DEFAULT_MAX_IDLE,
    ClusterLine,
    DirectLine,
    PoolLine,
    packs_like_redis_py,
    run_script,
)
from .redisproto import (
    CLAIM,
    CLAIM_SHA,
    DRIVER_ERRORS,
    END,
    END_SHA,
    IDENTITY,
    IDENTITY_SHA,
    INDEX_PUT,
    INDEX_PUT_SHA,
    MERGE,
    MERGE_SHA,
    MOVE,
    MOVE_IN,
    MOVE_IN_SHA,
    MOVE_OUT,
    MOVE_OUT_SHA,
    MOVE_SHA,
    POLICY_UNKNOWN,
    PREPARED,
    REDEEM,
    REDEEM_SHA,
    claim_args,
    eviction_warning,
    index_args,
    index_entries,
    is_live_text,
    mark_args,
    mark_reply,
    merge_args,
    move_args,
    move_in_args,
    move_out_args,
    moved_to,
    moved_to_by,
    parse_record,
    redeem_nonce,
    server_name,
    ticket_text,
    unavailable,
    warn_without_timeout,
    web_client,
)

__all__ = ["RedisStore"]

def _protocol(pool: Any) -> str:
    """The RESP version the pool's connections speak (redis-py 8 defaults to 3)."""
    given = pool.connection_kwargs.get("protocol")
    if given is None:
        given = getattr(redis_utils, "DEFAULT_RESP_VERSION", 2)
    return str(given)


def _line_for(client: Any, max_idle: int | None) -> DirectLine | PoolLine | ClusterLine:
    """The way this client's commands go out; every one keeps exchange.py's two rules."""
    if isinstance(client, RedisCluster):
        return ClusterLine(client)
    pool = client.connection_pool
    if (
        type(client) is redis_py.Redis
        and type(pool) is redis_py.ConnectionPool
        and getattr(pool, "cache", None) is None  # client-side caching
        and _protocol(pool) == "2"  # RESP3 may interleave push messages
        and packs_like_redis_py(pool, redis_py.Connection)
    ):
        if max_idle is None:
            # Half the pool's bound at most: the client's own commands keep the rest.
            max_idle = min(DEFAULT_MAX_IDLE, max(pool.max_connections // 2, 1))
        return DirectLine(pool, max_idle)
    return PoolLine(pool)


def _connection_kwargs(client: Any) -> Any:
    """What the client's new connections are built with (a cluster keeps it elsewhere)."""
    if isinstance(client, RedisCluster):
        return getattr(getattr(client, "nodes_manager", None), "connection_kwargs", None)
    return getattr(client.connection_pool, "connection_kwargs", None)


class RedisStore:
    """A :class:`~sessionshare.store.SessionStore` over any redis-py client.

    :param client: ``redis.Redis``, a Sentinel master
        (``Sentinel(...).master_for(name)``) or ``redis.cluster.RedisCluster``.
    :param sentinel_check_interval: seconds between asking the sentinels which
        server is the master (Sentinel clients only).
    :param max_idle_connections: connections the fast path (plain ``redis.Redis``
        speaking RESP2) keeps parked between commands; default: half the pool's
        ``max_connections``, at most 16. Busier moments borrow from the pool and
        give the surplus back.
    """

    def __init__(
        self,
        client: Any,
        *,
        sentinel_check_interval: float = 1.0,
        max_idle_connections: int | None = None,
    ) -> None:
        if not hasattr(client, "getex") or not (
            isinstance(client, RedisCluster) or hasattr(client, "connection_pool")
        ):
            raise ConfigurationError(
                "RedisStore needs a redis-py client (redis.Redis, a Sentinel master or "
                "RedisCluster); use RedisStore.from_url('redis://host:6379/0') for a URL"
            )
        if max_idle_connections is not None and (
            not isinstance(max_idle_connections, int) or max_idle_connections < 0
        ):
            raise ConfigurationError("max_idle_connections must be a whole number >= 0")
        self.client = client
        self._line = _line_for(client, max_idle_connections)
        warn_without_timeout("RedisStore", _connection_kwargs(client))
        # Named once, for the outage message: host:port or socket path, no password.
        self._server = server_name(
            _connection_kwargs(client), getattr(client, "connection_pool", None)
        )
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
        """A store over ``redis.Redis.from_url(url)`` with settings suited to a web request.

        Short timeouts make an outage a quick 503 rather than a hung worker;
        one retry rides over a connection the server closed while idle (every
        command the store sends is safe to run twice). RESP2 unless
        ``protocol=3`` is passed: the fast path needs it.
        """
        client = web_client(
            redis_py.Redis.from_url, Retry, url, socket_timeout=socket_timeout,
            max_connections=max_connections, client_options=client_options,
        )
        return cls(client)

    @property
    def uses_fast_path(self) -> bool:
        """True when commands skip redis-py's client and pool (plain Redis, RESP2)."""
        return isinstance(self._line, DirectLine)

    @property
    def idle_connections(self) -> int:
        """Connections the fast path holds parked right now (0 off the fast path)."""
        return self._line.idle_count if isinstance(self._line, DirectLine) else 0

    def _check_master(self) -> None:
        """Re-ask the sentinels for the master, at most every ``sentinel_check_interval`` s."""
        now = time.monotonic()
        if now < self._next_sentinel_check:
            return
        self._next_sentinel_check = now + self._sentinel_check_interval
        try:
            self._sentinel_pool.get_master_address()
        except DRIVER_ERRORS:
            pass  # no sentinel answers: keep the master we know; its own errors still show

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            raw = self._line.call("GETEX", key, "EX", idle_ttl, key=key)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return parse_record(raw)

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
        args = merge_args(changed=changed, deleted=deleted, meta=meta, ttl=ttl, create=create)
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            return bool(run_script(self._line, MERGE, MERGE_SHA, 1, key, *args))
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def mark(
        self,
        key: str,
        meta: Mapping[str, int],
        idle_ttl: int,
        once: str | None = None,
        once_ttl: int = 0,
    ) -> SessionRecord | None:
        args = mark_args(meta=meta, idle_ttl=idle_ttl,
                         once_ttl=None if once is None else once_ttl)
        keys = (1, key) if once is None else (2, key, once)
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            raw = run_script(self._line, MERGE, MERGE_SHA, *keys, *args)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return mark_reply(raw)

    def move(
        self,
        key: str,
        new_key: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str] = (),
        meta: Mapping[str, int] | None = None,
        ttl: int,
        retired_at: int,
        grace: int,
    ) -> bool:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            if not isinstance(self._line, ClusterLine):
                args = move_args(key, new_key, changed=changed, deleted=deleted, meta=meta,
                                 ttl=ttl, retired_at=retired_at, grace=grace)
                return bool(run_script(self._line, MOVE, MOVE_SHA, *args))
            # Two slots: prepare the new key, retire the old one (answering its record),
            # then fill the new one -- unless an end meanwhile followed the marker there.
            if not self._line.call("SET", new_key, PREPARED, "EX", max(int(grace), 1), "NX",
                                   key=new_key):
                # Taken: done already (this move, run again) if the old id names it and it
                # holds the session; else not ours to fill.
                return (moved_to_by(self._line.call("GET", key, key=key)) == new_key
                        and is_live_text(self._line.call("GET", new_key, key=new_key)))
            record = run_script(self._line, MOVE_OUT, MOVE_OUT_SHA,
                                *move_out_args(key, new_key, retired_at=retired_at, grace=grace))
            if not record:
                return False
            args = move_in_args(new_key, record, changed=changed, deleted=deleted, meta=meta,
                                ttl=ttl)
            return bool(run_script(self._line, MOVE_IN, MOVE_IN_SHA, *args))
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def delete(self, key: str) -> None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            next_key: str | None = key
            for _ in range(MAX_HOPS):  # a marker names where its session moved: end it too
                if next_key is None:
                    break
                next_key = moved_to(run_script(self._line, END, END_SHA, 1, next_key))
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def claim_state(
        self,
        key: str,
        owners: str | Sequence[str],
        ttl: int,
        ticket: tuple[str, str, int] | None = None,
    ) -> bool:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            args = claim_args(key, owners_of(owners), ttl, ticket)
            return bool(run_script(self._line, CLAIM, CLAIM_SHA, *args))
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        if self._sentinel_pool is not None:
            self._check_master()
        # Names this redemption, so a retry of it is recognised (its own, or the caller's).
        nonce = redeem_nonce(nonce)
        try:
            raw = run_script(self._line, REDEEM, REDEEM_SHA, 1, key, nonce)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return ticket_text(raw)

    def store_identity(self, key: str, candidate: str) -> str:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            raw = run_script(self._line, IDENTITY, IDENTITY_SHA, 1, key, candidate)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return ticket_text(raw) or ""

    def peek(self, key: str) -> SessionRecord | None:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            raw = self._line.call("GET", key, key=key)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return parse_record(raw)

    def index_put(
        self, key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str] = (),
        live: str | None = None,
    ) -> dict[str, str]:
        if self._sentinel_pool is not None:
            self._check_master()
        # On a cluster the index and the session sit in different slots: set the entry,
        # then check the session and take the entry out again if it ended meanwhile.
        apart = live is not None and isinstance(self._line, ClusterLine)
        args = index_args(key, ref, entry, ttl, now, drop, None if apart else live)
        try:
            entries = index_entries(run_script(self._line, INDEX_PUT, INDEX_PUT_SHA, *args))
            if apart and live is not None and not is_live_text(
                self._line.call("GET", live, key=live)
            ):
                self._line.call("HDEL", key, ref, key=key)
                entries.pop(ref, None)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return entries

    def index_read(self, key: str) -> dict[str, str]:
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            raw = self._line.call("HGETALL", key, key=key)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return index_entries(raw)

    def index_drop(self, key: str, refs: Collection[str]) -> None:
        if not refs:
            return
        if self._sentinel_pool is not None:
            self._check_master()
        try:
            self._line.call("HDEL", key, *refs, key=key)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def index_keys(self, prefix: str) -> list[str]:
        """Every index key that starts with ``prefix``: ``SCAN`` in batches (on a
        cluster, over every master), never ``KEYS``, so the server is never held up."""
        match = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix) + "*"
        try:
            return [key.decode() if isinstance(key, bytes) else str(key)
                    for key in self.client.scan_iter(match=match, count=1000)]
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def count_stored(self, keys: Collection[str]) -> int:
        """How many of ``keys`` hold a session now: ``EXISTS``, 500 keys a command (a
        cluster client splits each by slot). Their expiry is left as it is."""
        names = list(keys)
        total = 0
        try:
            for start in range(0, len(names), 500):
                total += int(self.client.exists(*names[start:start + 500]))
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return total

    def ping(self) -> None:
        try:
            self._line.call("PING")
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None

    def eviction_warning(self) -> str | None:
        """Why this server may drop sessions silently, or None when it will not.

        Under an evicting ``maxmemory-policy`` Redis removes keys when memory runs
        short: users are signed out and hand-offs fail as ``replayed``. Sessions
        want a Redis of their own with ``maxmemory-policy noeviction``.
        """
        try:
            answer = self.client.config_get("maxmemory-policy")
        except DRIVER_ERRORS:
            return POLICY_UNKNOWN
        return eviction_warning(answer)

    def close(self) -> None:
        """Disconnect every connection not in use; safe while other threads use the store.

        Connections in use finish their command first (disconnecting them under
        a running command would hand a half-closed socket to its user); the
        store stays usable and reconnects on demand.
        """
        try:
            self._line.close()
            pools = (
                [node.redis_connection.connection_pool for node in self.client.get_nodes()  # type: ignore[no-untyped-call]
                 if node.redis_connection is not None]
                if isinstance(self.client, RedisCluster)
                else [self.client.connection_pool]
            )
            for pool in pools:
                pool.disconnect(inuse_connections=False)
        except DRIVER_ERRORS:
            pass
