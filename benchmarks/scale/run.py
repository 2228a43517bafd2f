"""``python -m benchmarks.scale``: the figures at scale, in one run on this machine.

    python -m benchmarks.scale --pin 1              # the full run (a million sessions)
    python -m benchmarks.scale --smoke              # tiny sizes: the code path, in seconds
    python -m benchmarks.scale --pin 1 --json scale.json

Three parts, each on redis-servers of its own that the run starts on free
loopback ports (``tests/servers.py``, ``tests/reliability/topologies.py``)
and stops, their data directories removed, before the next part starts:

1. :mod:`.memory` -- Redis memory per session at rest, sessionshare (with its
   index entry) beside Flask-Session and Beaker, same server, same data;
2. :mod:`.million` -- a small and a large server side by side (1,000 and a
   million sessions): the authenticated read's latency distribution,
   ``revoke_all`` of a user with 1,000 sessions, ``count_sessions``;
3. :mod:`.cluster` -- a local 3-master Cluster: how the keys spread over the
   masters, and every script checked to stay in one slot.

``--pin CPU`` binds this process and every redis-server to that CPU, as
``python -m benchmarks`` does. Every part is bounded by its sizes; nothing
runs after the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sessionshare import SyncKey

from .. import measure
from .. import report as bench_report
from . import cluster, memory, million, tables

REPO = Path(__file__).resolve().parents[2]
PARTS = ("memory", "million", "cluster")

#: --smoke: every code path, sizes small enough for the test suite.
SMOKE = {"memory_sessions": 30, "sessions": 3000, "baseline": 40, "heavy": 40,
         "reads": 200, "rounds": 2, "revokes": 1, "cluster_sessions": 30}
FULL = {"memory_sessions": 5000, "sessions": 1_000_000, "baseline": 1000, "heavy": 1000,
        "reads": 500, "rounds": 40, "revokes": 5, "cluster_sessions": 10_000}


def _tests_modules() -> tuple[Any, Any]:
    """``tests/servers.py`` and ``tests/reliability/topologies.py`` (tests/ is no package)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import servers  # type: ignore[import-not-found]
    from reliability import topologies  # type: ignore[import-not-found]

    return servers, topologies


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description="memory per session vs Flask-Session and Beaker; a million sessions; "
                    "a 3-master Cluster",
    )
    parser.add_argument("--pin", type=int, metavar="CPU",
                        help="bind this process and every redis-server to CPU")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the code path only")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: {','.join(PARTS)})")
    sizes = parser.add_argument_group("sizes (defaults: the full run; --smoke: tiny)")
    sizes.add_argument("--memory-sessions", type=int, metavar="N",
                       help=f"sign-ins per layer for memory (default {FULL['memory_sessions']:,})")
    sizes.add_argument("--sessions", type=int, metavar="N",
                       help=f"sessions on the large server (default {FULL['sessions']:,})")
    sizes.add_argument("--baseline", type=int, metavar="N",
                       help="sessions signed in for real, the small server's whole load and "
                            f"the reads' targets (default {FULL['baseline']:,})")
    sizes.add_argument("--per-user", type=int, default=2, metavar="K",
                       help="sessions per user among the copies (default 2)")
    sizes.add_argument("--heavy", type=int, metavar="N",
                       help=f"sessions of the revoked user (default {FULL['heavy']:,})")
    sizes.add_argument("--reads", type=int, metavar="N",
                       help=f"timed reads per block (default {FULL['reads']:,})")
    sizes.add_argument("--rounds", type=int, metavar="N",
                       help=f"interleaved blocks per server (default {FULL['rounds']})")
    sizes.add_argument("--revokes", type=int, metavar="N",
                       help=f"timed revocations per server (default {FULL['revokes']})")
    sizes.add_argument("--cluster-sessions", type=int, metavar="N",
                       help=f"sign-ins on the cluster (default {FULL['cluster_sessions']:,})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    defaults = SMOKE if args.smoke else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(PARTS)}")
    if args.baseline < 1 or args.heavy < 1 or args.per_user < 1:
        parser.error("--baseline, --heavy and --per-user must be at least 1")
    if args.sessions < args.baseline:
        parser.error("--sessions must be at least --baseline")
    usable = sorted(os.sched_getaffinity(0))
    if args.pin is not None and args.pin not in usable:
        parser.error(f"--pin {args.pin}: this process may only run on CPUs {usable}")
    return args


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    servers, topologies = _tests_modules()
    cpus = {args.pin} if args.pin is not None else None
    machine = bench_report.machine("not used")
    if cpus:
        measure.pin(0, cpus)
    result: dict[str, Any] = {"machine": machine, "settings": {
        key: getattr(args, key) for key in (*FULL, "per_user", "pin", "parts", "smoke")}}
    began = time.perf_counter()

    def started(server: Any) -> Any:
        """Pin a started server; the first one tells the version and the allocator."""
        if cpus:
            measure.pin(server.process.pid, cpus)
        if "redis_server" not in machine:
            admin = server.client()
            info = admin.info("server") | admin.info("memory")
            admin.close()
            machine["redis_server"] = str(info["redis_version"])
            machine["mem_allocator"] = str(info["mem_allocator"])
        return server

    def owned(stack: ExitStack, server: Any) -> Any:
        """Start ``server`` now; stop it and remove its directory when the part ends."""
        stack.callback(shutil.rmtree, server.dir, ignore_errors=True)
        stack.callback(server.stop)
        return started(server.start())

    if "memory" in args.parts:
        with ExitStack() as stack:
            server = owned(stack, servers.RedisServer())
            layers = memory.measure(server.url, args.memory_sessions, log)
            result["memory"] = {name: layer.as_dict() for name, layer in layers.items()}
    if "million" in args.parts:
        with ExitStack() as stack:
            small_server = owned(stack, servers.RedisServer())
            large_server = owned(stack, servers.RedisServer())
            key = SyncKey.generate()
            small = million.build("small", small_server.url, key, args.baseline, log)
            stack.callback(million.close, small)
            large = million.build("large", large_server.url, key, args.baseline, log)
            stack.callback(million.close, large)
            load_s = million.fill(large, args.sessions, args.per_user, log)
            memory_large = int(large.client.info("memory")["used_memory"])
            memory_small = int(small.client.info("memory")["used_memory"])
            log("reads: interleaved blocks on both servers ...")
            reads = million.reads([small, large], args.reads, args.rounds)
            log("counting on both servers: the census, a sweep, the scan (the large one takes "
                "a while) ...")
            counts = {side.name: million.count(side) for side in (small, large)}
            revokes = million.revoke([small, large], args.heavy, args.revokes, log)
            result["million"] = {
                "sessions": {"small": args.baseline, "large": args.sessions},
                "load_seconds": load_s, "copies": args.sessions - args.baseline,
                "used_memory": {"small": memory_small, "large": memory_large},
                "reads": reads, "count": counts, "revoke": revokes, "heavy": args.heavy,
            }
    if "cluster" in args.parts:
        with ExitStack() as stack:
            local = topologies.LocalCluster()
            stack.callback(local.stop)
            local.start()
            for node in local.nodes:
                started(node)
            result["cluster"] = cluster.measure(local, args.cluster_sessions, log)
    result["wall_seconds"] = time.perf_counter() - began
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(tables.render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=_plain) + "\n")
    return 1 if result.get("cluster", {}).get("crossing") else 0


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values in a result (counters, tuples)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return dict(value) if hasattr(value, "items") else str(value)
