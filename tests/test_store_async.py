"""AsyncRedisStore: RedisStore's asyncio twin, against a real Redis server.

- it shares sessions and tickets with RedisStore, key for key;
- a cancelled task (a client that went away) or an exception injected
  between send and read never leaves a reply for the next task to read --
  on the fast path (RESP2 from ``from_url``, RESP3 from a user's default
  client) and on redis-py's pool path;
- a timed-out ticket redemption that did run is not a replay;
- nothing it does blocks the event loop (a guard makes any blocking socket
  call or ``time.sleep`` on the loop's thread fail loudly, with a control
  that shows the guard catching the thread store).

The generic store contract runs on it too: tests/test_store_contract_async.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
from conftest import issuing
from hypothesis import given, settings
from hypothesis import strategies as st
from noblock import BlockingCall, no_blocking_calls_on
from servers import RedisServer

from sessionshare import AsyncRedisStore, RedisStore, StoreUnavailable
from sessionshare.store import AsyncSessionStore, exchange
from sessionshare.store.base import RETIRED, SessionRecord, unescaped
from sessionshare.store.exchange import READ_CACHE, READ_CACHE_SIZE, pack

T = TypeVar("T")

ALICE = {"user": '"alice"', "cart": "[1,2]"}
BOB = {"user": '"bob"'}


class Interrupted(BaseException):
    """Not an Exception: what a cancellation or a gevent-style timeout looks like."""


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(_main(coro))


async def _main(coro: Awaitable[T]) -> T:
    return await coro


async def _seed(store: AsyncRedisStore) -> None:
    for name in ("t:alice", "t:bob"):
        await store.delete(name)
    assert await store.save("s:alice", changed=ALICE, ttl=600, create=True)
    assert await store.save("s:bob", changed=BOB, ttl=600, create=True)
    await store.claim_state(*issuing("t:alice", "alice-wrapped", 600))
    await store.claim_state(*issuing("t:bob", "bob-wrapped", 600))


async def _own_replies(store: AsyncRedisStore) -> None:
    for _ in range(3):
        assert await store.load("s:bob", 600) == SessionRecord(BOB, {})
    assert await store.take_ticket("t:bob") == "bob-wrapped"


class OwnPool(redis.asyncio.ConnectionPool):
    """A pool class of the user's own: the store keeps redis-py's pool path for it."""


#: Each kind of client: how its store is built, and whether it takes the fast path.
STORES: dict[str, tuple[Callable[[str], AsyncRedisStore], bool]] = {
    "fast-path": (lambda url: AsyncRedisStore.from_url(url), True),
    # redis-py's defaults (RESP3 in redis-py 8): the fast path too.
    "client-default-protocol": (
        lambda url: AsyncRedisStore(redis.asyncio.Redis.from_url(url)), True),
    "pool-path": (lambda url: AsyncRedisStore(
        redis.asyncio.Redis(connection_pool=OwnPool.from_url(url))), False),
}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, redis_url: str) -> Callable[[], AsyncRedisStore]:
    def make() -> AsyncRedisStore:
        build, fast = STORES[request.param]
        store = build(redis_url)
        assert store.uses_fast_path == fast
        return store

    return make


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def test_it_is_an_async_session_store(redis_url: str) -> None:
    store = AsyncRedisStore.from_url(redis_url)
    assert isinstance(store, AsyncSessionStore)


def test_wsgi_and_asgi_stores_share_sessions_and_tickets(redis_url: str) -> None:
    sync_store = RedisStore.from_url(redis_url)
    sync_store.save("s:shared", changed={"user": '"alice"'}, meta={"c": 7}, ttl=600, create=True)
    sync_store.claim_state(*issuing("t:from-wsgi", "wrapped-1", 600))

    async def scenario() -> None:
        store = AsyncRedisStore.from_url(redis_url)
        assert await store.load("s:shared", 600) == SessionRecord({"user": '"alice"'}, {"c": 7})
        assert await store.take_ticket("t:from-wsgi") == "wrapped-1"
        assert await store.save("s:shared", changed={"theme": '"dark"'}, deleted=["user"], ttl=600)
        await store.claim_state(*issuing("t:from-asgi", "wrapped-2", 600))
        await store.close()

    run(scenario())
    assert sync_store.load("s:shared", 600) == SessionRecord({"theme": '"dark"'}, {"c": 7})
    assert sync_store.take_ticket("t:from-asgi") == "wrapped-2"
    assert sync_store.take_ticket("t:from-wsgi") is None  # spent by the asyncio store
    sync_store.close()


def test_a_cancelled_read_leaves_no_reply_behind(
    make_store: Callable[[], AsyncRedisStore], admin: redis.Redis
) -> None:
    """The client went away while the server was stalled: the task is cancelled mid-read."""

    async def scenario() -> None:
        store = make_store()
        await _seed(store)
        # WRITE holds the GETEX back and, unlike ALL on Redis 6.2, lets UNPAUSE through
        # at once: the stall ends as soon as the check is done.
        admin.execute_command("CLIENT", "PAUSE", 2000, "WRITE")
        try:
            task = asyncio.ensure_future(store.load("s:alice", 600))
            await asyncio.sleep(0.2)  # the GETEX is out, its reply held back by the pause
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        await _own_replies(store)
        await store.close()

    run(scenario())


@contextlib.contextmanager
def interrupt_next_async_read(exc: BaseException) -> Iterator[list[int]]:
    """The next asyncio ``read_response`` raises ``exc`` before reading: the reply stays."""
    cls = redis.asyncio.connection.AbstractConnection
    original = cls.read_response
    fired: list[int] = []

    async def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(1)
            raise exc
        return await original(self, *args, **kwargs)

    cls.read_response = read_response  # type: ignore[method-assign]
    try:
        yield fired
    finally:
        cls.read_response = original  # type: ignore[method-assign]


INTERRUPTED: dict[str, Callable[[AsyncRedisStore], Awaitable[object]]] = {
    "load": lambda store: store.load("s:alice", 600),
    "save": lambda store: store.save("s:alice", changed={"seen": "1"}, ttl=600),
    "take_ticket": lambda store: store.take_ticket("t:alice"),
    "claim_state": lambda store: store.claim_state(*issuing("t:carol", "carol-wrapped", 600)),
    "delete": lambda store: store.delete("s:gone"),
}


async def check_interrupted_command_crosses_no_user(
    store: AsyncRedisStore, interrupted: str, exc: BaseException
) -> None:
    """An injected interruption between send and read, then the next task's own replies."""
    await _seed(store)
    with interrupt_next_async_read(exc) as fired, pytest.raises(type(exc)):
        await INTERRUPTED[interrupted](store)
    assert fired, "the interruption never happened: this check proved nothing"
    await _own_replies(store)


