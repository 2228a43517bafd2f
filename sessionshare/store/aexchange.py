"""How the asyncio Redis store sends a command: ``exchange.py``'s two rules, for asyncio.

Under asyncio the usual interruption is *cancellation*: a client disconnects,
the server cancels the request's task, and ``asyncio.CancelledError`` (a
``BaseException``) arrives at the ``await`` that was reading the reply. A
connection given back at that point still holds the reply, and the next task
to use it reads another user's session (redis-py's own async cluster node
puts such a connection straight back on its free list). So, as in
``exchange.py``:

1. **an exchange completes or its connection is dropped**, whatever was
   raised, cancellation included; only connections whose last exchange
   completed are parked for reuse;
2. **a connection borrowed with unread data is dropped, not used**: every
   connection taken from redis-py's pool or a cluster node is checked first.

Every command the store sends is safe to run twice (see ``exchange.py``), so
redis-py's configured retry stays on.

A store's connections belong to the event loop that opened them, as
redis-py's asyncio connections do -- yet a store is often used from more than
one loop: an ``asyncio.run(store.ping())`` at import, then the server's loop;
pytest-asyncio's loop per test around one module-level app. A connection
opened on another loop cannot be used here (its reads wait on that loop,
which may be closed: ``RuntimeError`` *after* the server ran the command), so
each connection's loop is remembered and a connection of another loop is
dropped, never used; a ``RuntimeError`` an exchange still meets is a failed
connection (redis-py's retry runs the command again on a fresh one, and a
store outage is what the app sees, never a 500). Only the slot counters are
per loop.
"""

from __future__ import annotations

import asyncio
import weakref
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

    On Python before 3.12, redis-py wraps every write of a connection with a
    socket timeout in ``asyncio.wait_for``, which starts a task: two more turns
    of the event loop per command, about an eighth of an authenticated request.
    Yet the write almost never waits -- the kernel takes a command of a few
    hundred bytes at once. So the command is written the same way, and only
    when the transport kept part of it back is the rest awaited, under the same
    socket timeout. A connection not yet open, closing, or running health
    checks goes through redis-py's own method. Errors are redis-py's (a
    timeout or a connection error, which its retry knows); the caller drops
    the connection on any of them.
    """
    # redis-py keeps a connection's StreamWriter as ``_writer`` (None while closed); a
    # version without it takes redis-py's own path below, so nothing depends on it.
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

    An asyncio transport closed the usual way first flushes its buffer: the
    rest of a command cut off halfway would still reach the server, complete,
    and run after its task was cancelled or timed out. Aborting the transport
    drops those bytes, so the server sees half a command and a closed
    connection, and runs nothing. At once, too: waiting for the close would be
    a new await point inside a task that may be being cancelled.
    """
    writer = getattr(conn, "_writer", None)  # see send(): redis-py's StreamWriter
    try:
        if writer is not None:
            writer.transport.abort()
    except RuntimeError:
        # Its loop is closed: the abort discarded the buffer before it failed to schedule
        # the close; the transport closes its socket when collected.
        pass
    try:
        await conn.disconnect(nowait=True)
    except RuntimeError:
        # The same closed loop; redis-py has forgotten the socket already.
        pass


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
            # At once: waiting for the close would be a new await point inside a
            # task that is being cancelled.
            await drop(conn)


async def _with_retry(conn: Any, packed: Any) -> Any:
    # As exchange.py's: the first attempt outside the policy, a failure handed to it as
    # the outcome of its first attempt.
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
    belongs to the first loop that waits on it)."""

    __slots__ = ("_by_loop", "_last", "_limit")

    def __init__(self, pool: Any) -> None:
        # redis.asyncio's pool raises MaxConnectionsError when all its connections are
        # out (100 by default in redis-py 8): a burst of requests on one loop would get
        # 503s although the store is fine. Waiting for a connection, as a thread pool
        # does, turns the burst into a short queue instead.
        limit = getattr(pool, "max_connections", None)
        self._limit = limit if isinstance(limit, int) and limit > 0 else 2**31
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 asyncio.Semaphore] = weakref.WeakKeyDictionary()
        #: The last loop asked for (weakly) and its semaphore: nearly always the one asked
        #: for next, found without the weak dictionary's Python-level lookup.
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
    """Commands on connections the store keeps, skipping redis-py's client and pool.

    As :class:`~sessionshare.store.exchange.DirectLine`: for a plain
    ``redis.asyncio.Redis`` (RESP2 or RESP3), connections are borrowed from the
    client's pool and at most ``max_idle`` are parked between commands. One
    event loop runs one task at a time, so ``list.pop``/``append`` hand each
    task a connection of its own.
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

    redis-py's async cluster node returns a connection to its free list even
    when a cancellation stopped the read, so the store does its own exchange
    on the node's connections; only redirects and dead nodes go through the
    cluster client (which follows them), and a cancellation there drops every
    free connection of every node.
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
