"""``python -m benchmarks.topologies``: the store's read and write on every kind of client.

    python -m benchmarks.topologies --pin 1          # about a minute
    python -m benchmarks.topologies --calls 2000     # quicker, rougher

Which path a store's commands take depends on the client it is handed
(``sessionshare/store/redisclient.py``'s ``line_for``): the fast path for a
plain ``redis.Redis`` -- ``RedisStore.from_url`` (RESP2) or a user's
``redis.Redis.from_url`` (redis-py 8's RESP3) --, redis-py's pool for a
Sentinel master, the key's node for a Cluster. Each is measured here against
the same client's own ``GET`` of a record of the same size (what a
hand-written floor would call), one call at a time, interleaved repeats,
median microseconds per call, wall time and this thread's CPU time: the
store's ``load`` (one ``GETEX``) and ``save`` of one key after a ``load``
(one ``EVALSHA``). The servers are started here (``tests/servers.py`` and
``tests/reliability/topologies.py``: a master + replica + sentinel, three
cluster masters on loopback) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from sessionshare import RedisStore

from . import measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = {"user": '"alice"', "theme": '"dark"', "cart": "[3,1,4,1,5]"}


def _suite() -> tuple[Any, Any]:
    """``tests/servers.py`` and ``tests/reliability/topologies.py`` (not a package)."""
    for path in (os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "reliability")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import servers
    import topologies

    return servers, topologies


@contextmanager
def clients(pin: int | None) -> Iterator[dict[str, tuple[Any, Callable[[], None]]]]:
    """Each kind of client, with the servers behind it pinned to ``pin``."""
    servers, topologies = _suite()
    single = servers.RedisServer().start()
    group = topologies.SentinelGroup().start()
    cluster = topologies.LocalCluster().start()
    try:
        if pin is not None:
            for server in [single, group.master, group.replica, *cluster.nodes]:
                measure.pin(server.process.pid, {pin})
            if group.process is not None:
                measure.pin(group.process.pid, {pin})
        url = single.url
        found = {
            "RedisStore.from_url (RESP2)": (RedisStore.from_url(url).client, lambda: None),
            "user's redis.Redis.from_url (RESP3)": (redis.Redis.from_url(url, socket_timeout=1),
                                                    lambda: None),
            "Sentinel master_for": (group.master_client(timeout=1), lambda: None),
            "RedisCluster, 3 masters": (cluster.client(timeout=1), lambda: None),
        }
        yield found
        for client, _ in found.values():
            client.close()
    finally:
        cluster.stop()
        group.stop()
        single.stop()
        shutil.rmtree(single.dir, ignore_errors=True)


def _timed(call: Callable[[], object], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        call()
    return ((time.perf_counter() - wall) / n * 1e6, (time.thread_time() - cpu) / n * 1e6)


def measure_client(client: Any, calls: int, repeats: int) -> dict[str, Any]:
    store = RedisStore(client)
    key, floor_key = "{bench}:s:session", "{bench}:floor"
    store.save(key, changed=RECORD, ttl=1800, create=True)
    client.set(floor_key, json.dumps({k: json.loads(v) for k, v in RECORD.items()}))
    counter = iter(range(10**9))

    def write() -> None:
        store.load(key, 1800)
        store.save(key, changed={"counter": str(next(counter))}, ttl=1800)

    rows: dict[str, Callable[[], object]] = {
        "client GET (the floor's call)": lambda: client.get(floor_key),
        "store load (GETEX)": lambda: store.load(key, 1800),
        "client GET + SET": lambda: (client.get(floor_key), client.set(floor_key, "x")),
        "store load + save 1 key": write,
    }
    for call in rows.values():
        for _ in range(200):
            call()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(repeats):
        for name, call in rows.items():
            samples[name].append(_timed(call, calls))
    store.close()
    return {
        "fast_path": store.uses_fast_path,
        "us": {name: statistics.median(w for w, _ in runs) for name, runs in samples.items()},
        "cpu_us": {name: statistics.median(c for _, c in runs) for name, runs in samples.items()},
    }


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = ["the store's read and write on each kind of client, against the same client's "
             "own commands (median us per call; cpu: this thread's)",
             f"  {'client':<38} {'path':<6} {'GET':>7} {'load':>7} {'ratio':>6} {'cpu':>6}"
             f" {'GET+SET':>8} {'l+save':>8} {'ratio':>6} {'cpu':>6}"]
    for name, row in results.items():
        us, cpu = row["us"], row["cpu_us"]
        get, load = us["client GET (the floor's call)"], us["store load (GETEX)"]
        cget, cload = cpu["client GET (the floor's call)"], cpu["store load (GETEX)"]
        gs, ws = us["client GET + SET"], us["store load + save 1 key"]
        cgs, cws = cpu["client GET + SET"], cpu["store load + save 1 key"]
        lines.append(
            f"  {name:<38} {'fast' if row['fast_path'] else 'pool':<6} {get:7.1f} {load:7.1f} "
            f"{load / get:5.2f}x {cload / cget:5.2f}x {gs:8.1f} {ws:8.1f} {ws / gs:5.2f}x "
            f"{cws / cgs:5.2f}x"
        )
    lines.append("  ratio: the store's call / the client's own; path: fast (the store's own "
                 "exchange) or pool (redis-py's pool per command)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.topologies",
                                     description=__doc__)
    parser.add_argument("--pin", type=int, metavar="CPU")
    parser.add_argument("--calls", type=int, default=5000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.pin is not None:
        measure.pin(0, {args.pin})
    results: dict[str, dict[str, Any]] = {}
    with clients(args.pin) as found:
        for name, (client, _) in found.items():
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results[name] = measure_client(client, args.calls, args.repeats)
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
