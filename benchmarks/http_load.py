"""Over HTTP: gunicorn (sync workers) serving one case, driven by ``wrk`` on loopback.

Each case gets its own gunicorn (``--workers 2 --worker-class sync``) on a
free 127.0.0.1 port, its app built in each worker by
``benchmarks.apps:http_app(case)``. ``wrk`` then sends GETs with the case's
session cookie for a fixed time (``--latency`` for the p99) and stops by
itself, case after case in rounds; the servers are stopped at the end.
Traffic never leaves loopback.

When the harness pins (``--pin CPU``), gunicorn's workers share that CPU
with redis-server and ``wrk`` runs on the other CPUs, so the load generator
does not compete with the server it measures.

``wrk`` is Debian's package; :func:`find_wrk` installs it with apt-get when
it is missing (and says so).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import apps

REPO = Path(__file__).resolve().parent.parent
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


@dataclass
class HttpResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    errors: str  # non-2xx responses / socket errors as wrk reports them, "" if none


def find_wrk(log: bool = True) -> str:
    """The ``wrk`` binary, installed from Debian's package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if log:
        print("wrk not found: installing Debian's package (apt-get install -y wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


def _affinity(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` binding the child to ``cpus`` (its children inherit it)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _get(port: int, path: str, cookie: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@contextmanager
def gunicorn(
    case: str, port: int, redis_url: str, sync_key: str, cpus: set[int] | None
) -> Iterator[subprocess.Popen[bytes]]:
    """A gunicorn serving ``case`` on ``127.0.0.1:port``, stopped on exit."""
    env = {
        **os.environ,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_SYNC_KEY": sync_key,
        "PYTHONPATH": str(REPO),
    }
    from .run import _test_servers  # (run imports this module)

    args = [
        sys.executable, "-m", "gunicorn", f'benchmarks.apps:http_app("{case}")',
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
        "--log-level", "warning", "--chdir", str(REPO), *_test_servers().gunicorn_alone(),
    ]
    process = subprocess.Popen(args, env=env, preexec_fn=_affinity(cpus))
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_ready(port: int, path: str, cookie: str, timeout: float = 20.0) -> None:
    """Until the server answers 200 for the case's request (a redirect would be a bug)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = _get(port, path, cookie)
            if status == 200:
                return
            raise RuntimeError(f"gunicorn answered {status} for {path}, expected 200")
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn on port {port} did not come up") from None
            time.sleep(0.1)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> HttpResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", output, re.M)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = "; ".join(
        line.strip() for line in output.splitlines()
        if line.strip().startswith(("Non-2xx", "Socket errors"))
    )
    return HttpResult(
        float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)),
        _ms(total.group(2)) / 1000, errors,
    )


def drive(
    wrk: str, port: int, path: str, cookie: str, seconds: float, connections: int,
    cpus: set[int] | None,
) -> HttpResult:
    """``wrk`` against ``127.0.0.1:port`` for ``seconds``; it stops by itself."""
    args = [
        wrk, "--threads", "1", "--connections", str(connections),
        "--duration", f"{max(1, round(seconds))}s", "--latency", "--timeout", "5s",
    ]
    if cookie:
        args += ["--header", f"Cookie: {cookie}"]
    args.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=seconds + 60,
        preexec_fn=_affinity(cpus),
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def combine(rounds: list[HttpResult]) -> HttpResult:
    """One figure from a case's rounds: requests/s over the whole time, the worst p99."""
    total = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    return HttpResult(
        requests_per_second=round(total / seconds, 1),
        p50_ms=round(sum(r.p50_ms for r in rounds) / len(rounds), 3),
        p99_ms=max(r.p99_ms for r in rounds),
        requests=total,
        seconds=round(seconds, 2),
        errors="; ".join(r.errors for r in rounds if r.errors),
    )


def run_cases(
    cookies: dict[str, str], *, redis_url: str, sync_key: str, ports: list[int],
    seconds: float, rounds: int, connections: int, server_cpus: set[int] | None,
    client_cpus: set[int] | None, wrk: str, log: Callable[[str], None],
) -> dict[str, HttpResult]:
    """Serve every case at once (idle servers cost nothing) and drive them in turns.

    Each case gets ``rounds`` turns of ``seconds / rounds``, in the order
    a, b, c, e, a, b, c, e, ...: a slow moment of the machine then hits every
    case alike instead of whichever ran during it.
    """
    turn = seconds / rounds
    served = [(case, cookie, port) for (case, cookie), port in zip(cookies.items(), ports,
                                                                     strict=True)]
    results: dict[str, list[HttpResult]] = {case: [] for case in cookies}
    with ExitStack() as stack:
        for case, _cookie, port in served:
            stack.enter_context(gunicorn(case, port, redis_url, sync_key, server_cpus))
        for _case, cookie, port in served:
            wait_ready(port, apps.READ_PATH, cookie)
        for number in range(rounds):
            for case, cookie, port in served:
                log(f"HTTP: ({case}) round {number + 1}/{rounds}, {turn:g} s ...")
                results[case].append(
                    drive(wrk, port, apps.READ_PATH, cookie, turn, connections, client_cpus)
                )
    return {case: combine(found) for case, found in results.items()}
