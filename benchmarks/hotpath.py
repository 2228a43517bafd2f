"""``python -m benchmarks.hotpath c``: profile one in-process case with cProfile.

    python -m benchmarks.hotpath c --pin 1            # read path, top functions by own time
    python -m benchmarks.hotpath d --requests 50000 --sort cumulative
    python -m benchmarks.hotpath primitives --pin 1   # what one round trip costs, by layer
    python -m benchmarks.hotpath budget --pin 1       # the read's per-request budget
    python -m benchmarks.hotpath write --pin 1        # the write's, client and server

Builds the same stack as ``python -m benchmarks`` (own redis-server, users
signed in, cases checked), warms the case up, then runs it under cProfile
and prints the top of the profile. Per-call costs under cProfile are
inflated (each Python call pays the profiler's hook), so read the profile
for *where* the time goes and the harness for *how much*.

``primitives`` times the building blocks instead (median of 5 x 20,000):
one round trip on a bare socket with hiredis's parser, the same through
redis-py's client, and the store's own read and write -- the floor under
cases (b), (c) and (d).

``budget`` builds the authenticated read (WSGI c, ASGI C) up layer by layer,
each measured in place, so the layers add up to the case: the round trip on
a bare socket, the shell and the core, the store's read
(``benchmarks/budget.py``).

``write`` splits the one-key write (cases w and d, 200 B and 2 KB) into the
app's CPU and the Redis server's, and the server's merge script into its
layers (``benchmarks/writebudget.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import socket
import time
from collections.abc import Callable

from . import apps, budget, measure, writebudget
from .cases import Stack
from .run import _test_servers


def _time(call: Callable[[], object], n: int = 20_000) -> float:
    for _ in range(1000):
        call()
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            call()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return sorted(runs)[2]


def primitives(stack: Stack, port: int) -> None:
    """Print what one round trip costs at each layer, in microseconds."""
    import hiredis

    key = stack.shop.lifecycle.session_key(stack.sid)
    floor = stack.floor.client
    floor_key = apps.floor_key(stack.shop_value)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()

    def bare(*command: str | int) -> Callable[[], object]:
        packed = hiredis.pack_command(command)  # type: ignore[arg-type]

        def exchange() -> object:
            sock.sendall(packed)
            while True:
                reader.feed(sock.recv(65536))
                reply = reader.gets()
                if reply is not False:
                    return reply

        return exchange

    from sessionshare.store.lua import MERGE

    stack.store.save(key, changed={apps.WRITE_KEY: "0"}, ttl=1800)  # the script is cached
    counter = iter(range(10**9))
    rows = [
        ("bare socket + hiredis parser: GET", bare("GET", floor_key)),
        ("bare socket + hiredis parser: GETEX", bare("GETEX", key, "EX", 1800)),
        ("bare socket + hiredis parser: SET", bare("SET", floor_key + "x", "1", "EX", 1800)),
        ("bare socket + hiredis parser: EVALSHA merge",
         bare("EVALSHA", MERGE.sha, 1, key, 1800, "0", 1, 0, apps.WRITE_KEY, "1")),
        ("redis-py client: GET (what the floor uses)", lambda: floor.get(floor_key)),
        ("redis-py client: GETEX", lambda: floor.getex(key, ex=1800)),
        ("RedisStore.load (GETEX, parse)", lambda: stack.store.load(key, 1800)),
        ("RedisStore.save (EVALSHA merge of 1 key)", lambda: stack.store.save(
            key, changed={apps.WRITE_KEY: str(next(counter))}, ttl=1800)),
    ]
    for label, call in rows:
        print(f"  {label:<44} {_time(call):7.2f} us")
    sock.close()


def _requests(args: argparse.Namespace, default: int) -> int:
    """``--requests`` as given, else the mode's default (100 with ``--smoke``)."""
    if args.requests is not None:
        return int(args.requests)
    return 100 if args.smoke else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath")
    parser.add_argument("case", help="case id (a, b, c, d, e0, e, f, g, h), 'primitives' "
                        "'budget' or 'write'")
    parser.add_argument("--requests", type=int, default=None,
                        help="per case (default 20,000); budget: per repeat (4,000); "
                        "write: per repeat (3,000); --smoke: 100")
    parser.add_argument("--pin", type=int, metavar="CPU")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7, help="budget, write: repeats")
    parser.add_argument("--smoke", action="store_true", help="budget, write: a few requests only")
    parser.add_argument("--sizes", default=",".join(writebudget.SIZES),
                        help="write: the session sizes, comma-separated "
                        f"(of {', '.join(apps.WRITE_SIZES)}; default %(default)s)")
    args = parser.parse_args(argv)
    unknown = set(args.sizes.split(",")) - set(apps.WRITE_SIZES)
    if unknown:
        parser.error(f"--sizes: no write case at {', '.join(sorted(unknown))}")
    if args.pin is not None:
        measure.pin(0, {args.pin})
    servers = _test_servers()
    server = servers.RedisServer().start()
    try:
        if args.pin is not None:
            measure.pin(server.process.pid, {args.pin})
        stack = Stack(server.url)
        stack.check()
        if args.case == "budget":
            print(budget.run(stack, server.port, requests=_requests(args, 4000),
                             repeats=2 if args.smoke else args.repeats))
            stack.close()
            return 0
        if args.case == "write":
            print(writebudget.run(stack, requests=_requests(args, 3000),
                                  repeats=2 if args.smoke else args.repeats,
                                  sizes=args.sizes.split(",")))
            stack.close()
            return 0
        if args.case == "primitives":
            primitives(stack, server.port)
            stack.close()
            return 0
        case = {c.id: c for c in stack.cases()}[args.case]
        units = max(1, _requests(args, 20_000) // case.scale)
        case.loop(min(units, 2000))
        profiler = cProfile.Profile()
        profiler.runcall(case.loop, units)
        stats = pstats.Stats(profiler)
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
        stack.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
