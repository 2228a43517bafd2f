"""A burst of concurrent requests to one uvicorn worker: every answer, and the loop's lag.

    python -m benchmarks.burst [--requests 1000] [--rounds 3] [--pin CPU]

For the bare app (A), the async floor (B) and sessionshare's ASGI remote (C)
of ``benchmarks/asgi.py``, each served by its own ``uvicorn`` (one worker) on
loopback over one real Redis:

1. the client opens ``--requests`` keep-alive connections at once;
2. it resets the server's lag meter (``GET /_lag``, see
   :class:`benchmarks.asgi_apps.LoopLag`), then writes one authenticated
   ``GET /`` on every connection without waiting, and reads every answer;
3. it reads the meter: the longest time a ready callback waited behind one
   iteration of the server's event loop while the burst ran.

Every answer must be a 200 carrying the session's value; the table gives, per
case, the burst's wall time and the loop's worst lag over ``--rounds`` rounds
(median and max). The client runs in this process on its own event loop;
with ``--pin CPU`` the servers and redis-server share that CPU and the client
runs on the others. Traffic never leaves 127.0.0.1, and every round ends by
itself (a 60 s limit per round).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import os
import statistics
import sys
import time
from contextlib import ExitStack
from typing import Any

from . import asgi

CASES = ("A", "B", "C")
ROUND_LIMIT = 60.0


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def burst(port: int, cookie: str, count: int) -> tuple[list[tuple[int, bytes]], float]:
    """``count`` requests written at once on as many open connections; answers and seconds."""
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(count))
    )
    request = ("GET / HTTP/1.1\r\nHost: news.bench\r\nAccept: text/html\r\n"
               + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n").encode()
    lag_meter(port)  # forget the lag of opening the connections
    started = time.perf_counter()
    for _, writer in opened:
        writer.write(request)
    answers = await asyncio.gather(*(_answer(reader) for reader, _ in opened))
    elapsed = time.perf_counter() - started
    for _, writer in opened:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in opened),
                         return_exceptions=True)
    return list(answers), elapsed


def lag_meter(port: int) -> tuple[float, float]:
    """The server's worst loop lag since the last reading, in wall and CPU ms; resets it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/_lag")
        wall, cpu = conn.getresponse().read().split()
        return float(wall), float(cpu)
    finally:
        conn.close()


def run(url: str, *, requests: int, rounds: int, server_cpus: set[int] | None = None,
        client_cpus: set[int] | None = None) -> dict[str, Any]:
    stack = asgi.AsgiStack(url)
    asyncio.run(stack.setup())
    ports = {case: asgi.free_port() for case in CASES}
    found: dict[str, dict[str, Any]] = {
        case: {"lag_ms": [], "cpu_lag_ms": [], "seconds": []} for case in CASES
    }
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    with ExitStack() as running:
        for case in CASES:
            running.enter_context(asgi.uvicorn(case, ports[case], url, stack.secret,
                                               server_cpus, extra_env={"BENCH_LAG": "1"}))
        for case in CASES:
            asgi.http_load.wait_ready(ports[case], "/", stack.cookies[case])
        for _ in range(rounds):
            for case in CASES:  # interleaved: a slow moment hits every case alike
                answers, seconds = asyncio.run(asyncio.wait_for(
                    burst(ports[case], stack.cookies[case], requests), ROUND_LIMIT))
                lag, cpu_lag = lag_meter(ports[case])
                wrong = [a for a in answers if a[0] != 200 or a[1] not in (b"dark", b"ok!\n")]
                if wrong:
                    raise RuntimeError(f"({case}) {len(wrong)} of {requests} answers were "
                                       f"wrong, e.g. {wrong[0]}")
                found[case]["lag_ms"].append(lag)
                found[case]["cpu_lag_ms"].append(cpu_lag)
                found[case]["seconds"].append(seconds)
    stack.admin.close()
    return {"requests": requests, "rounds": rounds, "cases": found,
            "text": render(found, requests)}


def server_kind() -> str:
    """What uvicorn runs on here: its HTTP parser and event loop (it takes the faster
    ones, httptools and uvloop, when they are installed: ``uvicorn[standard]``)."""
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn with {parser} and {loop}"


def render(found: dict[str, dict[str, Any]], requests: int) -> str:
    lines = ["", f"{requests} concurrent requests to one worker ({server_kind()}): "
             "the loop's worst lag",
             "  (median / max of the rounds; wall time, and the loop's own CPU time)",
             "  case what                                  burst ms  wall lag ms    CPU lag ms"]
    for case, row in found.items():
        lines.append(
            f"  ({case})  {asgi.CASES[case]:<38} {statistics.median(row['seconds']) * 1000:6.0f}"
            f"  {statistics.median(row['lag_ms']):5.1f} /{max(row['lag_ms']):5.1f}"
            f"  {statistics.median(row['cpu_lag_ms']):5.1f} /{max(row['cpu_lag_ms']):5.1f}")
    lines.append(f"target (issue 10): (C) lag < 50 ms -> wall {max(found['C']['lag_ms']):.1f} ms, "
                 f"CPU {max(found['C']['cpu_lag_ms']):.1f} ms; the bare app (A) under the same "
                 f"burst: {max(found['A']['lag_ms']):.1f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.burst", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pin", type=int, metavar="CPU",
                        help="servers and redis-server on CPU, the client on the others")
    args = parser.parse_args(argv)
    server_cpus = client_cpus = None
    if args.pin is not None:
        server_cpus = {args.pin}
        client_cpus = (os.sched_getaffinity(0) - server_cpus) or server_cpus
    servers = asgi.suite_servers()
    server = servers.RedisServer().start()
    try:
        if server_cpus and server.process is not None:
            os.sched_setaffinity(server.process.pid, server_cpus)
        result = run(server.url, requests=args.requests, rounds=args.rounds,
                     server_cpus=server_cpus, client_cpus=client_cpus)
    finally:
        server.stop()
    print(result["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
