"""The asyncio Redis store: :class:`RedisStore`'s twin for ASGI apps.

Same key layout, same scripts, same round trips (``redisproto.py``): a
session read is one ``GETEX``, a write one ``EVALSHA``, a ticket one script
to issue (with its state's claim) and one to redeem. So a WSGI app on ``RedisStore`` and an
ASGI app on ``AsyncRedisStore`` share sessions in one Redis.

Any ``redis.asyncio`` client works: ``redis.asyncio.Redis``, a Sentinel master
(``redis.asyncio.Sentinel(...).master_for(name)``) or
``redis.asyncio.cluster.RedisCluster``. No method blocks the event loop, and
a cancelled request never leaves a reply behind for the next one
(``aexchange.py`` says how). A store may be used from more than one event loop
(an ``asyncio.run(store.ping())`` at import, a test framework's loop per test):
a connection another loop opened is dropped, not used, and any failure that
remains is :class:`~sessionshare.errors.StoreUnavailable`.

    store = AsyncRedisStore.from_url("redis://127.0.0.1:6379/0")
    record = await store.load(key, idle_ttl=1800)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import utils as redis_utils
from redis.asyncio.cluster import RedisCluster

from ..errors import ConfigurationError
from .aexchange import AsyncClusterLine, AsyncDirectLine, AsyncLine, AsyncPoolLine, run_script
from .base import MAX_HOPS, SessionRecord, owners_of
from .exchange import DEFAULT_MAX_IDLE, packs_like_redis_py
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

__all__ = ["AsyncRedisStore"]

#: What a command may raise for a server it cannot use. RuntimeError: redis-py's own
#: asyncio objects (a pool's lock, say) used on another event loop than their first --
#: a store outage to the app (503), never a 500.
_FAILURES = (*DRIVER_ERRORS, RuntimeError)


def _line_for(client: Any, max_idle: int | None) -> AsyncLine:
    if isinstance(client, RedisCluster):
        return AsyncClusterLine(client)
    pool = client.connection_pool
    protocol = pool.connection_kwargs.get("protocol")
    if protocol is None:
        protocol = getattr(redis_utils, "DEFAULT_RESP_VERSION", 2)
    if (
        type(client) is aioredis.Redis
        and type(pool) is aioredis.ConnectionPool
        and str(protocol) == "2"
        and packs_like_redis_py(pool, aioredis.Connection)
    ):
        if max_idle is None:
            max_idle = min(DEFAULT_MAX_IDLE, max(pool.max_connections // 2, 1))
        return AsyncDirectLine(pool, max_idle)
    return AsyncPoolLine(pool)


class AsyncRedisStore:
    """An asyncio session store over any ``redis.asyncio`` client.

    :param client: ``redis.asyncio.Redis``, a Sentinel master or
        ``redis.asyncio.cluster.RedisCluster``.
    :param max_idle_connections: connections the fast path (plain
        ``redis.asyncio.Redis`` speaking RESP2) keeps parked between commands;
        default: half the pool's ``max_connections``, at most 16.
    """

    def __init__(self, client: Any, *, max_idle_connections: int | None = None) -> None:
        if not hasattr(client, "getex") or not (
            isinstance(client, RedisCluster) or hasattr(client, "connection_pool")
        ) or not hasattr(client, "aclose"):
            raise ConfigurationError(
                "AsyncRedisStore needs a redis.asyncio client (redis.asyncio.Redis, a Sentinel "
                "master or RedisCluster); use AsyncRedisStore.from_url('redis://host:6379/0')"
            )
        if max_idle_connections is not None and (
            not isinstance(max_idle_connections, int) or max_idle_connections < 0
        ):
            raise ConfigurationError("max_idle_connections must be a whole number >= 0")
        self.client = client
        self._line = _line_for(client, max_idle_connections)
        kwargs = (client.connection_kwargs if isinstance(client, RedisCluster)
                  else client.connection_pool.connection_kwargs)
        warn_without_timeout("AsyncRedisStore", kwargs)
        # Named once, for the outage message: host:port or socket path, no password.
        self._server = server_name(kwargs, getattr(client, "connection_pool", None))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        max_connections: int | None = None,
        **client_options: Any,
    ) -> AsyncRedisStore:
        """A store over ``redis.asyncio.Redis.from_url(url)``, set up as ``RedisStore.from_url``."""
        from redis.asyncio.retry import Retry

        client = web_client(
            aioredis.Redis.from_url, Retry, url, socket_timeout=socket_timeout,
            max_connections=max_connections, client_options=client_options,
        )
        return cls(client)

    @property
    def uses_fast_path(self) -> bool:
        """True when commands skip redis-py's client and pool (plain Redis, RESP2)."""
        return isinstance(self._line, AsyncDirectLine)

    @property
    def idle_connections(self) -> int:
        """Connections the fast path holds parked right now (0 off the fast path)."""
        return self._line.idle_count if isinstance(self._line, AsyncDirectLine) else 0

    async def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        try:
            raw = await self._line.call("GETEX", key, "EX", idle_ttl, key=key)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return parse_record(raw)

    async def save(
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
        try:
            return bool(await run_script(self._line, MERGE, MERGE_SHA, 1, key, *args))
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def mark(
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
        try:
            raw = await run_script(self._line, MERGE, MERGE_SHA, *keys, *args)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return mark_reply(raw)

    async def move(
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
        try:
            if not isinstance(self._line, AsyncClusterLine):
                args = move_args(key, new_key, changed=changed, deleted=deleted, meta=meta,
                                 ttl=ttl, retired_at=retired_at, grace=grace)
                return bool(await run_script(self._line, MOVE, MOVE_SHA, *args))
            # Two slots: as RedisStore.move does.
            if not await self._line.call("SET", new_key, PREPARED, "EX", max(int(grace), 1),
                                         "NX", key=new_key):
                # Taken: done already if the old id names it and it holds the session.
                return (moved_to_by(await self._line.call("GET", key, key=key)) == new_key
                        and is_live_text(await self._line.call("GET", new_key, key=new_key)))
            record = await run_script(
                self._line, MOVE_OUT, MOVE_OUT_SHA,
                *move_out_args(key, new_key, retired_at=retired_at, grace=grace),
            )
            if not record:
                return False
            args = move_in_args(new_key, record, changed=changed, deleted=deleted, meta=meta,
                                ttl=ttl)
            return bool(await run_script(self._line, MOVE_IN, MOVE_IN_SHA, *args))
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def delete(self, key: str) -> None:
        try:
            next_key: str | None = key
            for _ in range(MAX_HOPS):  # a marker names where its session moved: end it too
                if next_key is None:
                    break
                next_key = moved_to(await run_script(self._line, END, END_SHA, 1, next_key))
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def claim_state(
        self,
        key: str,
        owners: str | Sequence[str],
        ttl: int,
        ticket: tuple[str, str, int] | None = None,
    ) -> bool:
        try:
            args = claim_args(key, owners_of(owners), ttl, ticket)
            return bool(await run_script(self._line, CLAIM, CLAIM_SHA, *args))
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        # Names this redemption, so a retry of it is recognised (its own, or the caller's).
        nonce = redeem_nonce(nonce)
        try:
            raw = await run_script(self._line, REDEEM, REDEEM_SHA, 1, key, nonce)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return ticket_text(raw)

    async def store_identity(self, key: str, candidate: str) -> str:
        try:
            raw = await run_script(self._line, IDENTITY, IDENTITY_SHA, 1, key, candidate)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return ticket_text(raw) or ""

    async def peek(self, key: str) -> SessionRecord | None:
        try:
            raw = await self._line.call("GET", key, key=key)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return parse_record(raw)

    async def index_put(
        self, key: str, ref: str, entry: str, *, ttl: int, now: int, drop: Collection[str] = (),
        live: str | None = None,
    ) -> dict[str, str]:
        # On a cluster: set, check the session, take the entry out again (RedisStore's way).
        apart = live is not None and isinstance(self._line, AsyncClusterLine)
        args = index_args(key, ref, entry, ttl, now, drop, None if apart else live)
        try:
            raw = await run_script(self._line, INDEX_PUT, INDEX_PUT_SHA, *args)
            entries = index_entries(raw)
            if apart and live is not None and not is_live_text(
                await self._line.call("GET", live, key=live)
            ):
                await self._line.call("HDEL", key, ref, key=key)
                entries.pop(ref, None)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return entries

    async def index_read(self, key: str) -> dict[str, str]:
        try:
            raw = await self._line.call("HGETALL", key, key=key)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return index_entries(raw)

    async def index_drop(self, key: str, refs: Collection[str]) -> None:
        if not refs:
            return
        try:
            await self._line.call("HDEL", key, *refs, key=key)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def ping(self) -> None:
        try:
            await self._line.call("PING")
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None

    async def eviction_warning(self) -> str | None:
        """As :meth:`RedisStore.eviction_warning`."""
        try:
            answer = await self.client.config_get("maxmemory-policy")
        except _FAILURES:
            return POLICY_UNKNOWN
        return eviction_warning(answer)

    async def close(self) -> None:
        """Disconnect every connection not in use; the store reconnects on demand."""
        try:
            await self._line.close()
            if isinstance(self.client, RedisCluster):
                for node in self.client.get_nodes():
                    await node.disconnect_free_connections()
            else:
                await self.client.connection_pool.disconnect(inuse_connections=False)
        except _FAILURES:
            pass
