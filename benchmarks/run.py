"""``python -m benchmarks``: every case of issue 5 in one run, side by side.

    python -m benchmarks --pin 1            # the full run (about 3 minutes)
    python -m benchmarks --smoke            # a few hundred requests, no HTTP, no memory run
    python -m benchmarks --pin 1 --json results.json

One run starts its own redis-server on a free loopback port (the test
harness's ``tests/servers.py``), builds every app, signs the benchmark user
in through each session layer, checks every case answers as it should, then:

1. counts store round trips and server commands per request of each case;
2. times the in-process cases (a)-(h), interleaved, median of the repeats;
3. measures resident-memory growth over 100,000 requests of (c) and (d);
4. serves (a), (b), (c), (e) with gunicorn and drives each with ``wrk``,
   in interleaved turns (2 x 5 s each by default);

and prints the tables, the ratios of issue 5 and whether each target is met.
``--pin CPU`` binds this process, redis-server and the gunicorn workers to
that CPU (``wrk`` gets the others). ``--strict`` exits 1 when a target is
missed. The smoke mode's timings are too short to judge: it reports round
trips and commands (which are deterministic) and leaves the timing targets
unjudged.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from . import asgi, burst, http_load, measure, report
from .cases import Stack

REPO = Path(__file__).resolve().parent.parent
COUNT_UNITS = 40


def _test_servers() -> ModuleType:
    """``tests/servers.py`` (not a package): its RedisServer and binary lookup."""
    spec = importlib.util.spec_from_file_location("_bench_servers", REPO / "tests" / "servers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="sessionshare vs Flask-Session vs Beaker"
    )
    parser.add_argument("--pin", type=int, metavar="CPU",
                        help="bind this process, redis-server and gunicorn to CPU; wrk to the rest")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check: few requests, no HTTP, no memory run")
    parser.add_argument("--repeats", type=int, help="timed repeats per case (default 7; smoke 3)")
    parser.add_argument("--requests", type=int,
                        help="requests per case per repeat (default 3000; smoke 100)")
    parser.add_argument("--memory-requests", type=int,
                        help="requests of (c) and (d) for the RSS growth (default 100000; smoke 0)")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="wrk time per case")
    parser.add_argument("--http-rounds", type=int, default=2,
                        help="split each case's wrk time into this many interleaved turns")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn + wrk part")
    parser.add_argument("--no-asgi", action="store_true",
                        help="skip the ASGI cases (benchmarks/asgi.py: uvicorn, starsessions)")
    parser.add_argument("--burst", type=int, default=1000, metavar="N",
                        help="ASGI: N concurrent requests to one uvicorn worker, the loop's lag "
                             "measured (benchmarks/burst.py; 0 skips it; never in --smoke)")
    parser.add_argument("--pad", choices=("text", "pages"), default="text",
                        help="what fills the write cases' sessions: one long string (the "
                             "floor's best case, the default) or a list of small objects")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.repeats = args.repeats or (3 if smoke else 7)
    args.requests = args.requests or (100 if smoke else 3000)
    if args.memory_requests is None:
        args.memory_requests = 0 if smoke else 100_000
    args.http = not (args.no_http or smoke)
    usable = sorted(os.sched_getaffinity(0))
    if args.pin is not None and args.pin not in usable:
        parser.error(f"--pin {args.pin}: this process may only run on CPUs {usable}")
    return args


def _wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "not used"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    return (done.stdout + done.stderr).split("Copyright")[0].strip()


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[report.Target]]:
    all_cpus = set(os.sched_getaffinity(0))
    server_cpus = {args.pin} if args.pin is not None else None
    client_cpus = (all_cpus - {args.pin}) or None if args.pin is not None else None
    wrk = http_load.find_wrk() if args.http else None
    machine = report.machine(_wrk_version(wrk))
    if server_cpus:
        measure.pin(0, server_cpus)
    servers = _test_servers()
    server = servers.RedisServer().start()
    try:
        if server_cpus:
            measure.pin(server.process.pid, server_cpus)
        stack = Stack(server.url, pad=args.pad)
        stack.check()
        cases = stack.cases()
        for case in cases:  # connections, script loading, first-request set-ups
            case.loop(COUNT_UNITS)
        inprocess: dict[str, dict[str, Any]] = {}
        for case in cases:
            trips, commands = measure.count_store_work(case, stack.admin, COUNT_UNITS)
            inprocess[case.id] = {"label": case.label, "unit": case.unit,
                                  "round_trips": trips, "commands": commands}
        print(f"timing {len(cases)} cases: {args.repeats} repeats x {args.requests} requests ...",
              file=sys.stderr, flush=True)
        cpu: dict[str, list[float]] = {}
        samples = measure.time_cases(cases, args.requests, args.repeats, stack.admin, cpu)
        for case_id, values in samples.items():
            inprocess[case_id]["us"] = measure.median(values)
            inprocess[case_id]["samples_us"] = [round(v, 2) for v in values]
            inprocess[case_id]["cpu_us"] = measure.median(cpu[case_id])
        memory: dict[str, dict[str, float]] = {}
        if args.memory_requests:
            by_id = {case.id: case for case in cases}
            for case_id in ("c", "d"):
                print(f"memory: {args.memory_requests:,} requests of ({case_id}) ...",
                      file=sys.stderr, flush=True)
                rss, growth = measure.rss_growth(by_id[case_id], args.memory_requests, 5000)
                memory[case_id] = {"rss_mb": round(rss, 2), "growth_mb": round(growth, 3)}
        served: dict[str, dict[str, Any]] = {}
        if wrk is not None:
            cookies = {"a": "", "b": stack.cookie, "c": stack.cookie, "e": stack.flask_cookie}
            outcomes = http_load.run_cases(
                cookies, redis_url=server.url, sync_key=stack.sync_key,
                ports=[servers.free_port() for _ in cookies], seconds=args.http_seconds,
                rounds=args.http_rounds, connections=args.connections,
                server_cpus=server_cpus, client_cpus=client_cpus, wrk=wrk,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
            served = {case_id: vars(outcome) for case_id, outcome in outcomes.items()}
        machine["redis_server"] = str(stack.admin.info("server")["redis_version"])
        stack.close()
        asgi_result: dict[str, Any] = {}
        if not args.no_asgi:
            print("ASGI cases ...", file=sys.stderr, flush=True)
            asgi_result = asgi.run(
                server.url, requests=args.requests, repeats=args.repeats,
                http_seconds=None if args.smoke or wrk is None else args.http_seconds / 2,
                connections=args.connections, server_cpus=server_cpus,
                client_cpus=client_cpus, wrk=wrk,
            )
            if not args.smoke and args.burst:
                print(f"ASGI burst: {args.burst} concurrent requests ...", file=sys.stderr,
                      flush=True)
                asgi_result["burst"] = burst.run(
                    server.url, requests=args.burst, rounds=3, server_cpus=server_cpus,
                    client_cpus=client_cpus,
                )
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    us = {case_id: row["us"] for case_id, row in inprocess.items()}
    result: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "mode": "smoke" if args.smoke else "full", "pin": args.pin,
            "repeats": args.repeats, "requests": args.requests,
            "memory_requests": args.memory_requests, "http_seconds": args.http_seconds,
            "pad": args.pad,
            "http_rounds": args.http_rounds,
            "connections": args.connections,
        },
        "inprocess": inprocess,
        "overhead_us": {k: round(v, 2) for k, v in report.overheads(us).items()},
        "overhead_cpu_us": {k: round(v, 2) for k, v in report.overheads(
            {case_id: row["cpu_us"] for case_id, row in inprocess.items()}).items()},
        "memory": memory,
        "http": served,
        "asgi": asgi_result,
    }
    found = report.targets(result, timings_meaningful=not args.smoke)
    result["targets"] = [t.as_dict() for t in found]
    return result, found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result, found = run(args)
    print(report.render(result, found))
    if result["asgi"]:
        print(result["asgi"]["text"])
        if "burst" in result["asgi"]:
            print(result["asgi"]["burst"]["text"])
    if args.smoke:
        print("(smoke mode: too few requests to judge timings; round trips are exact)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if args.strict and any(t.met is False for t in found) else 0
