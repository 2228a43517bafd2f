"""Over HTTP: gunicorn (sync workers) serving one case, driven by ``wrk`` on loopback.

Each case gets a fresh gunicorn (``--workers 2 --worker-class sync``) on a
free 127.0.0.1 port, its app built in each worker by
``benchmarks.apps:http_app(case)``. ``wrk`` then sends GETs with the case's
session cookie for a fixed time (``--latency`` for the p99) and stops by
itself; gunicorn is stopped right after. Traffic never leaves loopback.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import apps

REPO = Path(__file__).resolve().parent.parent
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class HttpResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
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
    args = [
        sys.executable, "-m", "gunicorn", f'benchmarks.apps:http_app("{case}")',
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
        "--log-level", "warning", "--chdir", str(REPO),
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
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> HttpResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = "; ".join(
        line.strip() for line in output.splitlines()
        if line.strip().startswith(("Non-2xx", "Socket errors"))
    )
    return HttpResult(
        float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), errors
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


def run_case(
    case: str, cookie: str, *, redis_url: str, sync_key: str, port: int, seconds: float,
    connections: int, server_cpus: set[int] | None, client_cpus: set[int] | None, wrk: str,
) -> HttpResult:
    with gunicorn(case, port, redis_url, sync_key, server_cpus):
        wait_ready(port, apps.READ_PATH, cookie)
        return drive(wrk, port, apps.READ_PATH, cookie, seconds, connections, client_cpus)
