"""RedisStore on a real 3-master Redis Cluster, through ``redis.cluster.RedisCluster``.

The generic suites are not copied here: every test of ``test_store.py``,
``test_core_session.py``, ``test_handoff.py`` and ``test_admin.py`` that gets its store
from the ``store`` fixture (directly or through a fixture of its module, such
as ``dep``) is collected again in this module, where ``store`` is the cluster
store. So the store contract, the session layer and the hand-off's flows end
to end (a sign-in handed to two remotes and signed out, a refused callback
that spends its ticket) run unchanged against the cluster, and a test added
there later runs here too. The hand-off's decisions are not repeated here:
they are tested where they are made, on the core's sides (tests/coreflow.py),
and reach the store only through the commands the flows above run. Tests
that need a single Redis server of their own (``redis_url``) stay where
they are.

The tests below add what only a cluster has: sessions spread over the
masters, scripts a node has not cached yet, and a master going away.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import test_admin
import test_core_session as test_session
import test_handoff
import test_store
import test_store_async
import test_store_exchange
from conftest import FakeClock
from flow import SHOP, Browser, Deployment

from sessionshare import AsyncRedisStore, RedisStore, SessionStore

from .figures import report
from .topologies import LocalCluster, wait_until

SPREAD_SESSIONS = 40

#: Fixtures that give a test its own single Redis: such a test is not about the store contract.
_SINGLE_SERVER = {"redis_url", "redis_server"}


def _arguments(obj: Any) -> set[str]:
    function = getattr(obj, "_fixture_function", obj)
    return set(inspect.signature(function).parameters)


def store_tests(module: ModuleType) -> dict[str, Any]:
    """The tests of ``module`` that reach ``store``, and the module's fixtures they need."""
    fixtures = {n: o for n, o in vars(module).items() if hasattr(o, "_fixture_function_marker")}

    def reaches_store(names: set[str], seen: frozenset[str] = frozenset()) -> bool:
        if "store" in names:
            return True
        return any(
            reaches_store(_arguments(fixtures[n]), seen | {n})
            for n in names if n in fixtures and n not in seen
        )

    tests = {
        name: obj for name, obj in vars(module).items()
        if name.startswith("test_") and callable(obj)
        and not (_arguments(obj) & _SINGLE_SERVER) and reaches_store(_arguments(obj))
    }
    return {**fixtures, **tests}


_BORROWED = {
    m.__name__: store_tests(m) for m in (test_store, test_session, test_handoff, test_admin)
}
for _tests in _BORROWED.values():
    globals().update(_tests)


def test_the_generic_suites_are_borrowed() -> None:
    # Guards the collection above: if it silently matched nothing, nothing ran on the cluster.
    counts = {name: sum(1 for t in tests if t.startswith("test_"))
              for name, tests in _BORROWED.items()}
    assert counts["test_store"] >= 8 and counts["test_handoff"] >= 3, counts
    assert "test_happy_path_end_to_end" in _BORROWED["test_handoff"]
    assert "test_login_csrf_attackers_token_in_victims_browser_end_to_end" in _BORROWED[
        "test_handoff"]  # a refusal that burns the ticket: a store command of its own
    assert "test_tickets_taken_from_8_threads_have_one_winner" in _BORROWED["test_store"]
    # Issue 17: the per-user index and revocation, on the cluster too.
    assert "test_revoke_all_ends_every_session_of_the_user_only" in _BORROWED["test_admin"]
    assert "test_revocation_takes_effect_at_the_next_request_of_each_shell" in _BORROWED[
        "test_admin"]  # with the WSGI shell here (the ``shell`` fixture below)


@pytest.fixture
def store(cluster_store: RedisStore) -> Iterator[SessionStore]:
    """The cluster store, in place of tests/conftest.py's memory + single-Redis pair."""
    yield cluster_store


@pytest.fixture
def shell() -> str:
    """The WSGI shell only, here: the ASGI shell drives the same core steps, and
    AsyncRedisStore runs on the cluster below (the asyncio test at the end)."""
    return "wsgi"


# -- what only a cluster has ---------------------------------------------------------


def test_sessions_spread_over_every_master(
    cluster_store: RedisStore, redis_cluster: LocalCluster
) -> None:
    dep = Deployment(cluster_store, time.time)
    for _ in range(SPREAD_SESSIONS):
        page = Browser(dep).sign_in_at(SHOP + "/orders")
        assert page.json["user"] == "alice"
    per_node = [node.client().dbsize() for node in redis_cluster.nodes]
    # Some master holding none of them by chance: odds 3 * (2/3)**40, about 2 in 10 million.
    assert sum(per_node) >= SPREAD_SESSIONS and all(count > 0 for count in per_node), per_node
    # A session key is hash-tagged: a cluster operation on one session never spans slots.
    keys = [k for node in redis_cluster.nodes
            for k in node.client(decode_responses=True).keys("sessionshare:s:*")]
    assert keys and all("{" in key and key.endswith("}") for key in keys)


