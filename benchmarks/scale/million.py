"""A million sessions loaded: the authenticated read, a revocation, and the count's cost.

Two redis-servers run side by side, started by the benchmark: *small* holds
the ``baseline`` sessions (1,000) signed in for real through the hand-off,
*large* holds those same users' sessions too, plus copies
(:mod:`.population`) up to ``sessions`` (a million), ``per_user`` to a user.
Every figure is taken on both in the same run, and the large one is
reported as a ratio of the small one:

- **the authenticated read**: the shop's ``RemoteSessionMiddleware`` serving
  a protected page to a signed-in browser (one ``GETEX``), each request
  timed alone, cycling over the real sessions, in interleaved blocks (a
  block on small, a block on large, ...): p50/p90/p99/p99.9/max. Beside it,
  the same ``GETEX`` through a plain redis-py client (the server's share), and
  the server's own microseconds per ``GETEX`` (``INFO commandstats``);
- **revoking a user who holds ``heavy`` sessions** (1,000):
  ``SessionAdmin.revoke_all`` -- the path of ``python -m sessionshare sessions
  revoke --all`` -- timed over several repeats (the user's sessions written
  again between them), with its round trips and server commands;
- **the active-sessions count**: ``SessionAdmin.count_sessions`` (the census:
  one ``ZCARD``); the same when it sweeps the sessions one gauge period brings
  due (``sessions x 60 s / 1,800 s idle``, made due by hand, all still live);
  and ``reconcile_sessions`` -- the count as it was before the census (a
  ``SCAN`` of the index keys, one read per user, one ``EXISTS`` per 500
  sessions) plus the repair of the census -- each timed once on each server,
  with its round trips and commands.

Round trips are counted in a separate pass (never while timing); server
commands are ``INFO commandstats`` deltas. Each result is checked first: the
count must find every session loaded, and ``SessionAdmin.sessions`` must list
every one of the heavy user's sessions before the revocation and none after.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from sessionshare import RedisStore, SyncKey

from .. import apps
from ..cases import environ_for
from ..measure import command_calls, counting_round_trips
from .deployment import Browser, Deployment
from .population import Template, add_sessions, load_users

HEAVY_USER = "user-h0000000"
Log = Callable[[str], None]


@dataclass
class Side:
    """One server with its deployment and its signed-in readers."""

    name: str
    url: str
    deployment: Deployment
    client: redis.Redis
    readers: list[Browser]
    sessions: int = 0
    heavy: Template | None = None

    def commands(self) -> dict[str, int]:
        return command_calls(self.client)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p99.9": at(0.999),
            "max": ordered[-1], "mean": statistics.fmean(ordered), "n": len(ordered)}


#: Not the work measured: the benchmark's own questions, and the handshake of a new
#: connection (``HELLO``, ``CLIENT SETINFO``).
_NOT_COUNTED = {"info", "memory", "client", "hello"}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: calls - before.get(name, 0) for name, calls in sorted(after.items())
            if name not in _NOT_COUNTED and calls != before.get(name, 0)}


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def _timed_reads(side: Side, n: int, offset: int) -> list[float]:
    """``n`` authenticated reads at the shop, each timed alone (microseconds)."""
    app = side.deployment.shop
    templates = [environ_for(apps.SHOP + apps.READ_PATH, b.shop_cookie()) for b in side.readers]
    clock = time.perf_counter_ns
    out = []
    for i in range(offset, offset + n):
        environ = templates[i % len(templates)].copy()
        started = clock()
        body = app(environ, _start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        out.append((clock() - started) / 1000)
    return out


def _timed_getex(client: redis.Redis, keys: Sequence[str], n: int, offset: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for i in range(offset, offset + n):
        key = keys[i % len(keys)]
        started = clock()
        client.getex(key, ex=1800)
        out.append((clock() - started) / 1000)
    return out


def build(name: str, url: str, key: SyncKey | str, baseline: int, log: Log) -> Side:
    store = RedisStore.from_url(url)
    deployment = Deployment(store, key)
    readers = []
    for number in range(baseline):
        browser = Browser(deployment)
        browser.sign_in(f"user-r{number:07d}")
        readers.append(browser)
    log(f"{name}: {baseline:,} users signed in through the hand-off")
    return Side(name, url, deployment, redis.Redis.from_url(url), readers, sessions=baseline)


def add_heavy(side: Side, heavy: int) -> list[str]:
    """Sign the heavy user in once, then give them ``heavy - 1`` more sessions (copies)."""
    browser = Browser(side.deployment)
    browser.sign_in(HEAVY_USER)
    side.heavy = Template.of(side.client, browser)
    keys = [side.heavy.session_key] + add_sessions(side.client, side.heavy, heavy - 1)
    side.sessions += heavy
    return keys


def fill(side: Side, total: int, per_user: int, log: Log) -> float:
    """Copies of a reader's session until ``side`` holds ``total`` sessions; seconds taken."""
    template = Template.of(side.client, side.readers[0])
    started = time.perf_counter()
    side.sessions += load_users(side.client, template, sessions=total - side.sessions,
                                per_user=per_user)
    took = time.perf_counter() - started
    log(f"{side.name}: loaded to {side.sessions:,} sessions in {took:.0f} s")
    return took


