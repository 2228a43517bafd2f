"""The asyncio Redis store: :class:`RedisStore`'s twin for ASGI apps.

The very operations of ``redisproto.py``, awaited: same keys, same scripts,
same round trips, so a WSGI app on ``RedisStore`` and an ASGI app on
``AsyncRedisStore`` share sessions in one Redis. Any ``redis.asyncio``
client works (``Redis``, a Sentinel master, ``cluster.RedisCluster``). No
method blocks the event loop, and a cancelled request never leaves a reply
behind for the next one (``aexchange.py`` says how). A store may be used from
more than one event loop (an ``asyncio.run(store.ping())`` at import, a test
framework's loop per test): a connection another loop opened is dropped, not
used, and any failure that remains is :class:`~sessionshare.errors.StoreUnavailable`.

    store = AsyncRedisStore.from_url("redis://127.0.0.1:6379/0")
    record = await store.load(key, idle_ttl=1800)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.exceptions import NoScriptError

import sessionshare.store.redisproto as op

from .aexchange import AsyncClusterLine, AsyncDirectLine, AsyncPoolLine
from .base import SessionRecord
from .redisclient import (
    DRIVER_ERRORS,
    POLICY_UNKNOWN,
    ClientStore,
    Lines,
    eviction_warning,
    unavailable,
)
from .redisproto import Operation

__all__ = ["AsyncRedisStore"]

T = TypeVar("T")

#: What a command may raise for a server it cannot use. RuntimeError: redis-py's own
#: asyncio objects (a pool's lock, say) used on another event loop than their first --
#: a store outage to the app (503), never a 500.
_FAILURES = (*DRIVER_ERRORS, RuntimeError)


class AsyncRedisStore(ClientStore):
    """An asyncio session store over any ``redis.asyncio`` client.

    :param client: ``redis.asyncio.Redis``, a Sentinel master or
        ``redis.asyncio.cluster.RedisCluster``.
    :param max_idle_connections: connections the fast path (plain
        ``redis.asyncio.Redis``, RESP2 or RESP3) keeps parked between commands;
        default: half the pool's ``max_connections``, at most 16.
    """

    _lines = Lines(aioredis.Redis, aioredis.ConnectionPool, aioredis.Connection, RedisCluster,
                  ("getex", "aclose"), Retry, AsyncDirectLine, AsyncPoolLine, AsyncClusterLine)
    _wants = ("a redis.asyncio client (redis.asyncio.Redis, a Sentinel master or "
             "RedisCluster)")

    async def _run(self, operation: Operation[T]) -> T:
        """Run one operation of ``redisproto.py``: send its command, or each command its
        program yields, and answer what it reads."""
        if not isinstance(operation, tuple):
            try:
                command = next(operation)
                while True:
                    command = operation.send(await self._run(command))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        args, key, read = operation
        try:
            try:
                raw = await self._line.call(args, key)
            except NoScriptError:
                raw = await self._line.call(op.evaluated(args), key)
        except _FAILURES as exc:
            raise unavailable(exc, self._server) from None
        return read(raw)

    async def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        return await self._run(op.load(key, idle_ttl, self._seen))

    async def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
                   meta: Mapping[str, int] | None = None, ttl: int, create: bool = False
                   ) -> bool:
        return await self._run(op.save(key, changed=changed, deleted=deleted, meta=meta,
                                       ttl=ttl, create=create, seen=self._seen))

    async def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int,
                   once: str | None = None, once_ttl: int = 0) -> SessionRecord | None:
        self._forget(key)
        return await self._run(op.mark(key, meta, idle_ttl, once, once_ttl))

    async def move(self, key: str, new_key: str, *, changed: Mapping[str, str],
                   deleted: Collection[str] = (), meta: Mapping[str, int] | None = None,
                   ttl: int, retired_at: int, grace: int) -> bool:
        self._forget(key)
        return await self._run(op.move(key, new_key, changed=changed, deleted=deleted,
                                       meta=meta, ttl=ttl, retired_at=retired_at, grace=grace,
                                       apart=self._on_cluster))

    async def delete(self, key: str, *, census: str | None = None) -> None:
        self._forget(key)
        await self._run(op.delete(key, census, apart=self._on_cluster))

    async def claim_state(self, key: str, owners: str | Sequence[str], ttl: int,
                          ticket: tuple[str, str, int] | None = None) -> bool:
        return await self._run(op.claim_state(key, owners, ttl, ticket))

    async def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        return await self._run(op.take_ticket(key, nonce))

    async def store_identity(self, key: str, candidate: str) -> str:
        return await self._run(op.store_identity(key, candidate))

    async def peek(self, key: str) -> SessionRecord | None:
        return await self._run(op.peek(key))

    async def index_put(self, key: str, ref: str, entry: str, *, ttl: int, now: int,
                        drop: Collection[str] = (), live: str | None = None,
                        census: str | None = None) -> dict[str, str]:
        return await self._run(op.index_put(key, ref, entry, ttl=ttl, now=now, drop=drop,
                                            live=live, census=census, apart=self._on_cluster))

    async def index_read(self, key: str) -> dict[str, str]:
        return await self._run(op.index_read(key))

    async def index_drop(self, key: str, refs: Collection[str]) -> None:
        await self._run(op.index_drop(key, refs))

    async def ping(self) -> None:
        await self._run(op.ping())

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
