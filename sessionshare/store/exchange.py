"""How the Redis store sends a command, so that no reply is ever read by the wrong request.

A Redis connection is a queue of replies in the order the commands were sent. A
request interrupted between sending a command and reading its reply (``gevent.Timeout``,
a signal handler's exception, ``KeyboardInterrupt``, asyncio cancellation) leaves the
reply for whoever sends the next command on that connection: one user's session served
to another (the failure class of redis-py CVE-2023-28858 and CVE-2023-28859). Two
rules, kept for every command the store sends, make it impossible:

1. **An exchange completes or its connection is dropped**, whatever was raised in
   between (``BaseException`` included); only a completed one is parked for reuse.
2. **A connection borrowed with unread data is dropped, not used**: each one taken
   from redis-py's pool is checked (the pool skips its own check under RESP3
   maintenance notifications, redis-py 8's default with RESP3).

Retries: redis-py's retry re-sends a command after a timeout or a dropped
connection, which may already have run it, so every command the store sends is
safe to run twice: ``GETEX``, ``GET``, ``HGETALL``, ``HDEL``, ``PING``, a cluster
move's ``SET NX``, and ``lua.py``'s scripts (each says why it is).

Each command of a ``redisproto.py`` operation goes out on a line:
:class:`DirectLine` (the fast path), :class:`PoolLine` or :class:`ClusterLine`.
"""

from __future__ import annotations

import os
from typing import Any

from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["NODE_FAILURES", "READ_CACHE", "READ_CACHE_SIZE", "ClusterLine", "DirectLine",
           "PoolLine", "client_takes_over", "exchange", "pack", "packs_like_redis_py"]

#: Idle connections the fast path keeps at most, whatever the peak concurrency was.
DEFAULT_MAX_IDLE = 16


def pack(conn: Any, args: tuple[str | int, ...]) -> list[bytes]:
    """``args`` in the wire format, as ``conn.pack_command(*args)`` would write them.

    Text (UTF-8) and whole numbers are packed here in about a fifth of redis-py's
    time (tests/test_store_async.py holds it byte for byte to redis-py's), in one
    buffer even for a large value, which redis-py sends as a buffer of its own;
    anything else goes to redis-py. A session's read (``GETEX key EX idle``, every
    authenticated request's command) is packed once and kept, and so is the head of
    each script's ``EVALSHA`` (its SHA1 and number of keys; 0.8 us of a write's 4).
    """
    first = args[0] if args else None
    if first == "GETEX" and len(args) == 4:
        # Only text and whole numbers are looked up (True == 1 and 1.0 == 1 as keys too).
        if type(args[1]) is str and type(args[2]) is str and type(args[3]) is int:
            packed = READ_CACHE.get(args)
            if packed is None:
                packed = b"".join(_pack_text(conn, args))
                if len(packed) > _READ_BYTES:
                    return [packed]  # not a key this library makes: not kept
                if len(READ_CACHE) >= READ_CACHE_SIZE:
                    READ_CACHE.clear()  # starts over: bounded, whatever the number of sessions
                READ_CACHE[args] = packed
            return [packed]
    if first == "EVALSHA" and len(args) > 3:
        # Every write: its script's SHA1 and number of keys packed once, as a read is.
        sha, keys = args[1], args[2]
        if type(sha) is str and type(keys) is int and len(sha) == 40 and sha.isascii():
            shape = (len(args), sha, keys)
            head = _SCRIPT_HEADS.get(shape)
            if head is None:
                if len(_SCRIPT_HEADS) >= _SCRIPT_HEADS_SIZE:
                    _SCRIPT_HEADS.clear()
                head = _SCRIPT_HEADS[shape] = (
                    f"*{len(args)}\r\n$7\r\nEVALSHA\r\n$40\r\n{sha}\r\n"
                    f"${len(str(keys))}\r\n{keys}\r\n")
            return _pack_text(conn, args, head)
    if type(first) is not str or not first.isalpha():
        return list(conn.pack_command(*args))  # redis-py splits "CONFIG GET" into two
    return _pack_text(conn, args)


