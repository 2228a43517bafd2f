"""No reply is ever read by the wrong request: RedisStore under interrupted commands.

The failure this guards against (redis-py CVE-2023-28858/28859 class): a
command goes out, the request is interrupted before its reply is read, the
connection goes back for reuse, and the next user's command reads the first
user's reply -- alice's session served to bob. Each test interrupts a real
exchange with a real Redis server, then checks that the next command on the
same store reads its own reply.

The ``check_*`` functions take any RedisStore and its server's admin client, so
tests/reliability runs the very same checks on a Sentinel master and a
Cluster; here they run on the fast path twice -- ``from_url`` (plain Redis,
RESP2) and a user's client with redis-py's defaults (RESP3 in redis-py 8, whose
pool skips its own "connection has data" check) -- and on redis-py's pool path
(a pool class of the user's own, which the fast path leaves alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.connection
from conftest import issuing
from flow import CALLBACK, SHOP, Browser, Deployment, reason_of
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import RedisServer

from sessionshare import AsyncRedisStore, RedisStore, StoreUnavailable
from sessionshare.store.base import RETIRED, SessionRecord, unescaped


class Interrupted(BaseException):
    """What gevent.Timeout, KeyboardInterrupt or a thread interrupt look like: not an Exception."""


@contextlib.contextmanager
def interrupt_next_read() -> Iterator[list[int]]:
    """The next ``Connection.read_response`` raises ``Interrupted`` before reading anything.

    That is the moment of the defect: the command went out, its reply is on the
    socket, and the caller never reads it. Yields a list that holds 1 once fired.
    """
    original = redis.connection.Connection.read_response
    fired: list[int] = []

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(1)
            raise Interrupted
        return original(self, *args, **kwargs)

    redis.connection.Connection.read_response = read_response  # type: ignore[method-assign]
    try:
        yield fired
    finally:
        redis.connection.Connection.read_response = original  # type: ignore[method-assign]


ALICE = {"user": '"alice"', "cart": "[1,2]"}
BOB = {"user": '"bob"'}


def _seed(store: RedisStore) -> None:
    for name in ("t:alice", "t:bob", "t:carol"):
        store.delete(name)  # a spent ticket from an earlier check would block SET NX
    assert store.save("s:alice", changed=ALICE, ttl=600, create=True)
    assert store.save("s:bob", changed=BOB, ttl=600, create=True)
    store.claim_state(*issuing("t:alice", "alice-wrapped", 600))
    store.claim_state(*issuing("t:bob", "bob-wrapped", 600))


def _bob(store: RedisStore) -> SessionRecord | None:
    return store.load("s:bob", 600)


INTERRUPTED_CALLS: dict[str, Callable[[RedisStore], object]] = {
    "load": lambda store: store.load("s:alice", 600),
    "save": lambda store: store.save("s:alice", changed={"seen": "1"}, ttl=600),
    "take_ticket": lambda store: store.take_ticket("t:alice"),
    "claim_state": lambda store: store.claim_state(*issuing("t:carol", "carol-wrapped", 600)),
    "delete": lambda store: store.delete("s:gone"),
}

NEXT_CALLS: dict[str, Callable[[RedisStore], object]] = {
    "load": _bob,
    "take_ticket": lambda store: store.take_ticket("t:bob"),
}
EXPECTED_NEXT = {"load": SessionRecord(BOB, {}), "take_ticket": "bob-wrapped"}


def check_interrupted_command_crosses_no_user(
    store: RedisStore, interrupted: str, following: str
) -> None:
    """An interrupted ``interrupted`` call, then ``following`` reads its own reply."""
    _seed(store)
    with interrupt_next_read() as fired:
        with pytest.raises(Interrupted):
            INTERRUPTED_CALLS[interrupted](store)
    assert fired, "the interruption never happened: this check proved nothing"
    # Several in a row: any connection the pool hands out must be in step.
    for _ in range(3):
        assert _bob(store) == SessionRecord(BOB, {})
    assert NEXT_CALLS[following](store) == EXPECTED_NEXT[following]


def check_signal_during_a_stalled_read(store: RedisStore, admin: redis.Redis) -> None:
    """A timeout raised asynchronously while the read blocks (gevent.Timeout's way)."""
    _seed(store)
    # WRITE holds the read back (GETEX slides the expiry: a write) and, unlike ALL on
    # Redis 6.2, lets UNPAUSE through at once: the stall ends as soon as the check is done.
    admin.execute_command("CLIENT", "PAUSE", 2000, "WRITE")

    def fire(_signum: int, _frame: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, fire)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            store.load("s:alice", 600)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        admin.execute_command("CLIENT", "UNPAUSE")
    assert _bob(store) == SessionRecord(BOB, {})
    assert store.take_ticket("t:bob") == "bob-wrapped"


# -- the two kinds of single-server client -------------------------------------------


class OwnPool(redis.ConnectionPool):
    """A pool class of the user's own: the store keeps redis-py's pool path for it."""


#: Each kind of single-server client: how its store is built, and whether it takes the
#: fast path.
KINDS: dict[str, tuple[Callable[..., RedisStore], bool]] = {
    "fast-path": (lambda url, **kw: RedisStore.from_url(url, **kw), True),
    # redis-py's defaults: RESP3 in redis-py 8, whose pool trusts its connections.
    "client-default-protocol": (lambda url, **kw: RedisStore(redis.Redis.from_url(url, **kw)),
                                True),
    "pool-path": (lambda url, **kw: RedisStore(redis.Redis(
        connection_pool=OwnPool.from_url(url, **kw))), False),
}


def build(kind: str, url: str, **client_options: Any) -> RedisStore:
    make, fast = KINDS[kind]
    store = make(url, **client_options)
    assert store.uses_fast_path == fast
    return store


@pytest.fixture(params=sorted(KINDS))
def redis_store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[RedisStore]:
    store = build(request.param, redis_url)
    yield store
    store.close()


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.mark.parametrize("following", sorted(NEXT_CALLS))
@pytest.mark.parametrize("interrupted", sorted(INTERRUPTED_CALLS))
def test_an_interrupted_command_crosses_no_user(
    redis_store: RedisStore, interrupted: str, following: str
) -> None:
    check_interrupted_command_crosses_no_user(redis_store, interrupted, following)


def test_a_signal_during_a_stalled_read_crosses_no_user(
    redis_store: RedisStore, admin: redis.Redis
) -> None:
    check_signal_during_a_stalled_read(redis_store, admin)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_next_command_while_the_server_still_holds_the_interrupted_reply(
    kind: str, redis_url: str, admin: redis.Redis
) -> None:
    """Rule 1 on its own: interrupted between send and read while the server is paused,
    the next command goes out before the held-back reply exists. A connection kept after
    the interruption would pass rule 2's check (nothing to read yet) and read that reply
    as its own; only dropping it at the interruption keeps bob's answer bob's. (Socket
    timeouts longer than the pause: the next command waits it out.)"""
    store = build(kind, redis_url, socket_timeout=10)
    _seed(store)

    following: list[SessionRecord | None] = []
    thread = threading.Thread(target=lambda: following.append(_bob(store)))
    # WRITE holds both GETEXes back and lets UNPAUSE through at once (ALL holds UNPAUSE
    # back too on Redis 6.2); the pause still ends by itself should the test stop here.
    admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    try:
        with interrupt_next_read() as fired, pytest.raises(Interrupted):
            store.load("s:alice", 600)  # sent, then interrupted before its read began
        assert fired, "the interruption never happened: this check proved nothing"
        held = _held_clients(admin)
        thread.start()
        # The next command goes out while still paused. On a connection of its own it
        # shows as one more client held by the pause; on the interrupted one (the defect)
        # it shows as nothing new, so the wait ends after 1.5 s and bob reads alice's reply.
        deadline = time.monotonic() + 1.5
        while not _held_clients(admin) - held and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    thread.join(15)
    assert following == [SessionRecord(BOB, {})]
    store.close()


def _held_clients(admin: redis.Redis) -> set[str]:
    """The ids of the clients whose command the server holds back (CLIENT PAUSE)."""
    return {str(c["id"]) for c in admin.client_list() if "b" in str(c.get("flags", ""))}


def test_a_dirty_connection_in_the_pool_is_dropped_not_used(redis_url: str) -> None:
    """Rule 2: a connection someone else left with a reply unread is never read from."""
    client = redis.Redis.from_url(redis_url)  # RESP3: the pool itself does not check
    store = RedisStore(client)
    _seed(store)
    conn = client.connection_pool.get_connection()
    conn.send_command("GET", "s:alice")  # ...and never reads the reply
    # Let the reply arrive: a check can only see bytes that are there (a reply still on
    # the wire is what rule 1 is for -- the store never gives such a connection back).
    assert conn.can_read(timeout=5), "the reply never arrived"  # buffered, still unread
    client.connection_pool.release(conn)
    assert _bob(store) == SessionRecord(BOB, {})
    store.close()


def test_the_control_a_bare_redis_py_exchange_does_cross(redis_url: str) -> None:
    """Without the store's rules the interruption does hand alice's reply to bob.

    Proves the injection above reproduces the defect, so the checks that pass
    with the store are not passing by accident.
    """
    client = redis.Redis.from_url(redis_url, protocol=2)
    pool = client.connection_pool
    client.set("alice", "alice's")
    client.set("bob", "bob's")
    conn = pool.get_connection()
    with interrupt_next_read(), pytest.raises(Interrupted):
        conn.send_command("GET", "alice")
        conn.read_response()
    conn.send_command("GET", "bob")
    assert conn.read_response() == b"alice's"
    conn.disconnect()
    pool.release(conn)
    client.close()


# -- retries: a timed-out redemption that did run ------------------------------------


def _stall(admin: redis.Redis, seconds: float) -> threading.Thread:
    """Block the whole server for ``seconds`` (a slow script, a fork, a busy host)."""
    thread = threading.Thread(target=admin.execute_command, args=("DEBUG", "SLEEP", seconds))
    thread.start()
    # Return once the server is asleep, not after a guess: under load the thread may not
    # have sent DEBUG SLEEP yet, and the test's command would then run before the stall.
    # A PING left unanswered for 20 ms means the server is busy with the sleep.
    kwargs = admin.connection_pool.connection_kwargs
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        probe = redis.Redis(host=kwargs["host"], port=kwargs["port"], socket_timeout=0.02,
                            retry=Retry(NoBackoff(), 0))  # one try: a timeout is the answer
        try:
            probe.ping()
        except redis.TimeoutError:
            return thread
        finally:
            probe.close()
        time.sleep(0.005)
    thread.join()
    raise AssertionError("the server never stalled")


def test_a_retried_redemption_is_not_a_replay(redis_url: str, admin: redis.Redis) -> None:
    """The first attempt times out but runs; its retry must get the ticket, once."""
    store = RedisStore.from_url(redis_url, socket_timeout=0.3)
    store.claim_state(*issuing("t:alice", "alice-wrapped", 600))
    stall = _stall(admin, 0.45)  # longer than one timeout, shorter than two
    try:
        assert store.take_ticket("t:alice") == "alice-wrapped"
    finally:
        stall.join()
    # Still single-use: any other redemption gets nothing.
    assert store.take_ticket("t:alice") is None
    assert RedisStore.from_url(redis_url).take_ticket("t:alice") is None
    store.close()


def _race_for(store: RedisStore, name: str, racers: int = 4) -> list[str | None]:
    barrier = threading.Barrier(racers)
    got: list[str | None] = []

    def take() -> None:
        barrier.wait()
        got.append(store.take_ticket(name))

    threads = [threading.Thread(target=take) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_a_ticket_is_still_taken_once_by_concurrent_redemptions(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    for round_ in range(50):
        store.claim_state(*issuing(f"t:{round_}", "wrapped", 600))
        got = _race_for(store, f"t:{round_}")
        assert got.count("wrapped") == 1 and got.count(None) == 3, got
    store.close()


class _Hangup:
    """A listener on 127.0.0.1 that answers a connection's handshake (``CLIENT SETINFO``)
    and hangs up on its first other command without a reply: every exchange fails after
    its command went out. Counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 30  # stops by itself
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                while data := conn.recv(65536):
                    if data.count(b"SETINFO") < data.count(b"*"):
                        break  # a command of the store's: no reply, ever
                    conn.sendall(b"+OK\r\n" * data.count(b"SETINFO"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_failed_exchange_is_retried_as_the_clients_policy_says(retries: int) -> None:
    """The first attempt runs outside the retry policy; the policy still makes exactly as
    many attempts as it would on its own: one, plus one per retry."""
    server = _Hangup()
    client = redis.Redis(host="127.0.0.1", port=server.port, protocol=2, socket_timeout=2,
                         retry=Retry(NoBackoff(), retries))
    store = RedisStore(client)
    try:
        with pytest.raises(StoreUnavailable):
            store.load("s:alice", 600)
        assert server.accepted == 1 + retries
    finally:
        store.close()
        client.close()
        server.close()


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_an_async_failed_exchange_is_retried_as_the_clients_policy_says(retries: int) -> None:
    """The same for the asyncio store's fast path."""
    server = _Hangup()

    async def scenario() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port, protocol=2,
                                     socket_timeout=2, retry=AsyncRetry(NoBackoff(), retries))
        store = AsyncRedisStore(client)
        try:
            with pytest.raises(StoreUnavailable):
                await store.load("s:alice", 600)
            assert server.accepted == 1 + retries
        finally:
            await store.close()
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_a_stall_past_every_retry_is_503_never_replayed(
    redis_url: str, admin: redis.Redis
) -> None:
    """Through the middleware: the callback during a long stall answers 503, not 403."""
    store = RedisStore.from_url(redis_url, socket_timeout=0.2)
    dep = Deployment(store, time.time)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    assert CALLBACK in token_url
    stall = _stall(admin, 0.8)  # past both attempts (0.2 s each and a short backoff)
    try:
        page = browser.get(token_url)
    finally:
        stall.join()
    assert page.status_int == 503, (page.status, reason_of(page))
    assert page.headers["Retry-After"]
    assert "Location" not in page.headers
    store.close()


# -- the fast path's idle list ------------------------------------------------------


def _concurrent_reads(store: RedisStore, threads: int, rounds: int = 40) -> list[object]:
    barrier = threading.Barrier(threads)
    seen: list[object] = []

    def read() -> None:
        barrier.wait()
        for _ in range(rounds):
            seen.append(store.load("s:bob", 600))

    workers = [threading.Thread(target=read) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return seen


def test_the_idle_list_is_bounded_and_leaves_the_client_connections(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, max_connections=2)
    _seed(store)
    _concurrent_reads(store, threads=2)
    # Half the pool at most is parked, so the client's own commands still get one.
    for _ in range(20):
        assert store.client.get("no-such-key") is None
    store.close()


def test_max_idle_connections_is_honoured_under_a_burst(redis_url: str) -> None:
    store = RedisStore(redis.Redis.from_url(redis_url, protocol=2), max_idle_connections=3)
    _seed(store)
    seen = _concurrent_reads(store, threads=8)
    assert len(seen) == 8 * 40 and all(record == SessionRecord(BOB, {}) for record in seen)
    assert 1 <= store.idle_connections <= 3
    store.close()
    assert store.idle_connections == 0


def test_close_while_requests_run_never_shares_a_connection(redis_url: str) -> None:
    """close() gives parked connections back while other threads use the store."""
    store = RedisStore.from_url(redis_url)
    users = [f"user{i}" for i in range(4)]
    for user in users:
        store.save(f"s:{user}", changed={"user": json.dumps(user)}, ttl=600, create=True)
    stop = time.monotonic() + 1.5
    wrong: list[tuple[str, object]] = []
    outages: list[int] = []

    def read(user: str) -> None:
        expected = SessionRecord({"user": json.dumps(user)}, {})
        while time.monotonic() < stop:
            try:
                record = store.load(f"s:{user}", 600)
            except StoreUnavailable:
                outages.append(1)  # close() also disconnects in-use sockets: a retry or a 503
                continue
            if record != expected:
                wrong.append((user, record))

    workers = [threading.Thread(target=read, args=(user,)) for user in users]
    for worker in workers:
        worker.start()
    closes = 0
    while time.monotonic() < stop:
        store.close()
        closes += 1
        time.sleep(0.001)
    for worker in workers:
        worker.join()
    assert closes > 100
    assert not wrong, wrong[:3]
    store.close()


def test_the_eviction_policy_is_reported(redis_url: str, admin: redis.Redis) -> None:
    store = RedisStore.from_url(redis_url)
    admin.config_set("maxmemory-policy", "noeviction")
    assert store.eviction_warning() is None
    try:
        for policy in ("allkeys-lru", "volatile-ttl"):
            admin.config_set("maxmemory-policy", policy)
            warning = store.eviction_warning()
            assert warning is not None and policy in warning and "noeviction" in warning
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
    store.close()


def test_a_default_client_store_skips_the_pool_per_command(redis_url: str) -> None:
    """A user's ``redis.Redis.from_url(url)`` (RESP3 in redis-py 8) takes the fast path:
    50 reads borrow one connection from the pool once, each read is one command on it,
    and that one connection speaks RESP3 (the client's settings, kept)."""
    client = redis.Redis.from_url(redis_url)
    store = RedisStore(client)
    _seed(store)
    store.close()  # the seeding's connections back: count from an empty idle list
    pool = client.connection_pool
    borrowed: list[int] = []
    original_get = pool.get_connection

    def get_connection(*args: Any, **kwargs: Any) -> Any:
        borrowed.append(1)
        return original_get(*args, **kwargs)

    pool.get_connection = get_connection  # type: ignore[method-assign]
    sent: list[bytes] = []
    original_send = redis.connection.Connection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(b"".join(command))
        original_send(self, command, check_health)

    redis.connection.Connection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        for _ in range(50):
            assert _bob(store) == SessionRecord(BOB, {})
    finally:
        redis.connection.Connection.send_packed_command = original_send  # type: ignore[method-assign]
        del pool.get_connection
    assert borrowed == [1]
    reads = [command for command in sent if command.startswith(b"*4\r\n$5\r\nGETEX\r\n")]
    assert len(reads) == 50
    # The rest is the one connection's handshake (HELLO 3, then redis-py's set-up).
    assert sum(command.startswith(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3") for command in sent) == 1
    assert len(sent) - len(reads) <= 4
    assert store.idle_connections == 1
    store.close()  # the parked connection back to the pool: the one the reads went out on
    conn = pool.get_connection()
    assert str(conn.protocol) == "3" and conn.can_read() is False
    pool.release(conn)
    client.close()


# -- a write over the text this request read ----------------------------------------


def script_names(packed: Any) -> str | None:
    """The name (in ``lua.py``) of the script an ``EVALSHA`` runs, from its packed bytes."""
    from sessionshare.store import lua

    data = b"".join(packed)
    if not data.startswith(b"$7\r\nEVALSHA\r\n$40\r\n", data.index(b"\r\n") + 2):
        return None
    start = data.index(b"EVALSHA\r\n$40\r\n") + len(b"EVALSHA\r\n$40\r\n")
    sha = data[start:start + 40].decode()
    return next(name for name, script in vars(lua).items()
                if isinstance(script, lua.Script) and script.sha == sha)


@contextlib.contextmanager
def scripts_sent(store: RedisStore) -> Iterator[list[str]]:
    """The names of the scripts sent (by any store of this thread) while the block runs."""
    from sessionshare.store import exchange

    sent: list[str] = []
    original = exchange.exchange

    def counted(conn: Any, packed: Any) -> Any:
        name = script_names(packed)
        if name is not None:
            sent.append(name)
        return original(conn, packed)

    exchange.exchange = counted  # type: ignore[assignment]
    try:
        yield sent
    finally:
        exchange.exchange = original  # type: ignore[assignment]


@pytest.mark.usefixtures("every_write_replaces")
def test_a_write_after_a_read_replaces_the_text_read(redis_url: str,
                                                     admin: redis.Redis) -> None:
    """The write of the session this thread just read is one REPLACE, and what it stores
    is what the server's merge would have stored: the same fields, meta and expiry."""
    store = RedisStore.from_url(redis_url)
    for key in ("s:merged", "s:replaced"):
        store.save(key, changed=ALICE, meta={"c": 1}, ttl=600, create=True)
    store.save("s:merged", changed={"seen": "1"}, deleted=["cart"], meta={"x": 3}, ttl=0)
    assert store.load("s:replaced", 600) == SessionRecord(ALICE, {"c": 1})
    with scripts_sent(store) as sent:
        assert store.save("s:replaced", changed={"seen": "1"}, deleted=["cart"], meta={"x": 3},
                          ttl=0)
    assert sent == ["REPLACE"]
    assert 590 < admin.ttl("s:replaced") <= 600  # ttl=0 kept the expiry the read slid
    assert store.load("s:replaced", 600) == store.load("s:merged", 600) == SessionRecord(
        {"user": '"alice"', "seen": "1"}, {"c": 1, "x": 3})
    assert store.load("s:replaced", 600) is not None
    with scripts_sent(store) as sent:
        assert store.save("s:replaced", changed={"seen": "2"}, ttl=300)
        # A second write in a row goes over the first's text.
        assert store.save("s:replaced", changed={"more": "3"}, ttl=300)
    assert sent == ["REPLACE", "REPLACE"] and 290 < admin.ttl("s:replaced") <= 300
    assert store.load("s:replaced", 600) == SessionRecord(
        {"user": '"alice"', "seen": "2", "more": "3"}, {"c": 1, "x": 3})
    store.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_replace_stores_what_the_merge_stores_whatever_the_values_hold(
    redis_url: str, admin: redis.Redis
) -> None:
    """The write copies the fields it leaves alone from the text read, member by member
    (``recordtext.py``): over the server's own text (cjson's key order, "/" escaped) and
    over its own, with values shaped like the record's syntax, it stores what the server's
    merge stores -- and a merge (an earlier version's write) takes the text it wrote."""
    hostile = {"name": json.dumps('","m":{"r":1},"d":{"x":"'), "path": json.dumps("a/b\\c\""),
               "\u00e9/k": json.dumps("\u00e9\u2028\ud800"), "n": "12"}
    store, other = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    for key in ("s:merged", "s:replaced"):
        store.save(key, changed=hostile, meta={"c": 1}, ttl=600, create=True)
    assert b"\\/" in (admin.get("s:replaced") or b"")  # the server's text to start from
    steps: list[tuple[dict[str, str], list[str]]] = [
        ({"n": "13"}, ["path"]), ({"new": json.dumps('/"}')}, []),
        ({"name": '"x"', "n": "14"}, ["\u00e9/k", "gone"]),
    ]
    for changed, deleted in steps:
        assert other.save("s:merged", changed=changed, deleted=deleted, ttl=600)
        assert store.load("s:replaced", 600) is not None
        with scripts_sent(store) as sent:
            assert store.save("s:replaced", changed=changed, deleted=deleted, ttl=600)
        assert sent == ["REPLACE"]
        assert store.load("s:replaced", 600) == store.load("s:merged", 600)
    assert (admin.get("s:replaced") or b"").startswith(b'{"v":"')
    for key in ("s:merged", "s:replaced"):  # the merge, over the text REPLACE wrote
        assert other.save(key, changed={"late": "1"}, meta={"x": 2}, ttl=600)
    assert store.load("s:replaced", 600) == store.load("s:merged", 600) == SessionRecord(
        {"name": '"x"', "n": "14", "new": json.dumps('/"}'), "late": "1"}, {"c": 1, "x": 2})
    store.close()
    other.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_what_the_caller_does_to_the_record_read_never_reaches_the_replace(
    redis_url: str,
) -> None:
    """The write is spliced from the text read and a copy of its meta, not from the objects
    handed to the caller: whatever it puts into them stays out of the store unless it is
    written (a meta mark put there would make the session read as a marker)."""
    store = RedisStore.from_url(redis_url)
    store.save("s:alice", changed=ALICE, meta={"c": 1}, ttl=600, create=True)
    record = store.load("s:alice", 600)
    assert record is not None
    record.fields["user"], record.fields["cart"] = '"mallory"', "[]"
    record.meta["r"] = 1
    with scripts_sent(store) as sent:
        assert store.save("s:alice", changed={"seen": "1"}, ttl=600)
    assert sent == ["REPLACE"]
    assert store.load("s:alice", 600) == SessionRecord({**ALICE, "seen": "1"}, {"c": 1})
    store.close()


def test_a_small_sessions_write_is_the_servers_merge_and_a_large_ones_a_replace(
    redis_url: str,
) -> None:
    """Below ``REPLACE_FROM`` bytes the server's merge is the cheaper write, so the read
    keeps nothing for one; from it on, the write of the session just read is a REPLACE."""
    from sessionshare.store.redisproto import REPLACE_FROM

    store = RedisStore.from_url(redis_url)
    big = {"notes": json.dumps("x" * REPLACE_FROM)}
    store.save("s:small", changed=ALICE, ttl=600, create=True)
    store.save("s:large", changed={**ALICE, **big}, ttl=600, create=True)
    for key, script in (("s:small", "MERGE"), ("s:large", "REPLACE")):
        assert store.load(key, 600) is not None
        with scripts_sent(store) as sent:
            assert store.save(key, changed={"seen": "1"}, ttl=600)
        assert sent == [script], key
        assert store.load(key, 600).fields["seen"] == "1"  # type: ignore[union-attr]
    store.close()


def test_a_large_records_long_strings_are_decoded_once(redis_url: str) -> None:
    """A large record's long plain strings reach the session decoded by the read's scan
    (``recordtext.scan_record``), which the session takes instead of scanning them again;
    anything escaped, short or not a string is left to the session, and the values are
    json's either way."""
    from sessionshare import Session

    store = RedisStore.from_url(redis_url)
    lorem = "lorem ipsum dolor " * 300
    fields = {"notes": json.dumps(lorem), "quoted": json.dumps('say "hi" ' * 300),
              "cart": json.dumps([lorem[:50]] * 40), "user": '"alice"'}
    store.save("s:long", changed=fields, ttl=600, create=True)
    unescaped.set(None)
    record = store.load("s:long", 600)
    assert record is not None and record.fields == fields
    known = unescaped.get()
    assert known == {"notes": fields["notes"]} and known["notes"] is record.fields["notes"]
    session = Session(lambda sid: store.load("s:long", 600), "S" * 43)
    assert dict(session) == {name: json.loads(text) for name, text in fields.items()}
    assert unescaped.get() is None  # taken by the session's decode
    # A later large read with nothing plain leaves no earlier read's texts noted.
    escaped = {name: fields[name] for name in ("quoted", "cart")}
    store.save("s:escaped", changed=escaped, ttl=600, create=True)
    assert store.load("s:long", 600) is not None and unescaped.get() is not None
    assert store.load("s:escaped", 600) is not None and unescaped.get() is None
    store.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_write_over_a_record_changed_since_the_read_merges(redis_url: str) -> None:
    """Another app wrote a key between this request's read and its write: the text read is
    not what the server holds, so nothing is replaced and the merge keeps both writes."""
    store, other = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    store.save("s:alice", changed=ALICE, ttl=600, create=True)
    assert store.load("s:alice", 600) is not None
    assert other.save("s:alice", changed={"theme": '"dark"'}, ttl=600)
    with scripts_sent(store) as sent:
        assert store.save("s:alice", changed={"seen": "1"}, ttl=600)
    assert sent == ["REPLACE", "MERGE"]
    assert store.load("s:alice", 600) == SessionRecord(
        {**ALICE, "theme": '"dark"', "seen": "1"}, {})
    store.close()
    other.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_write_after_a_logout_since_the_read_brings_nothing_back(redis_url: str) -> None:
    store, other = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    store.save("s:alice", changed=ALICE, ttl=600, create=True)
    assert store.load("s:alice", 600) is not None
    other.delete("s:alice")
    with scripts_sent(store) as sent:
        assert store.save("s:alice", changed={"user": '"mallory"'}, ttl=600) is False
    assert sent == ["REPLACE", "MERGE"]
    assert store.load("s:alice", 600) is None
    store.close()
    other.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_retired_id_read_is_never_written_over(redis_url: str) -> None:
    """A marker (an id a move retired) read by this request: its write is the merge's, which
    refuses it -- the marker is not replaced by a session."""
    store = RedisStore.from_url(redis_url)
    store.save("s:old", changed=ALICE, ttl=600, create=True)
    assert store.move("s:old", "s:new", changed={}, ttl=600, retired_at=1, grace=30)
    marker = store.load("s:old", 600)
    assert marker is not None and RETIRED in marker.meta
    with scripts_sent(store) as sent:
        assert store.save("s:old", changed={"user": '"mallory"'}, ttl=600) is False
    assert sent == ["MERGE"]
    record = store.load("s:old", 600)
    assert record is not None and RETIRED in record.meta and record.fields == {}
    store.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_retried_replace_writes_the_same_record(redis_url: str, admin: redis.Redis) -> None:
    """The first REPLACE times out (it may still run); its retry finds its own text (not
    the one read) and answers 0, and the merge then sets the same fields to the same
    values: the record is what one write makes."""
    store = RedisStore.from_url(redis_url, socket_timeout=0.3)
    store.save("s:alice", changed=ALICE, meta={"c": 1}, ttl=600, create=True)
    assert store.load("s:alice", 600) is not None
    stall = _stall(admin, 0.45)  # longer than one timeout, shorter than two
    try:
        with scripts_sent(store) as sent:
            assert store.save("s:alice", changed={"seen": "1"}, meta={"x": 2}, ttl=600)
    finally:
        stall.join()
    # Sent twice: the attempt that timed out and its retry. Whichever of the two the
    # server ran first wrote the record; the other found that text, not the one read,
    # and answered 0 -- then the merge set the same values again.
    assert sent[:2] == ["REPLACE", "REPLACE"] and set(sent[2:]) <= {"MERGE"}
    assert store.load("s:alice", 600) == SessionRecord({**ALICE, "seen": "1"}, {"c": 1, "x": 2})
    store.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_write_after_a_mark_of_the_same_session_merges_in_one_step(redis_url: str) -> None:
    """A mark changed the record this request read: its write merges at once, not after a
    REPLACE bound to fail (a round trip for nothing)."""
    store = RedisStore.from_url(redis_url)
    store.save("s:{alice}", changed=ALICE, ttl=600, create=True)
    assert store.load("s:{alice}", 600) is not None
    assert store.mark("s:{alice}", {"o:shop": 5}, 600) is not None
    with scripts_sent(store) as sent:
        assert store.save("s:{alice}", changed={"seen": "1"}, ttl=600)
    assert sent == ["MERGE"]
    assert store.load("s:{alice}", 600) == SessionRecord({**ALICE, "seen": "1"}, {"o:shop": 5})
    store.close()


@pytest.mark.usefixtures("every_write_replaces")
def test_a_stamped_record_is_compared_by_its_head_and_a_merge_takes_the_stamp_out(
    redis_url: str, admin: redis.Redis
) -> None:
    """REPLACE writes a new random stamp at the record's head; the next write of that text
    compares only the head. Any other write (here another app's merge) takes the stamp
    out, so a request still holding the old head merges instead of writing over it."""
    store, other = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    store.save("s:alice", changed=ALICE, ttl=600, create=True)
    assert store.load("s:alice", 600) is not None
    assert store.save("s:alice", changed={"seen": "1"}, ttl=600)  # the whole text compared
    first = admin.get("s:alice")
    assert first is not None and first.startswith(b'{"v":"') and "v" in json.loads(first)
    admin.config_resetstat()
    with scripts_sent(store) as sent:
        assert store.save("s:alice", changed={"seen": "2"}, ttl=600)
    assert sent == ["REPLACE"]
    stats = admin.info("commandstats")
    assert "cmdstat_getrange" in stats and "cmdstat_get" not in stats  # the head, not all
    second = admin.get("s:alice")
    assert second is not None and second[:40] != first[:40]  # a new stamp each write
    assert store.load("s:alice", 600) is not None  # this request holds the stamped head
    assert other.save("s:alice", changed={"theme": '"dark"'}, ttl=600)  # merged elsewhere
    merged = admin.get("s:alice")
    assert merged is not None and "v" not in json.loads(merged)
    with scripts_sent(store) as sent:
        assert store.save("s:alice", changed={"seen": "3"}, ttl=600)
    assert sent == ["REPLACE", "MERGE"]
    assert store.load("s:alice", 600) == SessionRecord(
        {**ALICE, "seen": "3", "theme": '"dark"'}, {})
    store.close()
    other.close()


def test_a_merge_that_keeps_the_stamp_never_writes_it_first(admin: redis.Redis) -> None:
    """Apps sharing sessions upgrade at different times, and a merge of an earlier version
    re-encodes a stamped record keeping its stamp. A head compare stays safe only if such
    a text never starts with that stamp: this server's cjson writes a record's keys in
    hash order, the stamp not first. (Should a server order them otherwise, this fails,
    and the head compare must not be trusted there.)"""
    stamped = '{"v":"' + "0" * 32 + '","d":{"user":"\\"alice\\""},"m":{"c":1}}'
    for extra in ("", ',"x":1'):  # and with any further key a record might gain
        again = admin.eval("return cjson.encode(cjson.decode(ARGV[1]))", 0,
                           stamped[:-1] + extra + "}")
        assert not again.startswith(b'{"v":'), again
