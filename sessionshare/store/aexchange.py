"""How the asyncio Redis store sends a command: ``exchange.py``'s two rules, for asyncio.

Under asyncio the usual interruption is *cancellation*: a client disconnects,
the server cancels the request's task, and ``asyncio.CancelledError`` (a
``BaseException``) arrives at the ``await`` that was reading the reply. A
connection given back then still holds the reply, and the next task to use
it reads another user's session (redis-py's async cluster node frees such a
connection). So here too an exchange completes or its connection is dropped,
cancellation included, and every borrowed connection is checked for unread
data first. redis-py's retry stays on: every command is safe to run twice.

A connection belongs to the event loop that opened it, yet a store is often
used from more than one loop (an ``asyncio.run(store.ping())`` at import,
then the server's). Its reads would wait on the other loop, maybe closed
(``RuntimeError`` *after* the server ran the command), so each connection's
loop is remembered and one of another loop is dropped, never used; a
``RuntimeError`` an exchange still meets is a failed connection (never a 500).
"""

from __future__ import annotations

import asyncio
import weakref
from contextlib import suppress
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .exchange import (
    DEFAULT_MAX_IDLE,
    NODE_FAILURES,
    client_takes_over,
    marks_for_reconnect,
    pack,
)

__all__ = ["AsyncClusterLine", "AsyncDirectLine", "AsyncPoolLine", "drop",
           "exchange", "send"]


#: redis-py's own write, which :func:`send` stands in for (and only for it).
_REDIS_PY_SEND = AbstractConnection.send_packed_command


async def send(conn: Any, packed: Any) -> None:
    """Write one packed command as redis-py's ``send_packed_command`` does, minus a task.

    Before Python 3.12, redis-py wraps each write in ``asyncio.wait_for``, a task
    of its own, though the kernel nearly always takes the few hundred bytes at
    once: here only a rest the transport kept back is awaited, under the same
    timeout. Anything unusual (not open, closing, health checks) goes through
    redis-py's own method. Errors are redis-py's; the caller drops the connection.
    """
    # redis-py's StreamWriter (None while closed); without it, redis-py's own path below.
    writer = getattr(conn, "_writer", None)
    if (writer is None or type(conn).send_packed_command is not _REDIS_PY_SEND
            or conn.health_check_interval or not conn.is_connected
            or writer.transport.is_closing()):
        await conn.send_packed_command(packed)  # also a class that writes its own way
        return
    try:
        writer.writelines(packed)
        if writer.transport.get_write_buffer_size():
            await asyncio.wait_for(writer.drain(), conn.socket_timeout)
    except asyncio.TimeoutError:
        raise RedisTimeoutError("Timeout writing to socket") from None
    except OSError as exc:
        raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc


#: The event loop each connection last exchanged a command on.
_LOOP_OF: weakref.WeakKeyDictionary[Any, asyncio.AbstractEventLoop] = (
    weakref.WeakKeyDictionary()
)


async def drop(conn: Any) -> None:
    """Close a connection at once, discarding whatever it has not sent yet -- even when
    the event loop that opened it is gone.

    A transport closed the usual way first flushes its buffer: a command cut off
    halfway would still reach the server whole and run after its task was
    cancelled. Aborted, the server sees half a command and runs nothing. At
    once: waiting would be a new await point in a task being cancelled.
    """
    writer = getattr(conn, "_writer", None)  # see send(): redis-py's StreamWriter
    # RuntimeError: its loop is closed. The abort discarded the buffer before it failed to
    # schedule the close (the transport closes its socket when collected), and redis-py
    # has forgotten the socket already.
    with suppress(RuntimeError):
        if writer is not None:
            writer.transport.abort()
    with suppress(RuntimeError):
        await conn.disconnect(nowait=True)


async def claim(conn: Any) -> None:
    """Make ``conn`` this loop's: a connection another loop opened is dropped first (it
    reconnects on this one at its next command)."""
    loop = asyncio.get_running_loop()
    owner = _LOOP_OF.get(conn)
    if owner is not None and owner is not loop:
        await drop(conn)
    _LOOP_OF[conn] = loop


async def exchange(conn: Any, packed: Any) -> Any:
    """Send one packed command and await its reply; on ANY failure, drop the connection."""
    done = False
    try:
        await send(conn, packed)
        reply = await conn.read_response()
        done = True
        return reply
    except ResponseError:
        done = True  # the server's error reply was read in full
        raise
    except RuntimeError as exc:
        # A connection of another event loop that nothing told apart (the client's own
        # commands opened it there): a failed connection, never a 500.
        raise RedisConnectionError(
            f"the connection belongs to another event loop ({type(exc).__name__})"
        ) from exc
    finally:
        if not done:
            await drop(conn)


async def _with_retry(conn: Any, packed: Any) -> Any:
    # As exchange.py's: the first attempt outside the policy, a failure handed to it.
    try:
        return await exchange(conn, packed)
    except Exception as exc:  # noqa: BLE001 - the policy decides, as it would have
        first: list[Exception] = [exc]

    async def attempt() -> Any:
        if first:
            raise first.pop()
        return await exchange(conn, packed)

    async def failed(_error: Exception) -> None:
        await drop(conn)

    return await conn.retry.call_with_retry(attempt, failed)


