"""RedisStore through Sentinel, and a forced failover in the middle of a request loop.

``SENTINEL FAILOVER`` promotes the replica while the old master stays up --
an operator's planned switchover, the case where a client can go on
talking to the old master without noticing. Four browsers (two users) keep
reading and writing their shared sessions through the remote middleware
while it happens. Every answer must be the page for the right user or a
503 with ``Retry-After``: never a 500, never a page for nobody. The app
must have *recovered* within 5 s: by then no more 503s, and every write it
acknowledged from then on is on the new master (a write acknowledged by
the old master after the promotion is lost when it is demoted -- the
window Redis's asynchronous replication allows, which must stay short).

The second run pauses writes on the old master first (``CLIENT PAUSE ms
WRITE``, the planned-switchover recipe of docs/scaling.md): then the switch costs a
few 503s and loses no acknowledged write at all. The third kills the master
outright: 503s until the sentinel has promoted the replica, then success,
within the same 5 s.

After the failover the loop runs on past the 5 s, to see trouble that comes
back: 1 s past it in CI's rows, 2 s in the ``long`` profile's (``python -m
pytest -m long``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest
import redis
import test_store_async
import test_store_exchange
from flow import SHOP, Browser, Deployment

from sessionshare import AsyncRedisStore, RedisStore

from .figures import report
from .topologies import SentinelGroup

LOOP_BEFORE = 1.0
RECOVERY_LIMIT = 5.0
#: How long the loop runs on past the recovery limit, per profile.
WATCH_PAST_LIMIT = [
    pytest.param(1.0, id="ci"),
    pytest.param(2.0, id="long", marks=pytest.mark.long),
]


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int
    right_user: bool
    retry_after: bool
    written: str | None  # the session key a successful write set


def _loop(browser: Browser, user: str, name: str, stop: threading.Event,
          outcomes: list[Outcome]) -> None:
    sequence = 0
    while not stop.is_set():
        sequence += 1
        written = f"{name}-{sequence}" if sequence % 2 else None
        url = SHOP + (f"/write?{written}=1" if written else "/orders")
        started = time.monotonic()
        response = browser.get(url)
        ended = time.monotonic()
        right_user = (
            response.status_int == 200
            and response.content_type == "application/json"
            and response.json.get("user") == user
        )
        outcomes.append(Outcome(
            started, ended, response.status_int, right_user,
            bool(response.headers.get("Retry-After")),
            written if right_user else None,
        ))
        time.sleep(0.005)


@pytest.mark.parametrize("watch", WATCH_PAST_LIMIT)
@pytest.mark.parametrize("how", ["forced", "writes-paused-first", "master-crash"])
def test_failover_gives_503s_then_success_within_5_s(
    sentinel_group: SentinelGroup, how: str, watch: float
) -> None:
    store = RedisStore(sentinel_group.master_client())
    dep = Deployment(store, time.time)
    users = ["alice", "bob", "alice", "bob"]
    browsers = [Browser(dep) for _ in users]
    for browser, user in zip(browsers, users, strict=True):
        assert browser.sign_in_at(SHOP + "/orders", user).json["user"] == user
    sentinel_group.wait_for_replica_sync()  # the sessions themselves are on both servers
    old_master = sentinel_group.master_address()

    stop = threading.Event()
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=_loop, args=(b, u, f"w{i}", stop, outcomes), daemon=True)
        for i, (b, u) in enumerate(zip(browsers, users, strict=True))
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(LOOP_BEFORE)
        failover_at = time.monotonic()
        if how == "master-crash":
            sentinel_group.servers_by_port()[old_master[1]].stop()  # SIGKILL
        else:
            if how == "writes-paused-first":
                paused = redis.Redis(host=old_master[0], port=old_master[1], socket_timeout=2)
                paused.client_pause(5000, all=False)
                paused.close()
            accepted = sentinel_group.failover()
            if how == "forced":
                failover_at = accepted  # the sentinel may have said NOGOODSLAVE a few times
        time.sleep(max(0.0, failover_at + RECOVERY_LIMIT + watch - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    new_master = sentinel_group.master_address()
    assert new_master != old_master, "the sentinel did not switch masters"

    # What the new master holds for each browser's session.
    direct = RedisStore(redis.Redis(host=new_master[0], port=new_master[1], socket_timeout=2))
    held: set[str] = set()
    for browser in browsers:
        record = direct.load(browser.store_key("shop.test"), 3600)
        assert record is not None, "a session made before the failover is gone"
        held.update(record.fields)
    direct.close()
    store.close()

    wrong = [o for o in outcomes if not o.right_user and o.status != 503]
    unavailable = [o for o in outcomes if o.status == 503]
    lost = [o for o in outcomes if o.written is not None and o.written not in held]
    recovered_at = max((o.ended for o in unavailable + lost), default=failover_at)
    recovery = recovered_at - failover_at
    after = [o for o in outcomes if o.started > recovered_at]
    report(f"sentinel failover ({how})", {
        "requests": len(outcomes), "503": len(unavailable),
        "500": sum(o.status == 500 for o in outcomes),
        "unauthenticated_or_wrong_200": sum(o.status == 200 and not o.right_user
                                           for o in outcomes),
        "acknowledged_writes_lost": len(lost),
        "recovery_s": round(recovery, 2), "ok_after_recovery": len(after),
    })
    assert not wrong, f"answers other than the right user's page or 503: {wrong[:5]}"
    assert all(o.retry_after for o in unavailable)
    assert all(o.started >= failover_at - 0.5 for o in unavailable + lost), "trouble before"
    assert recovery <= RECOVERY_LIMIT, (
        f"still failing or writing to the old master {recovery:.1f} s after the failover"
    )
    assert len(after) >= 50 and all(o.right_user for o in after)
    if how != "master-crash":
        # A switchover with the old master up: a few 503s at most.
        assert len(unavailable) <= 20, f"{len(unavailable)} 503s: more than a few"
    if how == "writes-paused-first":
        assert not lost, f"{len(lost)} acknowledged writes lost despite the pause"


def test_an_interrupted_command_crosses_no_user(sentinel_group: SentinelGroup) -> None:
    """tests/test_store_exchange.py's checks, on a Sentinel master (no fast path there)."""
    store = RedisStore(sentinel_group.master_client())
    assert not store.uses_fast_path
    for following in sorted(test_store_exchange.NEXT_CALLS):
        for interrupted in sorted(test_store_exchange.INTERRUPTED_CALLS):
            test_store_exchange.check_interrupted_command_crosses_no_user(
                store, interrupted, following
            )
    store.close()

    async def on_asyncio() -> None:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        sentinel = AsyncSentinel([("127.0.0.1", sentinel_group.sentinel_port)], socket_timeout=2)
        master = sentinel.master_for(sentinel_group.service, socket_timeout=2)
        async_store = AsyncRedisStore(master)
        assert not async_store.uses_fast_path
        for interrupted in sorted(test_store_async.INTERRUPTED):
            await test_store_async.check_interrupted_command_crosses_no_user(
                async_store, interrupted, asyncio.CancelledError()
            )
        await async_store.close()
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()

    asyncio.run(on_asyncio())