#: The packed reads of the sessions read lately (a store key and an expiry each: no
#: session data), keyed by their arguments.
READ_CACHE: dict[tuple[str | int, ...], bytes] = {}
#: Reads kept at most, and the longest kept (a session's is about 100 bytes).
READ_CACHE_SIZE = 4096
_READ_BYTES = 512
#: The packed head (``EVALSHA``, the SHA1, the number of keys) of each script's command, by
#: its length: a few per script, so a small bound (a caller's own scripts start it over).
_SCRIPT_HEADS: dict[tuple[int, str, int], str] = {}
_SCRIPT_HEADS_SIZE = 128


def _pack_text(conn: Any, args: tuple[str | int, ...], head: str | None = None) -> list[bytes]:
    """:func:`pack` of a command whose name is one word of letters (with ``head``: an
    ``EVALSHA`` whose first three arguments it holds packed)."""
    # ASCII text throughout (the usual command) is built as one str and encoded once.
    parts = [f"*{len(args)}\r\n" if head is None else head]
    for arg in args if head is None else args[3:]:
        if type(arg) is str:
            if not arg.isascii():
                return _pack_bytes(conn, args)
            if len(arg) > _COPY_CUTOFF:
                # A whole session record: joined in as it is, not copied into an f-string
                # first -- one copy here and the encoding's, in the command's one buffer.
                parts += (f"${len(arg)}\r\n", arg, "\r\n")
                continue
        elif type(arg) is int:
            arg = str(arg)
        else:
            return list(conn.pack_command(*args))
        parts.append(f"${len(arg)}\r\n{arg}\r\n")
    return ["".join(parts).encode()]


def _pack_bytes(conn: Any, args: tuple[str | int, ...]) -> list[bytes]:
    """:func:`pack` for text that is not ASCII (its length is its UTF-8 bytes'): encoded,
    and copied once into the command's buffer.

    One buffer, one write: a large value sent as a buffer of its own (redis-py's
    way) costs two more writes, two more TCP segments and more wake-ups of the
    server reading them -- measured on loopback for a 20 KB session's write, 7 us
    more of the server's CPU and two system calls here, where the copy costs 0.6 us
    (5 us at 200 KB).
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is str:
            data = arg.encode()
        elif type(arg) is int:
            data = b"%d" % arg
        else:
            return list(conn.pack_command(*args))
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]


#: Text longer than this is joined into the command as it is rather than copied into an
#: f-string first.
_COPY_CUTOFF = 6000


def packs_like_redis_py(pool: Any, stock: Any) -> bool:
    """True when :func:`pack` writes exactly what this pool's connections would: their
    class keeps ``stock``'s packing, and they encode text as strict UTF-8."""
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    encoding = str(kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
    return (
        getattr(pool.connection_class, "pack_command", None) is stock.pack_command
        and encoding in ("utf-8", "utf8")
        and kwargs.get("encoding_errors", "strict") == "strict"
    )


def exchange(conn: Any, packed: Any) -> Any:
    """Send one packed command and read its reply; on ANY failure, drop the connection."""
    done = False
    try:
        conn.send_packed_command(packed)
        reply = conn.read_response()
        done = True
        return reply
    except ResponseError:
        # The server's error reply was read in full: the connection is in step.
        done = True
        raise
    finally:
        if not done:
            conn.disconnect()


def _with_retry(conn: Any, packed: Any) -> Any:
    """:func:`exchange` under the connection's own retry policy, as the client uses it:
    the first attempt outside the policy (whose bookkeeping costs about as much as the
    exchange), a failure handed to it as that attempt's outcome, so it retries and gives
    up exactly as it would have."""
    try:
        return exchange(conn, packed)
    except Exception as exc:  # noqa: BLE001 - the policy decides, as it would have
        failed: list[Exception] = [exc]

    def attempt() -> Any:
        if failed:
            raise failed.pop()  # the first attempt's outcome, now the policy's
        return exchange(conn, packed)

    return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())


def _is_connected(conn: Any) -> bool:
    connected = getattr(conn, "is_connected", None)  # redis-py >= 5.1
    if connected is None:
        return getattr(conn, "_sock", None) is not None
    return bool(connected)


def drop_if_dirty(conn: Any) -> None:
    """Disconnect a connection that has unread data or that the server closed."""
    if not _is_connected(conn):
        return  # connects afresh on send
    try:
        dirty = conn.can_read()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        dirty = True
    if dirty:
        conn.disconnect()


def _borrow(pool: Any, command: str) -> Any:
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        conn = pool.get_connection(command)
    try:
        drop_if_dirty(conn)
    except BaseException:
        pool.release(conn)
        raise
    return conn


