"""How the harness measures: time, store round trips, commands, memory, CPU pinning.

- **Time**: the cases run interleaved -- repeat 1 of every case, then repeat
  2 of every case, ... -- so that a slow moment of the machine hits all of
  them alike; each case's figure is the median over the repeats of its mean
  microseconds per request.
- **Round trips** are counted on the client, by wrapping redis-py's
  ``send_packed_command`` (every command, pipeline or script call goes out
  through it exactly once per round trip) for every client in the process --
  ours and the peers', whoever built them. The wrapper is installed only
  during a separate counting pass, never while timing.
- **Commands** are counted on the server: ``INFO commandstats`` before and
  after the counting pass (the server is ours alone).
- **Memory**: resident set size (psutil) after a warm-up and after the
  measured requests, with a garbage collection before each reading.
- **Pinning** sets the CPU affinity of every thread of a process, as
  ``taskset -a -p`` does: a round trip between two CPUs costs 2-3x one on
  the same CPU on small VMs, so pinning makes the figures comparable.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psutil  # type: ignore[import-untyped]
import redis
from redis.connection import AbstractConnection

from .cases import Case


def pin(pid: int, cpus: set[int]) -> None:
    """Bind every thread of process ``pid`` (0: this one) to ``cpus``."""
    pid = pid or os.getpid()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that just ended
            pass


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Count the round trips of every redis-py connection while the block runs."""
    count = [0]
    original = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def command_calls(admin: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = admin.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if isinstance(value, dict)
    }


def count_store_work(case: Case, admin: redis.Redis, units: int) -> tuple[float, dict[str, float]]:
    """Round trips per request and server commands per request of ``case``."""
    before = command_calls(admin)
    with counting_round_trips() as count:
        case.loop(units)
    after = command_calls(admin)
    commands = {
        name: (calls - before.get(name, 0)) / units
        for name, calls in sorted(after.items())
        if name != "info" and calls != before.get(name, 0)
    }
    return count[0] / units, commands


def server_cpu(admin: redis.Redis) -> float:
    """Seconds of CPU the Redis server has used (``INFO cpu``: its own getrusage)."""
    info: dict[str, Any] = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def time_cases(cases: Sequence[Case], requests: int, repeats: int,
               admin: redis.Redis | None = None,
               cpu: dict[str, list[float]] | None = None,
               server: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Microseconds per unit of each case, one figure per repeat, cases interleaved.

    With ``admin`` and ``cpu``, also the CPU microseconds per unit into ``cpu``: this
    thread's (``time.thread_time``) plus the Redis server's (``INFO cpu``), read around
    each loop. Wall time on a machine other work shares counts the others' turns on the
    CPU too; CPU time counts only the work a request caused, in the client and in Redis.
    With ``server`` too, the Redis server's share alone goes there as well.
    """
    samples: dict[str, list[float]] = {case.id: [] for case in cases}
    if cpu is not None:
        cpu.update({case.id: [] for case in cases})
    if server is not None:
        server.update({case.id: [] for case in cases})
    for _ in range(repeats):
        for case in cases:
            units = max(1, requests // case.scale)
            gc.collect()
            if admin is not None and cpu is not None:
                before, server_before = time.thread_time(), server_cpu(admin)
            samples[case.id].append(case.loop(units) / units * 1e6)
            if admin is not None and cpu is not None:
                ran = time.thread_time() - before  # read first: INFO's own call is not the case's
                served = server_cpu(admin) - server_before
                cpu[case.id].append((ran + served) / units * 1e6)
                if server is not None:
                    server[case.id].append(served / units * 1e6)
    return samples


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rss_growth(case: Case, requests: int, warmup: int) -> tuple[float, float]:
    """Resident memory (MB) after ``warmup`` requests, and its growth over ``requests`` more."""
    process = psutil.Process()
    case.loop(warmup)
    gc.collect()
    before = process.memory_info().rss
    case.loop(requests)
    gc.collect()
    after = process.memory_info().rss
    return before / 2**20, (after - before) / 2**20
