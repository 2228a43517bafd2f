"""The Redis store: one key per session, one round trip per read and per write.

A session is one string key holding ``{"d": {key: JSON text}, "m": {meta:
int}}`` (DESIGN section 3 gives the measurements behind the layout). A read
is ``GETEX key EX idle``: the value and the sliding expiry in one command. A
write is one ``EVALSHA`` of a small Lua script that merges only the changed
and deleted keys on the server, the values staying JSON *text*. A ticket is
issued with its login state's claim (one script) and redeemed by a script
that marks it spent by one call, so it is taken once even when a timed-out
command is retried. A user's index is one hash (``HGETALL``, ``HDEL``, and a
script that sets an entry and prunes the expired). What each method sends and
how it reads the answer is written once, in ``redisproto.py``, for this store
and :class:`~sessionshare.store.AsyncRedisStore` alike.

Any redis-py client works: ``redis.Redis``, a Sentinel master
(``Sentinel(...).master_for("mymaster")``) or ``redis.cluster.RedisCluster``.
Every command touches the keys of one hash slot, so it works unchanged on a
cluster (a move, whose two ids sit apart there, takes three steps). On a plain
``redis.Redis`` without a client-side cache, commands skip redis-py's client
and pool machinery (about 10 microseconds a command: ``benchmarks/README.md``)
on connections borrowed from the client's pool, so ``max_connections`` still
bounds them.

Every driver error becomes :class:`~sessionshare.errors.StoreUnavailable`;
redis-py reconnects on the next command, so the app recovers by itself when
the server is back. No reply is ever left on a connection for the next
request to read, whatever interrupts a command (``exchange.py`` says how).
Give sessions a Redis of their own with ``maxmemory-policy noeviction``: an
evicting policy signs users out at random (:meth:`RedisStore.eviction_warning`).

    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    store = RedisStore(Sentinel([("s1", 26379)]).master_for("sessions"))
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

import redis as redis_py
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

import sessionshare.store.redisproto as op

from .base import SessionRecord
from .exchange import ClusterLine, DirectLine, PoolLine
from .redisclient import (
    DRIVER_ERRORS,
    POLICY_UNKNOWN,
    ClientStore,
    Lines,
    eviction_warning,
    unavailable,
)
from .redisproto import Operation

__all__ = ["RedisStore"]

T = TypeVar("T")


class RedisStore(ClientStore):
    """A :class:`~sessionshare.store.SessionStore` over any redis-py client.

    :param client: ``redis.Redis``, a Sentinel master
        (``Sentinel(...).master_for(name)``) or ``redis.cluster.RedisCluster``.
    :param sentinel_check_interval: seconds between asking the sentinels which
        server is the master (Sentinel clients only).
    :param max_idle_connections: connections the fast path (a plain ``redis.Redis``
        without a client-side cache) keeps parked between commands; default: half the pool's
        ``max_connections``, at most 16. Busier moments borrow from the pool and
        give the surplus back.
    """

    _lines = Lines(redis_py.Redis, redis_py.ConnectionPool, redis_py.Connection, RedisCluster,
                  ("getex",), Retry, DirectLine, PoolLine, ClusterLine)
    _wants = "a redis-py client (redis.Redis, a Sentinel master or RedisCluster)"

    def __init__(
        self,
        client: Any,
        *,
        sentinel_check_interval: float = 1.0,
        max_idle_connections: int | None = None,
    ) -> None:
        super().__init__(client, max_idle_connections=max_idle_connections)
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

    def _run(self, operation: Operation[T]) -> T:
        """Run one operation of ``redisproto.py``: send its command, or each command its
        program yields, and answer what it reads."""
        if self._sentinel_pool is not None:
            self._check_master()
        if not isinstance(operation, tuple):
            try:
                command = next(operation)
                while True:
                    command = operation.send(self._run(command))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        args, key, read = operation
        try:
            try:
                raw = self._line.call(args, key)
            except NoScriptError:
                raw = self._line.call(op.evaluated(args), key)
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, self._server) from None
        return read(raw)

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        return self._run(op.load(key, idle_ttl, self._seen))

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        return self._run(op.save(key, changed=changed, deleted=deleted, meta=meta, ttl=ttl,
                                 create=create, seen=self._seen))

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int, once: str | None = None,
             once_ttl: int = 0) -> SessionRecord | None:
        self._forget(key)
        return self._run(op.mark(key, meta, idle_ttl, once, once_ttl))

    def move(self, key: str, new_key: str, *, changed: Mapping[str, str],
             deleted: Collection[str] = (), meta: Mapping[str, int] | None = None, ttl: int,
             retired_at: int, grace: int) -> bool:
        self._forget(key)
        return self._run(op.move(key, new_key, changed=changed, deleted=deleted, meta=meta,
                                 ttl=ttl, retired_at=retired_at, grace=grace,
                                 apart=self._on_cluster))

    def delete(self, key: str, *, census: str | None = None) -> None:
        self._forget(key)
        self._run(op.delete(key, census, apart=self._on_cluster))

    def claim_state(self, key: str, owners: str | Sequence[str], ttl: int,
                    ticket: tuple[str, str, int] | None = None) -> bool:
        return self._run(op.claim_state(key, owners, ttl, ticket))

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        return self._run(op.take_ticket(key, nonce))

    def store_identity(self, key: str, candidate: str) -> str:
        return self._run(op.store_identity(key, candidate))

    def peek(self, key: str) -> SessionRecord | None:
        return self._run(op.peek(key))

    def index_put(self, key: str, ref: str, entry: str, *, ttl: int, now: int,
                  drop: Collection[str] = (), live: str | None = None,
                  census: str | None = None) -> dict[str, str]:
        return self._run(op.index_put(key, ref, entry, ttl=ttl, now=now, drop=drop, live=live,
                                      census=census, apart=self._on_cluster))

    def index_read(self, key: str) -> dict[str, str]:
        return self._run(op.index_read(key))

    def index_drop(self, key: str, refs: Collection[str]) -> None:
        self._run(op.index_drop(key, refs))

    def ping(self) -> None:
        self._run(op.ping())

    # -- the census: the O(1) count of live sessions (SessionAdmin.count_sessions) --------
    def census_read(self, key: str, *, lock: str, lock_ttl: float = 0) -> tuple[int, bool]:
        """The census's members, and whether this caller took its sweep lock for
        ``lock_ttl`` seconds (0: none asked for). One round trip."""
        return self._run(op.census_read(key, lock, lock_ttl))

    def census_due(self, key: str, now: int, limit: int) -> list[str]:
        """Members due for a check (check time ``now`` or earlier), at most ``limit``."""
        return self._run(op.census_due(key, now, limit))

    def census_check(self, key: str, sessions: Mapping[str, str], now: int) -> int:
        """Check ``sessions`` (member -> session key): a live one is due again when its
        key expires, a gone one leaves the census; how many left. One script (on a
        cluster, a ``TTL`` per session first)."""
        return self._run(op.census_check(key, sessions, now, apart=self._on_cluster))

    def census_add(self, key: str, members: Collection[str], now: int) -> int:
        """Add the ``members`` the census lacks, due for a check at ``now``; how many."""
        return self._run(op.census_add(key, members, now))

    def census_members(self, key: str) -> list[str]:
        """Every member of the census (``ZSCAN``)."""
        return self._run(op.census_members(key))

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

    def eviction_warning(self) -> str | None:
        """Why this server may drop sessions silently, or None when it will not: under an
        evicting ``maxmemory-policy`` Redis removes keys when memory runs short, so users
        are signed out and hand-offs fail as ``replayed``."""
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
