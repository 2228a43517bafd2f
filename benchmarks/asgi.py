"""The ASGI cases: sessionshare's ASGI remote against a bare app, a floor and its peers.

Run by ``python -m benchmarks`` after the WSGI cases (``--no-asgi`` skips
them), or alone: ``python -m benchmarks.asgi [--smoke] [--pin CPU]``.

| case | what runs |
|---|---|
| (A) | the bare ASGI app |
| (B) | floor: split the cookie header, one ``redis.asyncio`` GET, ``json.loads`` |
| (B0) | the physical floor: the same GET on a bare asyncio stream, its reply cut by hand |
| (C) | ``sessionshare.asgi.RemoteSessionMiddleware``, signed in, reads one key |
| (CU) | the same over a user's ``redis.asyncio.Redis.from_url(url)`` (RESP3) |
| (D) | the same, writes one key (a new value each request) |
| (S) | Starlette's ``SessionMiddleware``: a signed cookie, no store |
| (T) | ``starsessions`` with its Redis store (only when it is installed) |

In process, every case runs on one event loop, called directly with a
prepared scope (interleaved repeats; the median). Round trips are counted by
wrapping ``redis.asyncio``'s ``read_response`` in a separate pass.
Over HTTP each case is served by ``uvicorn`` (one worker) on loopback and
driven by ``wrk``, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis
from redis.asyncio.connection import AbstractConnection

from sessionshare import SyncKey

from . import asgi_apps, http_load

CASES = {
    "A": "bare ASGI app",
    "B": "floor: cookie + async GET + json.loads",
    "B0": "stream floor: asyncio-stream GET + json",
    "C": "sessionshare ASGI remote, read 1 key",
    "CU": "(C) on a user's default client",
    "D": "sessionshare ASGI remote, write 1 key",
    "S": "Starlette SessionMiddleware (cookie)",
    "T": "starsessions (Redis store)",
}
HTTP_CASES = ("A", "B", "C", "S", "T")

Call = Callable[[], Awaitable[int]]


def _scope(cookie: str) -> dict[str, Any]:
    headers = [(b"host", b"news.bench"), (b"accept", b"text/html")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
            "root_path": "", "query_string": b"", "headers": headers,
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}


def caller(app: Any, cookie: str) -> Call:
    """One request to ``app`` as a server would make it; its status (the body is checked)."""
    template = _scope(cookie)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call() -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(template), receive, send)
        if sent[-1].get("body") not in (b"dark", b"ok!\n"):
            raise RuntimeError(f"the case did not answer from its session: {sent}")
        return int(sent[0]["status"])

    return call


class AsgiStack:
    """Every case over one Redis, each signed in through its own layer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.secret = SyncKey.generate()
        self.admin = redis.Redis.from_url(url)
        self.cookies: dict[str, str] = {}
        self.apps: dict[str, Any] = {}

    async def setup(self) -> None:
        for case in CASES:
            try:
                self.apps[case] = asgi_apps.build(case, self.url, self.secret)
            except RuntimeError:
                continue  # starsessions not installed
        self.cookies["A"] = ""
        self.admin.set(asgi_apps.FLOOR_PREFIX + "s1", json.dumps(asgi_apps.RECORD))
        self.cookies["B"] = self.cookies["B0"] = f"{asgi_apps.FLOOR_COOKIE}=s1"
        self.cookies["C"] = self.cookies["D"] = self.cookies["CU"] = (
            await self._sessionshare_cookie())
        self.cookies["S"] = await self._login_cookie("S", "session")
        if "T" in self.apps:
            self.cookies["T"] = await self._login_cookie("T", "session")

    async def _sessionshare_cookie(self) -> str:
        """A signed-in session this remote joined, as a hand-off leaves it."""
        middleware = self.apps["C"]
        lifecycle = middleware.lifecycle
        sid = lifecycle.ids.new()
        now = int(time.time())
        await middleware.store.save(
            lifecycle.session_key(sid),
            changed={k: json.dumps(v) for k, v in asgi_apps.RECORD.items()},
            meta={"c": now, "a": now, "o:" + asgi_apps.APP_URL: now}, ttl=3600, create=True,
        )
        return f"{lifecycle.cookie.name}={lifecycle.cookie_value(sid)}"

    async def _login_cookie(self, case: str, name: str) -> str:
        """Sign in through the layer's own code: an app behind it that fills the session."""
        app = self.apps[case]

        async def login(scope: Any, receive: Any, send: Any) -> None:
            scope["session"].update(asgi_apps.RECORD)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        inner = asgi_apps.reads_theme
        _swap_inner(app, inner, login)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(_scope(""), receive, send)
        _swap_inner(app, login, inner)
        for key, value in sent[0]["headers"]:
            if key.lower() == b"set-cookie" and value.startswith(name.encode() + b"="):
                return value.split(b";", 1)[0].decode()
        raise RuntimeError(f"({case}) set no session cookie: {sent[0]}")


