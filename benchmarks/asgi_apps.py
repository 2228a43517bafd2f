"""The ASGI benchmark cases' apps, built the same way in process and under uvicorn.

Every app answers the value ``theme`` of the same session record (``"dark"``),
or 4 bytes for the bare app. ``from_env`` builds one case's app from
``BENCH_CASE``, ``BENCH_REDIS_URL`` and ``BENCH_SECRET`` (the sync key, and the
signing secret of Starlette's cookie sessions): what uvicorn serves, with
``--factory``.

    python -m uvicorn --factory benchmarks.asgi_apps:from_env --port 8000
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio

from sessionshare import AsyncRedisStore
from sessionshare.asgi import RemoteSessionMiddleware

APP_URL = "http://news.bench"
IDP_URL = "http://id.bench/login"
RECORD = {"user": "alice", "theme": "dark", "cart": [3, 1, 4, 1, 5]}
FLOOR_PREFIX = "floor:"
FLOOR_COOKIE = "floor"


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def bare(scope: Any, receive: Any, send: Any) -> None:
    """(A): no session at all."""
    await _answer(send, b"ok!\n")


async def reads_theme(scope: Any, receive: Any, send: Any) -> None:
    """The app behind every session layer: reads one key of ``scope["session"]``."""
    await _answer(send, str(scope["session"]["theme"]).encode())


class WritesOne:
    """The app behind (D): writes one key, a new value each request."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.count += 1
        scope["session"]["n"] = self.count
        await _answer(send, str(scope["session"]["theme"]).encode())


def floor(url: str) -> Any:
    """(B): split the cookie header, one ``redis.asyncio`` GET, ``json.loads``, answer."""
    # redis-py's plain pool, the cheapest per request; room for a burst of 1,000 requests
    # at once (its default of 100 raises past that, benchmarks/burst.py).
    client = redis.asyncio.Redis.from_url(url, protocol=2, max_connections=1024)
    marker = FLOOR_COOKIE + "="

    async def app(scope: Any, receive: Any, send: Any) -> None:
        sid = ""
        for name, value in scope["headers"]:
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    part = part.strip()
                    if part.startswith(marker):
                        sid = part[len(marker):]
        raw = await client.get(FLOOR_PREFIX + sid)
        record = json.loads(raw) if raw else {}
        await _answer(send, str(record.get("theme", "")).encode())

    return app


async def read_bulk_stream(reader: asyncio.StreamReader) -> bytes | None:
    """One bulk-string reply read from an asyncio stream (None for a nil one); anything
    else raises, and so does the server closing the line (``readexactly``)."""
    head = await reader.readline()
    if head[:1] != b"$":
        raise RuntimeError(f"unexpected reply {head[:40]!r}")
    size = int(head[1:-2])
    if size < 0:
        return None
    return (await reader.readexactly(size + 2))[:-2]


def stream_floor(url: str) -> Any:
    """(B0): the physical floor under (B) -- the same steps with no client library: the
    ``GET`` written on an asyncio stream and its bulk-string reply cut out by hand.

    One connection, opened on first use by the loop that serves (a request at a time:
    the in-process measurement; under a burst this floor would interleave replies, so it
    is never served over HTTP).
    """
    where = urlsplit(url)
    marker = FLOOR_COOKIE + "="
    line: list[Any] = []

    async def get(key: bytes) -> bytes | None:
        if not line:
            line.extend(await asyncio.open_connection(where.hostname, where.port or 6379))
        reader, writer = line
        writer.write(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        return await read_bulk_stream(reader)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        sid = ""
        for name, value in scope["headers"]:
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    part = part.strip()
                    if part.startswith(marker):
                        sid = part[len(marker):]
        raw = await get((FLOOR_PREFIX + sid).encode())
        record = json.loads(raw) if raw else {}
        await _answer(send, str(record.get("theme", "")).encode())

    async def close() -> None:
        if line:
            line[1].close()
            line.clear()

    app.close = close  # type: ignore[attr-defined]
    return app


def sessionshare_app(url: str, key: str, write: bool = False,
                     users_client: bool = False) -> RemoteSessionMiddleware:
    """(C) / (D): the ASGI remote, a protected path, a signed-in session; (CU) the same
    store over a user's own client with redis-py's defaults (RESP3 in redis-py 8)."""
    store = (AsyncRedisStore(redis.asyncio.Redis.from_url(url)) if users_client
             else AsyncRedisStore.from_url(url))
    return RemoteSessionMiddleware(
        WritesOne() if write else reads_theme, store=store, key=key,
        app_url=APP_URL, idp_url=IDP_URL, cookie_secure=False, quiet_startup=True,
    )


def starlette_app(secret: str) -> Any:
    """(S): Starlette's ``SessionMiddleware`` -- the session in a signed cookie, no store."""
    from starlette.middleware.sessions import SessionMiddleware

    return SessionMiddleware(reads_theme, secret_key=secret, https_only=False)


def starsessions_app(url: str) -> Any | None:
    """(T): starsessions with its Redis store, or None when it is not installed."""
    try:
        from starsessions import SessionAutoloadMiddleware, SessionMiddleware
        from starsessions.stores.redis import RedisStore
    except ImportError:
        return None
    return SessionMiddleware(SessionAutoloadMiddleware(reads_theme),
                             store=RedisStore(connection=redis.asyncio.Redis.from_url(url)),
                             cookie_https_only=False)


def build(case: str, url: str, secret: str) -> Any:
    """The app of ``case``: A, B, B0, C, CU, D, S or T."""
    if case == "A":
        return bare
    if case == "B":
        return floor(url)
    if case == "B0":
        return stream_floor(url)
    if case in ("C", "D", "CU"):
        return sessionshare_app(url, secret, write=case == "D", users_client=case == "CU")
    if case == "S":
        return starlette_app(secret)
    app = starsessions_app(url)
    if app is None:
        raise RuntimeError("starsessions is not installed")
    return app


class LoopLag:
    """Wraps a case's app to measure its event loop's lag, as the server runs it.

    A task wakes every millisecond and keeps the longest overshoot: how long a
    ready callback (a new connection, a reply) waited behind the work of one
    loop iteration. It keeps the overshoot twice: in wall time (what a client
    feels, but also any time the OS gave the CPU to another process) and in
    the thread's CPU time (the loop's own work only, steady on a shared
    machine). ``GET /_lag`` answers both, the longest since the last such GET,
    as ``wall_ms cpu_ms``, and starts over; every other request goes to the app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._watcher: Any = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, before_cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - before_cpu)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())
        if scope["type"] == "http" and scope["path"] == "/_lag":
            answer = f"{self.worst * 1000:.3f} {self.worst_cpu * 1000:.3f}"
            self.worst = self.worst_cpu = 0.0
            await _answer(send, answer.encode())
            return
        await self.app(scope, receive, send)


def from_env() -> Any:
    """uvicorn's ``--factory`` entry point (``BENCH_LAG=1``: wrapped in :class:`LoopLag`)."""
    app = build(os.environ["BENCH_CASE"], os.environ["BENCH_REDIS_URL"],
                os.environ["BENCH_SECRET"])
    return LoopLag(app) if os.environ.get("BENCH_LAG") == "1" else app