async def drop_if_dirty(conn: Any) -> None:
    """Disconnect a connection that has unread data or that the server closed."""
    if not conn.is_connected:
        return  # connects afresh on send
    # redis-py 8 renamed can_read_destructive to can_read (same meaning).
    check = getattr(conn, "can_read", None) or conn.can_read_destructive
    try:
        dirty = await check()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        dirty = True
    if dirty:
        await drop(conn)


async def _borrow(pool: Any, command: str) -> Any:
    try:
        conn = await pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        conn = await pool.get_connection(command)
    try:
        await claim(conn)
        await drop_if_dirty(conn)
    except BaseException:
        await pool.release(conn)
        raise
    return conn


class _Slots:
    """The pool's connections as a semaphore, one per event loop (an asyncio primitive
    belongs to the first loop that waits on it): redis.asyncio's pool raises when all
    its connections are out, so a burst would get 503s; this makes it a short queue."""

    __slots__ = ("_by_loop", "_last", "_limit")

    def __init__(self, pool: Any) -> None:
        limit = getattr(pool, "max_connections", None)
        self._limit = limit if isinstance(limit, int) and limit > 0 else 2**31
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 asyncio.Semaphore] = weakref.WeakKeyDictionary()
        #: The last loop asked for (weakly) and its semaphore: nearly always the next one.
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], asyncio.Semaphore] | None = (
            None)

    def __call__(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Semaphore:
        """The semaphore of ``loop`` (default: the running loop)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        slots = self._by_loop.get(loop)
        if slots is None:
            slots = self._by_loop[loop] = asyncio.Semaphore(self._limit)
        self._last = (weakref.ref(loop), slots)
        return slots


class AsyncPoolLine:
    """Each command on a connection borrowed from the client's pool for that command."""

    __slots__ = ("_pool", "_slots")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._slots = _Slots(pool)

    async def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        async with self._slots():
            conn = await _borrow(self._pool, str(args[0]))
            try:
                return await _with_retry(conn, conn.pack_command(*args))
            finally:
                await self._pool.release(conn)

    async def close(self) -> None:
        pass  # holds nothing between commands


class AsyncDirectLine:
    """:class:`~sessionshare.store.exchange.DirectLine` for a plain
    ``redis.asyncio.Redis``. One event loop runs one task at a time, so
    ``list.pop``/``append`` hand each task a connection of its own.
    """

    __slots__ = ("_idle", "_marks", "_max_idle", "_pool", "_slots")

    def __init__(self, pool: Any, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._max_idle = max_idle
        self._marks = marks_for_reconnect(pool)
        # Parked connections count against the pool too; a task always takes a parked
        # one before borrowing, so in use + parked stays within the pool's limit.
        self._slots = _Slots(pool)

    async def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        loop = asyncio.get_running_loop()
        async with self._slots(loop):
            try:
                # Only completed exchanges are parked (rule 2 holds), each with the loop
                # that parked it: that loop owns it (``claim``).
                conn, parked_on = self._idle.pop()
            except IndexError:
                conn = await _borrow(self._pool, str(args[0]))
            else:
                if self._marks and conn.should_reconnect():
                    # A RESP3 maintenance notice moved the server: the pool reconnects it.
                    await self._pool.release(conn)
                    conn = await _borrow(self._pool, str(args[0]))
                elif parked_on() is not loop:
                    await claim(conn)  # parked by another loop: dropped, reconnected here
            completed = False
            try:
                reply = await _with_retry(conn, pack(conn, args))
                completed = True
                return reply
            except ResponseError:
                completed = True
                raise
            finally:
                if completed and len(self._idle) < self._max_idle:
                    self._idle.append((conn, weakref.ref(loop)))
                else:
                    await self._pool.release(conn)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        while self._idle:
            conn, _ = self._idle.pop()
            await self._pool.release(conn)


class AsyncClusterLine:
    """Commands for a ``redis.asyncio.cluster.RedisCluster``: on the key's node directly.

    redis-py's async cluster node frees a connection even when a cancellation
    stopped the read, so the store does its own exchange on the node's
    connections; only redirects and dead nodes go through the cluster client,
    and a cancellation there drops every free connection of every node.
    """

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client

    async def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        if key is not None:
            try:
                node = self._client.get_node_from_key(key)
            except (RedisError, RedisClusterException):
                node = None  # no slot map yet: the client builds it
            if node is not None:
                try:
                    return await self._on_node(node, args)
                except NODE_FAILURES as exc:
                    if not client_takes_over(exc):
                        raise
        try:
            return await self._client.execute_command(*args)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                for each in self._client.get_nodes():
                    await each.disconnect_free_connections()
            raise

    async def _on_node(self, node: Any, args: tuple[str | int, ...]) -> Any:
        conn = node.acquire_connection()
        try:
            await claim(conn)
            await drop_if_dirty(conn)
            # Cluster node connections do not retry: the client owns retries.
            return await exchange(conn, conn.pack_command(*args))
        finally:
            node.release(conn)

    async def close(self) -> None:
        pass