def test_merge_script_reloads_on_a_node_that_lost_it(
    cluster_store: RedisStore, redis_cluster: LocalCluster
) -> None:
    assert cluster_store.save("k", changed={"a": "1"}, ttl=60, create=True)
    for node in redis_cluster.nodes:  # as after a node restart or SCRIPT FLUSH
        node.client().script_flush()
    assert cluster_store.save("k", changed={"b": "2"}, ttl=60)
    record = cluster_store.load("k", 60)
    assert record is not None and record.fields == {"a": "1", "b": "2"}


def test_expiry_is_real_on_the_cluster(cluster_store: RedisStore) -> None:
    cluster_store.save("k", changed={"a": "1"}, ttl=60, create=True)
    cluster_store.client.pexpire("k", 20)  # shorten on the server instead of sleeping
    wait_until(lambda: not cluster_store.client.exists("k"), 2.0, "the key to expire")
    assert cluster_store.load("k", 60) is None


def test_a_master_going_away_gives_503_never_a_bypass(
    cluster_store: RedisStore, redis_cluster: LocalCluster
) -> None:
    dep = Deployment(cluster_store, time.time)
    browsers = [Browser(dep) for _ in range(9)]
    for browser in browsers:
        browser.sign_in_at(SHOP + "/orders")
    # The master holding the first browser's session goes away, so some session is on it.
    first_key = browsers[0].store_key("shop.test")
    owner = cluster_store.client.get_node_from_key(first_key)
    (victim,) = [node for node in redis_cluster.nodes if node.port == owner.port]
    started = time.monotonic()
    statuses: dict[int, int] = {}
    try:
        victim.stop()
        for _ in range(3):
            for browser in browsers:
                response = browser.get(SHOP + "/orders")
                statuses[response.status_int] = statuses.get(response.status_int, 0) + 1
                # Sessions on the other masters may still be served, as the signed-in user;
                # those on the lost master get 503 with Retry-After. Nothing else.
                assert response.status_int in (200, 503), response
                if response.status_int == 200:
                    assert response.json["user"] == "alice"
                else:
                    assert response.headers["Retry-After"]
        assert statuses.get(503), statuses
    finally:
        victim.start()  # same port, same nodes.conf: it rejoins with its slots
        wait_until(
            lambda: all(n.client().cluster("info")["cluster_state"] == "ok"
                        for n in redis_cluster.nodes),
            30, "the cluster to heal",
        )
    # The restarted master kept no data (no persistence here): its users are signed
    # out -- sent to the IdP, never shown the page -- and everyone else goes on.
    def settled() -> bool:
        return all(b.get(SHOP + "/orders").status_int in (200, 302) for b in browsers)

    wait_until(settled, 10, "every request to be served again")
    healed = time.monotonic() - started
    after = [b.get(SHOP + "/orders") for b in browsers]
    for response in after:
        if response.status_int == 200:
            assert response.json["user"] == "alice"
        else:
            assert response.status_int == 302 and "/login?" in response.location
    report("cluster master loss", {
        "statuses_while_down": statuses, "healed_s": round(healed, 1),
        "signed_out_by_data_loss": sum(r.status_int == 302 for r in after),
    })


@pytest.mark.parametrize("following", sorted(test_store_exchange.NEXT_CALLS))
def test_an_interrupted_command_crosses_no_user(cluster_store: RedisStore, following: str) -> None:
    """tests/test_store_exchange.py's check, on a cluster (its keys spread over the nodes)."""
    assert not cluster_store.uses_fast_path
    for interrupted in sorted(test_store_exchange.INTERRUPTED_CALLS):
        test_store_exchange.check_interrupted_command_crosses_no_user(
            cluster_store, interrupted, following
        )


def test_revocation_takes_effect_at_the_next_request_of_asgi_apps_on_the_cluster(
    cluster_store: RedisStore, redis_cluster: LocalCluster, clock: FakeClock
) -> None:
    """Issue 17: the revocation test of tests/test_admin.py with the ASGI IdP, shop and blog,
    over redis.asyncio's cluster client (the borrowed copy above runs the WSGI shell)."""
    redis_cluster.flushall()
    test_admin.test_revocation_takes_effect_at_the_next_request_of_each_shell(
        cluster_store, clock, "asgi"
    )


_INTERRUPTIONS = [asyncio.CancelledError(), test_store_async.Interrupted()]


@pytest.mark.parametrize("exc", _INTERRUPTIONS, ids=type)
def test_an_interrupted_async_command_crosses_no_user(
    redis_cluster: LocalCluster, exc: BaseException
) -> None:
    """tests/test_store_async.py's check, on redis.asyncio's cluster client."""
    from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    redis_cluster.flushall()

    async def scenario() -> None:
        client = AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode("127.0.0.1", n.port) for n in redis_cluster.nodes],
            socket_timeout=2,
        )
        store = AsyncRedisStore(client)
        assert not store.uses_fast_path
        for interrupted in sorted(test_store_async.INTERRUPTED):
            await test_store_async.check_interrupted_command_crosses_no_user(
                store, interrupted, exc
            )
        await client.aclose()

    asyncio.run(scenario())