def marks_for_reconnect(pool: Any) -> bool:
    """True when the pool's connections can be marked to reconnect (redis-py 8's RESP3
    maintenance notices): a parked one so marked goes back to the pool to reconnect."""
    return str(pool.connection_kwargs.get("protocol", "")) != "2" and callable(
        getattr(pool.connection_class, "should_reconnect", None)
    )


class PoolLine:
    """Each command on a connection borrowed from the client's pool, with both rules."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        conn = _borrow(self._pool, str(args[0]))
        try:
            return _with_retry(conn, conn.pack_command(*args))
        finally:
            self._pool.release(conn)

    def close(self) -> None:
        pass  # holds nothing between commands


class DirectLine:
    """Commands on connections the store keeps, skipping redis-py's client and pool.

    Their cost is about a third of a session read on loopback. Connections come from
    the client's pool (its ``max_connections`` still bounds them); at most ``max_idle``
    are parked, the rest go back, so the client's own commands are not starved.
    ``list.pop``/``append`` are atomic: each thread or greenlet gets its own, lock-free.
    """

    __slots__ = ("_idle", "_marks", "_max_idle", "_pid", "_pool")

    def __init__(self, pool: Any, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._max_idle = max_idle
        self._pid = os.getpid()
        self._marks = marks_for_reconnect(pool)

    def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        if self._pid != os.getpid():
            # Forked: the parent's sockets are not this process's to use.
            self._idle, self._pid = [], os.getpid()
        try:
            # Rule 2 without a check: only completed exchanges' connections are parked.
            conn = self._idle.pop()
        except IndexError:
            conn = _borrow(self._pool, str(args[0]))
        else:
            if self._marks and conn.should_reconnect():
                # A RESP3 maintenance notice moved the server: the pool reconnects it.
                self._pool.release(conn)
                conn = _borrow(self._pool, str(args[0]))
        completed = False
        try:
            reply = _with_retry(conn, pack(conn, args))
            completed = True
            return reply
        except ResponseError:
            completed = True
            raise
        finally:
            if completed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                # Not completed: exchange() disconnected it. The pool checks it again.
                self._pool.release(conn)

    @property
    def idle_count(self) -> int:
        """Connections parked now (at most ``max_idle``)."""
        return len(self._idle)

    def close(self) -> None:
        """Give every parked connection back to the pool; safe while requests run (each
        is popped, so exactly one caller releases it)."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            self._pool.release(conn)


class ClusterLine:
    """Commands for a ``RedisCluster``: on the key's node, as :class:`PoolLine` does.

    While slots move or a master fails over, the command goes through the cluster
    client, which follows the redirect. If that call is interrupted, every idle
    connection of every node is disconnected: the client released the one it used,
    maybe with a reply unread, and the store cannot tell which.
    """

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client

    def call(self, args: tuple[str | int, ...], key: str | None = None) -> Any:
        if key is not None:
            try:
                node = self._client.get_node_from_key(key)
                pool = self._client.get_redis_connection(node).connection_pool
            except (RedisError, RedisClusterException):
                pool = None  # no slot map yet: the client builds it
            if pool is not None:
                try:
                    return PoolLine(pool).call(args)
                except NODE_FAILURES as exc:
                    if not client_takes_over(exc):
                        raise
        try:
            return self._client.execute_command(*args)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted, maybe between send and read
                self._drop_idle_connections()
            raise

    def _drop_idle_connections(self) -> None:
        for node in self._client.get_nodes():
            redis_node = node.redis_connection
            if redis_node is not None:
                redis_node.connection_pool.disconnect(inuse_connections=False)

    def close(self) -> None:
        pass


#: What a command sent straight to a cluster node may meet that the cluster client handles.
NODE_FAILURES = (ResponseError, RedisConnectionError, RedisTimeoutError, OSError)


def client_takes_over(exc: BaseException) -> bool:
    """True when a command that failed on its node goes through the cluster client instead:
    a redirect (MOVED -- an AskError --, ASK, TRYAGAIN, CLUSTERDOWN), which it follows, or
    a node down, for which it finds the new master. Any other error reply is the answer."""
    if isinstance(exc, ResponseError):
        return isinstance(exc, (AskError, TryAgainError, ClusterDownError))
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))