def reads(sides: Sequence[Side], per_block: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Interleaved blocks of timed reads and of bare GETEX on every side."""
    keys = {side.name: [b.session_key() for b in side.readers] for side in sides}
    plain = {side.name: redis.Redis.from_url(side.url) for side in sides}
    for side in sides:  # connections, memos, caches
        _timed_reads(side, len(side.readers), 0)
        _timed_getex(plain[side.name], keys[side.name], len(side.readers), 0)
    trips = {}
    for side in sides:
        before = side.commands()
        with counting_round_trips() as count:
            _timed_reads(side, 100, 0)
        trips[side.name] = (count[0] / 100, {k: v / 100 for k, v in
                                             _delta(before, side.commands()).items()})
    samples: dict[str, dict[str, list[float]]] = {
        side.name: {"read": [], "getex": []} for side in sides}
    stats_before = {side.name: side.client.info("commandstats")["cmdstat_getex"]
                    for side in sides}
    for number in range(rounds):
        for side in sides:
            gc.collect()
            samples[side.name]["read"] += _timed_reads(side, per_block, number * per_block)
        for side in sides:
            gc.collect()
            samples[side.name]["getex"] += _timed_getex(
                plain[side.name], keys[side.name], per_block, number * per_block)
    result: dict[str, dict[str, Any]] = {}
    for side in sides:
        after = side.client.info("commandstats")["cmdstat_getex"]
        before_stats = stats_before[side.name]
        calls = after["calls"] - before_stats["calls"]
        server_us = (after["usec"] - before_stats["usec"]) / calls if calls else 0.0
        result[side.name] = {
            "read": percentiles(samples[side.name]["read"]),
            "getex": percentiles(samples[side.name]["getex"]),
            "server_us_per_getex": server_us,
            "round_trips": trips[side.name][0], "commands": trips[side.name][1],
        }
        plain[side.name].close()
    return result


#: The gauge's period and the sessions' idle timeout the sweep figure assumes: each live
#: session comes due about once per idle timeout, so a period brings sessions x every / idle.
SWEEP_EVERY = 60.0
IDLE = 1800


def _timed(side: Side, call: Callable[[], Any], prepare: Callable[[], None] | None = None
           ) -> tuple[Any, dict[str, Any]]:
    """``call()`` timed (with its server commands), then again with its round trips
    counted; ``prepare`` runs before each (untimed)."""
    if prepare is not None:
        prepare()
    before = side.commands()
    started = time.perf_counter()
    answer = call()
    seconds = time.perf_counter() - started
    commands = _delta(before, side.commands())
    if prepare is not None:
        prepare()
    with counting_round_trips() as trips:
        call()
    return answer, {"seconds": seconds, "commands": commands, "round_trips": trips[0]}


def count(side: Side) -> dict[str, Any]:
    """Counting every session on ``side``, three ways, each checked: the census
    (``count_sessions``, one ``ZCARD``); the census with a sweep of the sessions one gauge
    period brings due (made due by hand, all live); ``reconcile_sessions``, the scan."""
    admin = side.deployment.admin
    census = admin.census

    found, census_row = _timed(side, lambda: admin.count_sessions(sweep_every=0))
    if found != side.sessions:
        raise RuntimeError(f"{side.name}: count_sessions found {found:,} of the "
                           f"{side.sessions:,} sessions loaded")
    due = max(1, round(side.sessions * SWEEP_EVERY / IDLE))

    def make_due() -> None:
        members = side.client.zrange(census.key, 0, due - 1)
        pipe = side.client.pipeline(transaction=False)
        for start in range(0, len(members), 1000):
            pipe.zadd(census.key, dict.fromkeys(members[start:start + 1000], 0), xx=True)
        pipe.delete(census.lock)
        pipe.execute()

    swept, sweep_row = _timed(side, lambda: admin.count_sessions(sweep_every=SWEEP_EVERY),
                              make_due)
    left_due = side.client.zcount(census.key, "-inf", time.time() - 5)
    if swept != side.sessions or left_due:
        raise RuntimeError(f"{side.name}: the sweep counted {swept:,} of {side.sessions:,}; "
                           f"{left_due:,} members still due")
    sweep_row.update(due=due, every=SWEEP_EVERY, idle=IDLE)
    # The scan alone -- the count as it was before the census -- then the whole reconcile.
    scanned, alone_row = _timed(side, admin.scan_sessions)
    if scanned != side.sessions:
        raise RuntimeError(f"{side.name}: the scan found {scanned:,} of {side.sessions:,}")
    done, scan_row = _timed(side, admin.reconcile_sessions)
    if done.sessions != side.sessions or done.counted != side.sessions or done.removed:
        raise RuntimeError(f"{side.name}: reconcile_sessions found {done}, "
                           f"{side.sessions:,} sessions loaded")
    return {"sessions": found, "census": census_row, "sweep": sweep_row, "scan_alone": alone_row,
            "scan": scan_row}


def revoke(sides: Sequence[Side], heavy: int, repeats: int, log: Log) -> dict[str, Any]:
    """``revoke_all`` of the heavy user on every side: checked, counted, then timed.

    The first revocation is checked (every session listed before, none after, none
    stored); the second has its round trips counted (its scripts are loaded by then,
    as in a running deployment); the next ``repeats`` are timed, interleaved. The
    user's sessions are written again before each.
    """
    result: dict[str, Any] = {}
    for side in sides:
        keys = add_heavy(side, heavy)
        admin = side.deployment.admin
        listed = admin.sessions(HEAVY_USER)
        if len(listed) != heavy:
            raise RuntimeError(f"{side.name}: the heavy user lists {len(listed)} sessions, "
                               f"not {heavy}")
        ended = admin.revoke_all(HEAVY_USER)
        left = side.client.exists(*keys)
        if ended != heavy or left or admin.sessions(HEAVY_USER):
            raise RuntimeError(f"{side.name}: revoke_all ended {ended} of {heavy}; "
                               f"{left} still stored")
        assert side.heavy is not None
        add_sessions(side.client, side.heavy, heavy)
        before = side.commands()
        with counting_round_trips() as trips:
            admin.revoke_all(HEAVY_USER)
        result[side.name] = {"round_trips": trips[0], "seconds": [],
                             "commands": _delta(before, side.commands())}
    for _ in range(repeats):
        for side in sides:
            assert side.heavy is not None
            keys = add_sessions(side.client, side.heavy, heavy)
            gc.collect()
            started = time.perf_counter()
            ended = side.deployment.admin.revoke_all(HEAVY_USER)
            result[side.name]["seconds"].append(time.perf_counter() - started)
            if ended != heavy or side.client.exists(*keys):
                raise RuntimeError(f"{side.name}: a timed revoke_all ended {ended} of {heavy}")
    for side in sides:
        side.sessions -= heavy
        result[side.name]["median_s"] = statistics.median(result[side.name]["seconds"])
    log(f"revoke_all of {heavy:,} sessions: {repeats} timed on each server")
    return result


def close(side: Side) -> None:
    side.deployment.store.close()
    side.client.close()