def _swap_inner(app: Any, old: Any, new: Any) -> None:
    """Replace the innermost app of a middleware chain (``.app`` attributes) once."""
    node = app
    while getattr(node, "app", None) is not None:
        if node.app is old:
            node.app = new
            return
        node = node.app
    raise RuntimeError("inner app not found")


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Count every ``redis.asyncio`` connection's round trips while the block runs."""
    # Replies read, not writes: sessionshare's store writes a command without
    # send_packed_command (aexchange.send), and every exchange here reads one reply.
    count = [0]
    original = AbstractConnection.read_response

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return await original(self, *args, **kwargs)

    AbstractConnection.read_response = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        AbstractConnection.read_response = original  # type: ignore[method-assign]


async def measure(stack: AsgiStack, requests: int, repeats: int) -> dict[str, dict[str, Any]]:
    calls = {case: caller(app, stack.cookies[case]) for case, app in stack.apps.items()}
    rows: dict[str, dict[str, Any]] = {}
    for case, call in calls.items():
        for _ in range(50):  # connections, scripts, first-request set-ups
            assert await call() == 200, case
        with counting_round_trips() as count:
            for _ in range(100):
                await call()
        rows[case] = {"label": CASES[case], "round_trips": count[0] / 100, "samples_us": []}
    for row in rows.values():
        row["cpu_samples_us"] = []
    for _ in range(repeats):
        for case, call in calls.items():
            cpu, server = time.thread_time(), _server_cpu(stack.admin)
            started = time.perf_counter()
            for _ in range(requests):
                await call()
            rows[case]["samples_us"].append((time.perf_counter() - started) / requests * 1e6)
            used = time.thread_time() - cpu + _server_cpu(stack.admin) - server
            rows[case]["cpu_samples_us"].append(used / requests * 1e6)
    for row in rows.values():
        row["us"] = statistics.median(row["samples_us"])
        row["cpu_us"] = statistics.median(row["cpu_samples_us"])
    return rows


def _server_cpu(admin: redis.Redis) -> float:
    """Seconds of CPU the Redis server has used (as ``measure.server_cpu``; blocking, but
    only between timed loops)."""
    info: dict[str, Any] = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextmanager
