"""A soak: 64 connections, 10 % writes, against gunicorn -- short in CI, a minute by hand.

The IdP and the shop run under gunicorn (2 ``gthread`` workers each) over
one real Redis; the profile's users sign in through the real hand-off, then
64 keep-alive connections drive them with the soak mix: 80 % shop page
reads, 10 % session writes, 10 % IdP page reads. CI's row runs 4 s over 128
sessions (the wiring, the counts, no errors); the ``long`` profile's row is
a minute over 1,000, deselected unless asked for::

    python -m pytest -m long tests/reliability/test_soak.py -s

``SESSIONSHARE_SOAK_SECONDS`` and ``SESSIONSHARE_SOAK_SESSIONS`` override
either row's length and size.

Every answer must be the right user's page -- zero errors of any kind -- and
every write a user saw acknowledged is in Redis at the end.

Latency (p50/p99, measured by the client over loopback) for the first and
the last stretch of the run, and every worker's resident memory at the
start and the end, are printed and kept in tests/artifacts/reliability.txt.
Latency is reported, not asserted (speed belongs to the benchmarks); memory
must stay flat, since a leak per request would show within a minute.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from sessionshare import RedisStore

from . import loadgen
from .figures import report
from .loadgen import OK, Outcome, percentile
from .served import ServedDeployment

CONNECTIONS = 64
#: (seconds, sessions) of each profile's row.
PROFILES = [
    pytest.param(4.0, 128, id="ci"),
    pytest.param(60.0, 1000, id="long", marks=pytest.mark.long),
]
#: Allowed growth of a worker's resident memory over the run: allocator noise, not a leak.
MEMORY_SLACK = 8 * 1024 * 1024
MiB = 1024 * 1024


def _window(outcomes: list[Outcome], start: float, end: float) -> dict[str, float]:
    latencies = [o.seconds * 1000 for o in outcomes if start <= o.started < end]
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


@pytest.mark.parametrize(("seconds", "sessions"), PROFILES)
def test_soak(redis_url: str, seconds: float, sessions: int) -> None:
    seconds = float(os.environ.get("SESSIONSHARE_SOAK_SECONDS", seconds))
    sessions = int(os.environ.get("SESSIONSHARE_SOAK_SESSIONS", sessions))
    warm_up = min(5.0, seconds / 6)
    with ServedDeployment(redis_url) as site:
        started = time.monotonic()
        users = loadgen.sign_in_many(site, sessions, threads=16)
        sign_in_seconds = time.monotonic() - started
        pids = site.worker_pids()

        # Warm up (imports, pools, allocator arenas), then measure from a steady start --
        # every worker's: kept-alive connections can all land on one worker of a server,
        # which would leave the other to warm up inside the measured run.
        warm = loadgen.run(site, users, threads=CONNECTIONS, seconds=warm_up, mix=loadgen.SOAK_MIX)
        assert all(o.verdict == OK for o in warm), loadgen.summary(warm)
        served_by = loadgen.warm_each_worker(site, users)
        memory_start = {s.role: s.worker_rss() for s in site.servers}
        samples: list[dict[int, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(seconds / 10):
                samples.append(site.shop.worker_rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            outcomes = loadgen.run(site, users, threads=CONNECTIONS, seconds=seconds,
                                   mix=loadgen.SOAK_MIX)
        finally:
            stop.set()
            sampler.join(timeout=10)
        memory_end = {s.role: s.worker_rss() for s in site.servers}
        assert site.worker_pids() == pids, "a gunicorn worker was restarted"
        logs = site.log_text()

    figures = loadgen.summary(outcomes)
    errors = sum(o.verdict != OK for o in outcomes)
    first, last = outcomes[0].started, outcomes[-1].started
    stretch = max(seconds / 6, 1.0)
    growth = {
        role: {pid: memory_end[role][pid] - memory_start[role][pid] for pid in memory_start[role]}
        for role in memory_start
    }
    report("soak", {
        "seconds": seconds, "connections": CONNECTIONS, "sessions": sessions,
        "sign_in_s": round(sign_in_seconds, 1), **figures, "errors": errors,
        "start": _window(outcomes, first, first + stretch),
        "end": _window(outcomes, last - stretch, last + 1),
        "p99_ms_by_stretch": [_window(outcomes, first + i * stretch,
                                      first + (i + 1) * stretch)["p99_ms"] for i in range(6)],
        "requests_by_stretch": [_window(outcomes, first + i * stretch,
                                        first + (i + 1) * stretch)["requests"] for i in range(6)],
        "warm_up_answers": {role: dict(counts) for role, counts in served_by.items()},
        "rss_start_mib": {r: [round(v / MiB, 1) for v in m.values()]
                          for r, m in memory_start.items()},
        "rss_end_mib": {r: [round(v / MiB, 1) for v in m.values()] for r, m in memory_end.items()},
        "shop_rss_samples_mib": [round(sum(s.values()) / MiB, 1) for s in samples],
    })

    assert errors == 0, figures["verdicts"]
    assert len(outcomes) >= 10 * seconds, "the soak hardly ran"
    assert "Traceback" not in logs, logs[-3000:]
    for role, workers in growth.items():
        for pid, grown in workers.items():
            assert grown <= MEMORY_SLACK, f"{role} worker {pid} grew {grown / MiB:.1f} MiB"

    # Every write a user saw acknowledged is what Redis holds now.
    store = RedisStore.from_url(redis_url)
    lifecycle = site.lifecycle()
    stale = 0
    for user in users:
        record = store.load(lifecycle.session_key(user.sid), 1800)
        assert record is not None
        stale += int(json.loads(record.fields.get("n", '"0"'))) != user.acknowledged
    store.close()
    assert stale == 0, f"{stale} users' last acknowledged write is not in Redis"