@pytest.mark.parametrize("interrupted", sorted(INTERRUPTED))
@pytest.mark.parametrize("exc", [asyncio.CancelledError(), Interrupted()], ids=type)
def test_an_interrupted_command_crosses_no_user(
    make_store: Callable[[], AsyncRedisStore], interrupted: str, exc: BaseException
) -> None:
    async def scenario() -> None:
        store = make_store()
        await check_interrupted_command_crosses_no_user(store, interrupted, exc)
        await store.close()

    run(scenario())


class StallingProxy:
    """A TCP relay to the real server that can stop reading what the client writes.

    While stalled, a command larger than the loopback buffers stays partly in
    the client's transport: the write itself has to wait, as it would for a
    server that stopped reading.
    """

    def __init__(self, url: str) -> None:
        address = url.split("://", 1)[1].split("/", 1)[0]
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.reading = asyncio.Event()
        self.reading.set()
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        #: Each relayed connection's two pumps (client to server, server to client).
        self.relays: list[tuple[asyncio.Task[None], asyncio.Task[None]]] = []

    async def start(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"
        return self

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.append(client_w)
        relay = asyncio.current_task()
        assert relay is not None
        self._tasks.add(relay)
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.port)
        finally:
            self._tasks.discard(relay)
        self._writers.append(server_w)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       gate: asyncio.Event | None) -> None:
            try:
                while True:
                    if gate is not None:
                        await gate.wait()
                    data = await src.read(1 << 16)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        pumps = (asyncio.ensure_future(pump(client_r, server_w, self.reading)),
                 asyncio.ensure_future(pump(server_r, client_w, None)))
        self.relays.append(pumps)
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop relaying and close every socket it opened, at once.

        A pump cancelled before it first ran never reaches its ``finally``, and a
        transport closed with megabytes still buffered waits to flush them: either
        would outlive the event loop and warn as an unclosed transport later, in
        whichever test the garbage collector happens to run. Aborting drops the
        buffers and closes now.
        """
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # abort() closes the socket in the next loop turn


# Larger than every loopback buffer on the way (client send, proxy receive): part of the
# command is still in the client's transport when the proxy stops reading.
HUGE = {"blob": '"' + "x" * (48 << 20) + '"'}


def _buffered_writes() -> list[int]:
    """Watch the write path: the bytes the transport kept back after each fast-path write."""
    seen: list[int] = []
    original = asyncio.StreamWriter.writelines

    def writelines(self: asyncio.StreamWriter, data: Any) -> None:
        original(self, data)
        seen.append(self.transport.get_write_buffer_size())

    asyncio.StreamWriter.writelines = writelines  # type: ignore[method-assign]
    return seen


def test_a_write_the_server_does_not_take_times_out_and_is_dropped(redis_url: str) -> None:
    """The fast write path waits for a write the kernel kept back, within the socket timeout."""

    async def scenario() -> None:
        proxy = await StallingProxy(redis_url).start()
        store = AsyncRedisStore.from_url(proxy.url, socket_timeout=0.5)
        assert store.uses_fast_path
        await _seed(store)
        original = asyncio.StreamWriter.writelines
        seen = _buffered_writes()
        proxy.reading.clear()
        try:
            with pytest.raises(StoreUnavailable, match="Timeout"):
                await store.save("s:alice", changed=HUGE, ttl=600)
        finally:
            asyncio.StreamWriter.writelines = original  # type: ignore[method-assign]
            proxy.reading.set()
        assert seen and seen[0] > 0, "the write never had to wait: this proved nothing"
        assert store.idle_connections == 0  # the half-written connection was not parked
        await _own_replies(store)
        assert await store.load("s:alice", 600) == SessionRecord(ALICE, {})  # nothing merged
        await store.close()
        await proxy.close()

    run(scenario())


def test_a_write_cancelled_halfway_leaves_no_command_behind(redis_url: str) -> None:
    """Cancelled while the rest of a command waits to be written: the connection goes."""

    async def scenario() -> None:
        proxy = await StallingProxy(redis_url).start()
        store = AsyncRedisStore.from_url(proxy.url, socket_timeout=5.0)
        await _seed(store)
        proxy.reading.clear()
        task = asyncio.ensure_future(store.save("s:alice", changed=HUGE, ttl=600))
        await asyncio.sleep(0.2)
        assert not task.done()  # waiting on its own write
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (first,) = proxy.relays  # the seeded connection, parked and taken again
        proxy.reading.set()
        # Everything the client's connection sent has reached the server (a close that
        # flushed the rest of the command would complete it there) and it is closed.
        await asyncio.wait_for(asyncio.gather(*first), 30)
        assert store.idle_connections == 0
        await _own_replies(store)
        assert await store.load("s:alice", 600) == SessionRecord(ALICE, {})
        await store.close()
        await proxy.close()

    run(scenario())


COMMANDS = st.sampled_from(["GETEX", "EVALSHA", "EVAL", "SET", "GETDEL", "DEL", "PING"])


@settings(max_examples=300, deadline=None)
@given(COMMANDS, st.lists(st.one_of(st.text(), st.integers()), max_size=8))
def test_the_fast_packing_is_byte_for_byte_redis_pys(name: str, rest: list[str | int]) -> None:
    """Both stores' fast paths pack their own commands; redis-py's two clients agree."""
    args = (name, *rest)
    for conn in (redis.asyncio.Redis(protocol=2).connection_pool.make_connection(),
                 redis.Redis(protocol=2).connection_pool.make_connection()):
        assert b"".join(pack(conn, args)) == b"".join(conn.pack_command(*args))


@pytest.mark.parametrize("value", ["x" * 6000, "x" * 6001, "é" * 3000, "é" * 3001, "ü", ""],
                         ids=["ascii-at-cutoff", "ascii-past-cutoff", "utf8-at-cutoff",
                              "utf8-past-cutoff", "utf8-short", "empty"])
def test_packing_at_the_buffer_cutoff_is_redis_pys(value: str) -> None:
    """ASCII text is packed as one string, other text (and text past the cut-off) by its
    UTF-8 bytes -- byte for byte redis-py's, and in one buffer either way: one write, where
    redis-py sends a large value as a buffer of its own (two more writes, and more of the
    server's wake-ups reading them)."""
    for conn in (redis.asyncio.Redis(protocol=2).connection_pool.make_connection(),
                 redis.Redis(protocol=2).connection_pool.make_connection()):
        args = ("EVALSHA", "f" * 40, 1, "s:{k}", value, 1800)
        assert b"".join(pack(conn, args)) == b"".join(conn.pack_command(*args))
        assert len(pack(conn, args)) == 1


def test_a_sessions_read_is_packed_once_as_redis_py_packs_it() -> None:
    """The read (GETEX key EX idle) is kept packed: the same bytes each time, only for
    text and whole numbers (True and 1.0 equal 1 as keys, and are still redis-py's to
    refuse or write), and never more than READ_CACHE_SIZE reads."""
    conn = redis.Redis(protocol=2).connection_pool.make_connection()
    args = ("GETEX", "sessionshare:s:{ab}", "EX", 1800)
    first, again = pack(conn, args), pack(conn, args)
    assert b"".join(first) == b"".join(again) == b"".join(conn.pack_command(*args))
    assert READ_CACHE[args] == b"".join(first)
    assert b"".join(pack(conn, ("GETEX", "sessionshare:s:{ab}", "EX", 60))) == b"".join(
        conn.pack_command("GETEX", "sessionshare:s:{ab}", "EX", 60))
    with pytest.raises(redis.DataError):
        pack(conn, ("GETEX", "sessionshare:s:{ab}", "EX", True))
    assert b"".join(pack(conn, ("GETEX", "sessionshare:s:{ab}", "EX", 1800.0))) == b"".join(
        conn.pack_command("GETEX", "sessionshare:s:{ab}", "EX", 1800.0))
    for n in range(READ_CACHE_SIZE + 10):
        pack(conn, ("GETEX", f"s:{{{n}}}", "EX", 1800))
        assert len(READ_CACHE) <= READ_CACHE_SIZE
    long_key = ("GETEX", "k" * 1000, "EX", 1800)
    assert b"".join(pack(conn, long_key)) == b"".join(conn.pack_command(*long_key))
    assert long_key not in READ_CACHE


def test_a_scripts_head_is_packed_once_as_redis_py_packs_it() -> None:
    """A write's EVALSHA reuses its packed head (the SHA1, the number of keys) -- only for
    a 40-character SHA1 and a whole number of keys -- and packs the rest as redis-py does,
    non-ASCII text included; the heads kept stay bounded."""
    conn = redis.Redis(protocol=2).connection_pool.make_connection()
    sha = "3d874b28fa2c3d6e42533708670bcb9d1aaeb502"
    for args in (("EVALSHA", sha, 1, "s:{k}", 600, "0", 1, 0, "n", "1"),
                 ("EVALSHA", sha, 1, "s:{k}", 600, "0", 1, 0, "n", "2"),
                 ("EVALSHA", sha, 1, "s:{k}", 600, "0", 1, 0, "é", "\u2028"),
                 ("EVALSHA", sha, 2, "s:{k}", "s:{k}:once", 600, "3", 0, 1, "a", 5, 60),
                 ("EVALSHA", sha, 1.0, "s:{k}", 1), ("EVALSHA", "ab", 1, "s:{k}", 1)):
        assert b"".join(pack(conn, args)) == b"".join(conn.pack_command(*args))
    assert (10, sha, 1) in exchange._SCRIPT_HEADS and (5, sha, 1.0) not in exchange._SCRIPT_HEADS
    with pytest.raises(redis.DataError):
        pack(conn, ("EVALSHA", sha, True, "s:{k}", 1))  # refused as redis-py refuses it
    for n in range(exchange._SCRIPT_HEADS_SIZE + 10):
        pack(conn, ("EVALSHA", f"{n:040x}", 1, "s:{k}", 1))
        assert len(exchange._SCRIPT_HEADS) <= exchange._SCRIPT_HEADS_SIZE


def test_packing_leaves_other_types_to_redis_py() -> None:
    conn = redis.asyncio.Redis(protocol=2).connection_pool.make_connection()
    for args in (("SET", "k", 1.5), ("SET", "k", b"raw"), ("CONFIG GET", "maxmemory"),
                 (" GET", "k"), ("GET",)):
        assert pack(conn, args) == list(conn.pack_command(*args))  # "CONFIG GET" is split
    with pytest.raises(redis.DataError):
        pack(conn, ("SET", "k", True))  # refused as redis-py refuses it


@pytest.mark.parametrize("store_class", [RedisStore, AsyncRedisStore], ids=lambda c: c.__name__)
def test_a_new_connection_does_not_read_the_package_metadata(
    store_class: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py 7+ reads its version from the installed metadata for every connection it
    makes (~5 ms of CPU): a burst opening a hundred would stall the event loop. The stores'
    clients name the driver once."""
    import redis.utils

    calls: list[int] = []
    original = redis.utils.get_lib_version

    def counted() -> str:
        calls.append(1)
        return str(original())

    monkeypatch.setattr(redis.utils, "get_lib_version", counted)
    store = store_class.from_url(redis_url)
    made = len(calls)
    for _ in range(5):
        store.client.connection_pool.make_connection()
    assert len(calls) == made
    control = type(store.client).from_url(redis_url)  # redis-py's own default, for contrast
    control.connection_pool.make_connection()
    if hasattr(redis, "driver_info"):
        assert len(calls) > made, "the control made no lookup: this test proves nothing here"


def test_the_fast_path_keeps_a_clients_own_encoding_and_connection_class(
    redis_url: str,
) -> None:
    """The fast path packs text as strict UTF-8 and writes as redis-py does: a client set
    up otherwise keeps redis-py's own packing, and a connection class that writes its own
    way is still called."""
    latin = AsyncRedisStore(redis.asyncio.Redis.from_url(redis_url, protocol=2,
                                                         encoding="latin-1"))
    assert not latin.uses_fast_path

    class OwnPacking(redis.asyncio.Connection):
        def pack_command(self, *args: Any) -> Any:
            return super().pack_command(*args)

    pool = redis.asyncio.ConnectionPool.from_url(redis_url, protocol=2,
                                                 connection_class=OwnPacking)
    assert not AsyncRedisStore(redis.asyncio.Redis(connection_pool=pool)).uses_fast_path

    writes: list[int] = []

    class OwnWriting(redis.asyncio.Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            writes.append(1)
            await super().send_packed_command(command, check_health)

    async def scenario() -> None:
        pool = redis.asyncio.ConnectionPool.from_url(redis_url, protocol=2,
                                                     connection_class=OwnWriting)
        store = AsyncRedisStore(redis.asyncio.Redis(connection_pool=pool))
        assert store.uses_fast_path  # packing is redis-py's: the fast path stays on
        await _seed(store)
        before = len(writes)
        assert await store.load("s:bob", 600) == SessionRecord(BOB, {})
        assert len(writes) == before + 1  # ...and its own write is the one that ran
        await store.close()

    run(scenario())


def test_a_client_that_names_its_driver_keeps_its_choice(redis_url: str) -> None:
    """driver_info=None (lib_name=None, lib_version=None before redis-py 7) is the way to
    send no CLIENT SETINFO (older servers count it as a failed call): the stores' clients
    leave such a choice alone."""
    import importlib.util

    quiet: dict[str, Any] = (
        {"driver_info": None} if importlib.util.find_spec("redis.driver_info")
        else {"lib_name": None, "lib_version": None}
    )
    for store in (RedisStore.from_url(redis_url, **quiet),
                  AsyncRedisStore.from_url(redis_url, **quiet)):
        assert store.client.connection_pool.make_connection().driver_info is None
    store = RedisStore.from_url(redis_url)
    assert store.client.connection_pool.make_connection().driver_info is not None


def test_a_retried_redemption_is_not_a_replay(redis_url: str, admin: redis.Redis) -> None:
    async def scenario() -> None:
        store = AsyncRedisStore.from_url(redis_url, socket_timeout=0.3)
        await store.claim_state(*issuing("t:alice", "alice-wrapped", 600))
        stall = threading.Thread(target=admin.execute_command, args=("DEBUG", "SLEEP", 0.45))
        stall.start()
        await asyncio.sleep(0.05)
        try:
            assert await store.take_ticket("t:alice") == "alice-wrapped"
        finally:
            stall.join()
        assert await store.take_ticket("t:alice") is None
        await store.close()

    run(scenario())


def test_a_ticket_is_taken_once_by_concurrent_tasks(redis_url: str) -> None:
    async def scenario() -> None:
        store = AsyncRedisStore.from_url(redis_url)
        for round_ in range(30):
            await store.claim_state(*issuing(f"t:{round_}", "wrapped", 600))
            got = await asyncio.gather(*(store.take_ticket(f"t:{round_}") for _ in range(6)))
            assert got.count("wrapped") == 1 and got.count(None) == 5, got
        await store.close()

    run(scenario())


def test_the_idle_list_is_bounded(redis_url: str) -> None:
    async def scenario() -> None:
        store = AsyncRedisStore(
            redis.asyncio.Redis.from_url(redis_url, protocol=2), max_idle_connections=2
        )
        await _seed(store)
        records = await asyncio.gather(*(store.load("s:bob", 600) for _ in range(20)))
        assert all(record == SessionRecord(BOB, {}) for record in records)
        assert 1 <= store.idle_connections <= 2
        await store.close()
        assert store.idle_connections == 0

    run(scenario())


def test_an_unreachable_server_is_store_unavailable() -> None:
    async def scenario() -> None:
        store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2)
        for call in (store.ping(), store.load("k", 60), store.take_ticket("t")):
            with pytest.raises(StoreUnavailable) as info:
                await call
            assert not isinstance(info.value, redis.RedisError)
        await store.close()

    run(scenario())


def test_an_outage_names_the_server_and_the_cause_never_the_password() -> None:
    async def scenario() -> str:
        store = AsyncRedisStore.from_url("redis://:hunter2pw@127.0.0.1:1/0", socket_timeout=0.2)
        with pytest.raises(StoreUnavailable) as info:
            await store.load("k", 60)
        await store.close()
        return str(info.value)

    message = run(scenario())
    assert message.startswith("redis at 127.0.0.1:1 did not answer: ConnectionError (")
    refused = f"errno {errno.ECONNREFUSED}: {os.strerror(errno.ECONNREFUSED)}"
    assert refused in message and "hunter2pw" not in message


# -- nothing blocks the event loop ---------------------------------------------------


def _on_guarded_loop(work: Callable[[], Awaitable[T]]) -> T:
    result: list[T] = []
    errors: list[BaseException] = []

    def main() -> None:
        async def guarded() -> T:
            with no_blocking_calls_on(threading.current_thread()):
                return await work()

        try:
            result.append(asyncio.run(guarded()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def test_no_call_blocks_the_event_loop(redis_url: str) -> None:
    async def every_method() -> int:
        store = AsyncRedisStore.from_url(redis_url)
        await store.ping()
        await store.save("s:x", changed={"a": "1"}, ttl=60, create=True)
        assert await store.load("s:x", 60) == SessionRecord({"a": "1"}, {})
        await store.claim_state(*issuing("t:x", "v", 60))
        assert await store.take_ticket("t:x") == "v"
        await store.delete("s:x")
        assert await store.eviction_warning() is None
        await store.close()
        return 1

    assert _on_guarded_loop(every_method) == 1


def test_the_guard_catches_a_blocking_store(redis_url: str) -> None:
    """The control: the thread store called from a coroutine does block, and is caught."""

    async def blocking() -> None:
        store = RedisStore.from_url(redis_url)
        try:
            store.ping()
        finally:
            store.close()

    with pytest.raises(BlockingCall, match="would block the event loop"):
        _on_guarded_loop(blocking)


def test_the_index_commands_match_the_thread_store(redis_url: str) -> None:
    """Same keys, same script: an index written by one store is read by the other."""
    sync_store = RedisStore.from_url(redis_url)
    sync_store.save("s:peeked", changed={"a": "1"}, ttl=600, create=True)
    sync_store.index_put("u:alice", "r1", '{"e": 2000}', ttl=600, now=1000)

    async def scenario() -> None:
        store = AsyncRedisStore.from_url(redis_url)
        assert isinstance(store, AsyncSessionStore)
        assert await store.peek("s:peeked") == SessionRecord({"a": "1"}, {})
        assert await store.peek("s:never") is None
        assert await store.index_read("u:alice") == {"r1": '{"e": 2000}'}
        left = await store.index_put("u:alice", "r2", '{"e": 3000}', ttl=600, now=1000,
                                     drop=["r1"])
        assert left == {"r2": '{"e": 3000}'}
        assert await store.index_put("u:alice", "r3", "{}", ttl=600, now=1000) == left
        await store.index_drop("u:alice", ["r2"])
        await store.index_drop("u:alice", [])
        assert await store.index_read("u:alice") == {}
        await store.index_put("u:alice", "r4", '{"e": 3000}', ttl=600, now=1000)
        await store.close()

    run(scenario())
    assert sync_store.index_read("u:alice") == {"r4": '{"e": 3000}'}
    sync_store.close()


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_move_and_an_end_are_the_thread_stores_own(redis_url: str, kind: str) -> None:
    """The asyncio stores move a session only while it lives, in one step, follow a moved
    id when ending it, and enter only live sessions in an index -- as the thread store."""
    from sessionshare import MemoryStore
    from sessionshare.store.amemory import AsyncMemoryStore
    thread_store: Any = RedisStore.from_url(redis_url) if kind == "redis" else MemoryStore()
    thread_store.save("s:{one}", changed={"a": "1"}, meta={"c": 1}, ttl=600, create=True)

    async def scenario() -> None:
        store: Any = (AsyncRedisStore.from_url(redis_url) if kind == "redis"
                      else AsyncMemoryStore(thread_store))
        thread_store.save("s:{one}", changed={"b": "2"}, ttl=600)  # another app's write
        assert await store.move("s:{one}", "s:{two}", changed={"c": "3"}, deleted=["a"],
                                meta={"a": 9}, ttl=600, retired_at=7, grace=30)
        assert not await store.move("s:{one}", "s:{x}", changed={}, ttl=600, retired_at=7,
                                    grace=30)
        assert not await store.save("s:{one}", changed={"d": "4"}, ttl=600)
        assert await store.index_put("u:{a}", "r", '{"e": 9999999999}', ttl=60, now=1,
                                     live="s:{one}") == {}
        assert await store.index_put("u:{a}", "r", '{"e": 9999999999}', ttl=60, now=1,
                                     live="s:{two}") == {"r": '{"e": 9999999999}'}
        await store.close()

    run(scenario())
    assert thread_store.peek("s:{one}") == SessionRecord({}, {RETIRED: 7})
    assert thread_store.peek("s:{two}") == SessionRecord({"b": "2", "c": "3"}, {"c": 1, "a": 9})

    async def end() -> None:
        store: Any = (AsyncRedisStore.from_url(redis_url) if kind == "redis"
                      else AsyncMemoryStore(thread_store))
        await store.delete("s:{one}")  # the old id: its session ends where it went
        await store.close()

    run(end())
    assert thread_store.peek("s:{two}") is None  # ended where it went
    assert thread_store.peek("s:{one}") == SessionRecord({}, {RETIRED: 7})  # a marker still
    thread_store.close()


@pytest.fixture
def closed_loops() -> Iterator[None]:
    """For a test that leaves connections of event loops it closed: the transports of a
    loop closed with connections open cannot be closed through that loop, and close their
    sockets when collected, with a ResourceWarning. Collected once the test is over --
    when nothing of it holds them any more, and not while it runs (the collector would
    warn at any allocation of the test, a later one's included)."""
    import gc
    import warnings

    gc.disable()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        gc.enable()


def test_a_store_used_on_another_event_loop_drops_that_loops_connections(
    make_store: Callable[[], AsyncRedisStore], closed_loops: None
) -> None:
    """Issue 23, finding 7: an ``asyncio.run(store.ping())`` at import (or pytest-asyncio's
    loop per test around a module-level app) left connections of a loop that is gone; the
    next loop's commands used them and raised RuntimeError -- after the server had run the
    command -- a 500 in the app. A connection of another loop is dropped, never used."""
    store = make_store()
    asyncio.run(store.ping())  # at import: that loop ends, its connection stays with the store

    async def serve() -> list[bool]:  # the server's loop, which closes the store at its end
        try:
            return list(await asyncio.gather(*(
                store.save(f"s:{{{n}}}", changed={"a": "1"}, ttl=60, create=True)
                for n in range(20)
            )))
        finally:
            await store.close()

    assert asyncio.run(serve()) == [True] * 20


def test_a_connection_the_client_opened_on_another_loop_is_not_a_500(
    make_store: Callable[[], AsyncRedisStore], closed_loops: None
) -> None:
    """One the store never saw (the client's own command opened it on an earlier loop) is
    a failed connection: StoreUnavailable at worst (a 503 the browser retries), never a
    RuntimeError, and the next command works."""
    store = make_store()
    asyncio.run(store.client.ping())

    async def serve() -> SessionRecord | None:
        try:
            try:
                await store.save("s:{k}", changed={"a": "1"}, ttl=60, create=True)
            except StoreUnavailable:
                await store.save("s:{k}", changed={"a": "1"}, ttl=60, create=True)
            return await store.load("s:{k}", 60)
        finally:
            await store.close()

    assert asyncio.run(serve()) == SessionRecord({"a": "1"}, {})


def test_a_module_level_asgi_app_serves_every_test_loop(redis_url: str, closed_loops: None
                                                       ) -> None:
    """The README's httpx recipe with pytest-asyncio's loop per test: one app built at
    import, each test on a loop of its own. Every answer is the app's, never a 500."""
    import httpx
    from flow import SHOP, asgi_remote_app

    from sessionshare import SyncKey, asgi

    store = AsyncRedisStore.from_url(redis_url)
    app = asgi.RemoteSessionMiddleware(asgi_remote_app, store=store, key=SyncKey.generate(),
                                       app_url=SHOP, idp_url="http://id.test/login",
                                       protect=False, cookie_secure=False)

    async def a_test(n: int, last: bool) -> list[int]:
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url=SHOP) as client:
                first = await client.get(f"/write?visit={n}")
                again = await client.get("/read")
                return [first.status_code, again.status_code, len(again.json()["session"])]
        finally:
            if last:
                await store.close()

    for n in range(3):  # three tests, three loops, the first two leave connections
        assert asyncio.run(a_test(n, last=n == 2)) == [200, 200, 1]


def test_a_default_client_store_skips_the_pool_per_command(redis_url: str) -> None:
    """A user's ``redis.asyncio.Redis.from_url(url)`` (RESP3 in redis-py 8) takes the fast
    path: 50 reads borrow one connection from the pool once, and it speaks RESP3."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = AsyncRedisStore(client)
        await _seed(store)
        await store.close()
        pool = client.connection_pool
        borrowed: list[int] = []
        original_get = pool.get_connection

        async def get_connection(*args: Any, **kwargs: Any) -> Any:
            borrowed.append(1)
            return await original_get(*args, **kwargs)

        pool.get_connection = get_connection  # type: ignore[method-assign]
        try:
            for _ in range(50):
                assert await store.load("s:bob", 600) == SessionRecord(BOB, {})
        finally:
            del pool.get_connection
        assert borrowed == [1]
        assert store.idle_connections == 1
        await store.close()  # the parked connection back to the pool
        conn = await pool.get_connection()
        assert str(conn.protocol) == "3"
        await pool.release(conn)
        await client.aclose()

    run(scenario())


@pytest.mark.usefixtures("every_write_replaces")
def test_a_write_after_a_read_in_the_same_task_replaces_or_merges(redis_url: str) -> None:
    """As RedisStore: the task's write of the session it read goes over the text read
    (one REPLACE), and over a record changed meanwhile it merges, losing nothing."""
    from test_store_exchange import script_names

    from sessionshare.store import aexchange

    async def scenario() -> None:
        store, other = AsyncRedisStore.from_url(redis_url), AsyncRedisStore.from_url(redis_url)
        sent: list[str] = []
        original = aexchange.send

        async def counted(conn: Any, packed: Any) -> None:
            name = script_names(packed)
            if name is not None:
                sent.append(name)
            await original(conn, packed)

        await store.save("s:alice", changed=ALICE, ttl=600, create=True)
        aexchange.send = counted  # type: ignore[assignment]
        try:
            assert await store.load("s:alice", 600) == SessionRecord(ALICE, {})
            assert await store.save("s:alice", changed={"seen": "1"}, ttl=600)
            assert sent == ["REPLACE"]
            assert await store.load("s:alice", 600) == SessionRecord({**ALICE, "seen": "1"}, {})
            assert await other.save("s:alice", changed={"theme": '"dark"'}, ttl=600)
            assert await store.save("s:alice", changed={"seen": "2"}, ttl=600)
        finally:
            aexchange.send = original  # type: ignore[assignment]
        # The other store's merge, then this one's REPLACE that fails and its merge.
        assert sent == ["REPLACE", "MERGE", "REPLACE", "MERGE"]
        assert await store.load("s:alice", 600) == SessionRecord(
            {**ALICE, "seen": "2", "theme": '"dark"'}, {})
        await store.close()
        await other.close()

    run(scenario())


def test_a_large_records_long_strings_reach_the_task_that_read_it(
    make_store: Callable[[], AsyncRedisStore],
) -> None:
    """Under asyncio too, each kind of client: the long string a read decoded is noted in
    the reading task's own context (where its session decodes the record), not in another
    task's."""
    lorem = "lorem ipsum dolor " * 300
    fields = {"notes": json.dumps(lorem), "user": '"alice"'}

    async def read(store: AsyncRedisStore) -> Any:
        record = await store.load("s:long", 600)
        assert record is not None
        return unescaped.get(), record.fields["notes"]

    async def main() -> None:
        store = make_store()
        assert await store.save("s:long", changed=fields, ttl=600, create=True)
        known, text = await asyncio.create_task(read(store))
        assert known == {"notes": fields["notes"]} and known["notes"] is text
        assert unescaped.get() is None  # this task read nothing
        await store.close()

    run(main())