def uvicorn(case: str, port: int, url: str, secret: str, cpus: set[int] | None,
            extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """One case served by ``uvicorn`` on ``port`` while the block runs.

    Its output goes to a temporary file (a pipe nobody reads would fill up and
    stall the server); an error it logged is raised when the block ends.
    """
    env = {**os.environ, "BENCH_CASE": case, "BENCH_REDIS_URL": url, "BENCH_SECRET": secret,
           "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path]), **(extra_env or {})}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.asgi_apps:from_env",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level",
             "warning", "--no-access-log", "--lifespan", "off",
             "--timeout-graceful-shutdown", "5"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.seek(0)
        errors = log.read().decode("utf-8", "replace")
    if "Traceback" in errors:
        raise RuntimeError(f"uvicorn serving ({case}) logged an error:\n{errors[-3000:]}")


def serve_and_drive(stack: AsgiStack, seconds: float, connections: int,
                    server_cpus: set[int] | None, client_cpus: set[int] | None,
                    wrk: str) -> dict[str, dict[str, Any]]:
    cases = [case for case in HTTP_CASES if case in stack.apps]
    ports = {case: free_port() for case in cases}
    found: dict[str, dict[str, Any]] = {}
    with ExitStack() as running:
        for case in cases:
            running.enter_context(uvicorn(case, ports[case], stack.url, stack.secret,
                                          server_cpus))
        for case in cases:
            http_load.wait_ready(ports[case], "/", stack.cookies[case])
        for case in cases:
            print(f"HTTP (uvicorn): ({case}) {seconds:g} s ...", file=sys.stderr, flush=True)
            result = http_load.drive(wrk, ports[case], "/", stack.cookies[case], seconds,
                                     connections, client_cpus)
            found[case] = vars(result)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def suite_servers() -> Any:
    sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
    import servers

    return servers


def render(rows: dict[str, dict[str, Any]], served: dict[str, dict[str, Any]]) -> str:
    lines = ["", "ASGI (one event loop, in process): median us per request",
             "  case  what                                   us/req  overhead   cpu us  trips"]
    bare = rows["A"]["us"]
    for case, row in rows.items():
        overhead = "-" if case == "A" else f"{row['us'] - bare:8.1f}"
        lines.append(f"  {'(' + case + ')':<5} {row['label']:<38} {row['us']:7.1f}  {overhead:>8}  "
                     f"{row['cpu_us']:7.1f}  {row['round_trips']:.2f}")
    if "T" not in rows:
        lines.append("  (T)  starsessions: not installed (pip install starsessions)")
    if served:
        lines.append("over HTTP: uvicorn, one worker each, wrk on loopback")
        lines.append("  case     req/s   p50 ms   p99 ms  errors")
        for case, result in served.items():
            lines.append(f"  ({case})  {result['requests_per_second']:8.0f} "
                         f"{result['p50_ms']:8.2f} {result['p99_ms']:8.2f}  "
                         f"{result['errors'] or '-'}")
    over = {case: row["us"] - bare for case, row in rows.items()}
    lines.append("targets (issue 10):")
    ratio = over["C"] / over["B"]
    lines.append(f"  (C) overhead / floor (B) overhead        {ratio:.2f}x  <= 1.15x")
    if "T" in over:
        lines.append(f"  (C) overhead / starsessions (T) overhead {over['C'] / over['T']:.2f}x  "
                     "<= 0.5x")
    lines.append(f"  round trips (C) per request              {rows['C']['round_trips']:.2f}  == 1")
    return "\n".join(lines)


def run(url: str, *, requests: int, repeats: int, http_seconds: float | None,
        connections: int = 4, server_cpus: set[int] | None = None,
        client_cpus: set[int] | None = None, wrk: str | None = None) -> dict[str, Any]:
    stack = AsgiStack(url)

    async def main() -> dict[str, dict[str, Any]]:
        await stack.setup()
        return await measure(stack, requests, repeats)

    async def close() -> None:
        if "B0" in stack.apps:
            await stack.apps["B0"].close()  # the stream floor's one connection

    async def measured() -> dict[str, dict[str, Any]]:
        try:
            return await main()
        finally:
            await close()

    rows = asyncio.run(measured())
    served = {}
    if http_seconds and wrk is not None:
        served = serve_and_drive(stack, http_seconds, connections, server_cpus, client_cpus, wrk)
    stack.admin.close()
    return {"inprocess": rows, "http": served, "text": render(rows, served)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asgi", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few requests, no HTTP")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--http-seconds", type=float, default=5.0)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args(argv)
    servers = suite_servers()
    server = servers.RedisServer().start()
    try:
        wrk = None if args.smoke or args.no_http else http_load.find_wrk()
        result = run(server.url, requests=100 if args.smoke else args.requests,
                     repeats=2 if args.smoke else args.repeats,
                     http_seconds=None if args.smoke else args.http_seconds, wrk=wrk)
    finally:
        server.stop()
    print(result["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
