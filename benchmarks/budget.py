"""``python -m benchmarks.hotpath budget``: where the authenticated read's time goes, by layer.

    python -m benchmarks.hotpath budget --pin 1       # WSGI (c) and ASGI (C), one sitting

The read (case c under WSGI, C under ASGI) is built up one layer at a time,
each layer measured *in place* -- as part of a whole request, with the
caches as a round trip leaves them -- and the layers telescope, so their sum
is the case's own figure:

1. the bare app (a / A);
2. \\+ one round trip on a bare socket (an asyncio stream under ASGI): the
   same ``GETEX`` the store sends, written and cut by hand, before the bare
   app runs -- the syscalls and Redis's turn, what no library can avoid;
3. \\+ the shell and the core: the middleware itself, its store answering
   with that same bare round trip and the record already parsed;
4. \\+ the store's read: the store proper instead (redis-py's connection
   object and parser, our packing, the line, the record's parse) -- the
   whole case.

Then the store's read alone, out of any request, splits layer 4 into what
redis-py's connection costs (its ``send_packed_command``/``read_response``
with hiredis, on a connection of its own) and what the store adds around it.
Figures are CPU microseconds per request -- this thread's plus the Redis
server's, as issue 27's targets are judged -- the median of interleaved
repeats, all in one sitting.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from sessionshare.store.base import SessionRecord
from sessionshare.store.redisproto import parse_record

from . import apps, asgi, asgi_apps, measure
from .cases import Case, Loop, Reply, Stack, call, environ_for, request_loop

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

class _BareLine:
    """One ``GETEX`` at a time on a bare socket: packed once, the bulk reply cut by hand."""

    def __init__(self, port: int, key: str, ttl: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.packed = _getex(key, ttl)

    def getex(self) -> bytes:
        self.sock.sendall(self.packed)
        return _held(apps.read_bulk(self.sock))

    def close(self) -> None:
        self.sock.close()


def _held(record: bytes | None) -> bytes:
    """The session's record, which every layer reads: a nil reply is a broken budget."""
    if record is None:
        raise RuntimeError("the budget's session is not in the store")
    return record


def _getex(key: str, ttl: int) -> bytes:
    parts = [b"GETEX", key.encode(), b"EX", str(ttl).encode()]
    return b"*4\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _cpu_us(loops: dict[str, Loop], requests: int, repeats: int,
            admin: redis.Redis) -> dict[str, float]:
    """CPU microseconds per call of each loop (this thread + Redis), median of repeats,
    the loops interleaved (:func:`measure.time_cases`), after a warm-up."""
    for loop in loops.values():
        loop(min(requests, 1000))
    cpu: dict[str, list[float]] = {}
    measure.time_cases([Case(name, name, loop) for name, loop in loops.items()], requests,
                       repeats, admin, cpu)
    return {name: measure.median(values) for name, values in cpu.items()}


def _calls(call: Callable[[], object]) -> Loop:
    def loop(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - started

    return loop


# -- WSGI ------------------------------------------------------------------------------


def wsgi(stack: Stack, port: int, requests: int, repeats: int) -> dict[str, float]:
    """The WSGI read's layers (us per request); keys as :func:`render` reads them."""
    lifecycle = stack.shop.lifecycle
    key = lifecycle.session_key(stack.sid)
    found = lifecycle.ids.lookup(stack.sid)
    assert found is not None
    ttl = found[1]
    record = stack.store.load(key, ttl)
    if record is None:
        raise RuntimeError("the benchmark session is not in the store")
    bare = _BareLine(port, key, ttl)

    def round_trip_then(app: WSGIApplication) -> WSGIApplication:
        def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            bare.getex()
            return app(environ, start_response)

        return middleware

    class AnsweredStore:
        """The store's read as a bare round trip, answered with the record parsed already."""

        def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
            bare.getex()
            return record

    shell = apps.shop(stack.store, stack.sync_key)
    shell.store = AnsweredStore()  # type: ignore[assignment]
    read = environ_for(apps.SHOP + apps.READ_PATH, stack.cookie)
    client = redis.Redis.from_url(stack.redis_url, protocol=2, socket_timeout=1.0)
    conn: Any = client.connection_pool.get_connection()
    packed = conn.pack_command("GETEX", key, "EX", ttl)

    def redis_py() -> object:
        conn.send_packed_command(packed)
        return conn.read_response()

    raw = bare.getex()
    # Each stand-in layer answers what the whole read does, from the session it read.
    for layer, answer in ((round_trip_then(apps.hello), b"hello"), (shell, b"dark")):
        reply = Reply()
        if call(layer, read, reply) != answer or not reply.status.startswith("200"):
            raise RuntimeError(f"a budget layer answered {reply.status}, not 200 {answer!r}")
    cases = {case.id: case.loop for case in stack.cases() if case.id in ("a", "b0", "b", "c")}
    loops = {
        "app": cases["a"],
        "round_trip": request_loop(round_trip_then(apps.hello), read),
        "shell": request_loop(shell, read),
        "whole": cases["c"],
        "bare_alone": _calls(bare.getex),
        "conn_alone": _calls(redis_py),
        "store_alone": _calls(lambda: stack.store.load(key, ttl)),
        "parse_alone": _calls(lambda: parse_record(raw)),
        "floor_raw": cases["b0"],
        "floor": cases["b"],
    }
    try:
        return _cpu_us(loops, requests, repeats, stack.admin)
    finally:
        client.connection_pool.release(conn)
        client.close()
        bare.close()


# -- ASGI ------------------------------------------------------------------------------


class _StreamLine:
    """:class:`_BareLine` on an asyncio stream (what the stream floor B0 does)."""

    def __init__(self, port: int, key: str, ttl: int) -> None:
        self.port = port
        self.packed = _getex(key, ttl)
        self.line: list[Any] = []

    async def getex(self) -> bytes:
        if not self.line:
            self.line.extend(await asyncio.open_connection("127.0.0.1", self.port))
        reader, writer = self.line
        writer.write(self.packed)
        return _held(await asgi_apps.read_bulk_stream(reader))

    def close(self) -> None:
        if self.line:
            self.line[1].close()


def _async_loop(call: Callable[[], Awaitable[object]],
                run: Callable[[Awaitable[float]], float]) -> Loop:
    async def timed(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await call()
        return time.perf_counter() - started

    return lambda n: run(timed(n))


def asgi_budget(url: str, port: int, requests: int, repeats: int,
                admin: redis.Redis) -> dict[str, float]:
    """The ASGI read's layers (us per request), on one event loop."""
    loop = asyncio.new_event_loop()
    stack = asgi.AsgiStack(url)
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        loop.run_until_complete(stack.setup())
        middleware = stack.apps["C"]
        cookie = stack.cookies["C"]
        sid = middleware.lifecycle.session_id_in(cookie)
        found = middleware.lifecycle.ids.lookup(sid)
        key = middleware.lifecycle.session_key(sid)
        ttl = found[1]
        record: SessionRecord | None = loop.run_until_complete(middleware.store.load(key, ttl))
        if record is None:
            raise RuntimeError("the benchmark session is not in the store")
        stream = _StreamLine(port, key, ttl)

        async def round_trip_then(scope: Any, receive: Any, send: Any) -> None:
            await stream.getex()
            await asgi_apps.bare(scope, receive, send)

        class AnsweredStore:
            async def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
                await stream.getex()
                return record

        shell = asgi_apps.sessionshare_app(url, stack.secret)
        closers.append(shell.store.close)
        shell.store = AnsweredStore()  # type: ignore[assignment]
        client = redis.asyncio.Redis.from_url(url, protocol=2, socket_timeout=1.0)
        conn: Any = loop.run_until_complete(
            client.connection_pool.get_connection())  # type: ignore[no-untyped-call]
        packed = conn.pack_command("GETEX", key, "EX", ttl)

        async def redis_py() -> object:
            await conn.send_packed_command(packed)
            return await conn.read_response()

        store = middleware.store
        run = loop.run_until_complete
        raw = run(stream.getex())
        loops = {
            "app": _async_loop(asgi.caller(asgi_apps.bare, ""), run),
            "round_trip": _async_loop(asgi.caller(round_trip_then, ""), run),
            "shell": _async_loop(asgi.caller(shell, cookie), run),
            "whole": _async_loop(asgi.caller(middleware, cookie), run),
            "bare_alone": _async_loop(stream.getex, run),
            "conn_alone": _async_loop(redis_py, run),
            "store_alone": _async_loop(lambda: store.load(key, ttl), run),
            "parse_alone": _calls(lambda: parse_record(raw)),
            "floor_raw": _async_loop(asgi.caller(stack.apps["B0"], stack.cookies["B0"]), run),
            "floor": _async_loop(asgi.caller(stack.apps["B"], stack.cookies["B"]), run),
        }
        try:
            return _cpu_us(loops, requests, repeats, admin)
        finally:
            stream.close()
            loop.run_until_complete(client.connection_pool.release(conn))
            loop.run_until_complete(client.aclose())
    finally:
        for close in closers:
            loop.run_until_complete(close())
        if "B0" in stack.apps:
            loop.run_until_complete(stack.apps["B0"].close())
        stack.admin.close()
        loop.close()


# -- the table -------------------------------------------------------------------------


def render(title: str, us: dict[str, float], *, bare: str, line: str, store: str, case: str,
           floor_raw: str, floor: str) -> str:
    """The budget of one shell's read: its layers (which sum to the whole case), the store's
    read alone, and the ratios to both floors."""
    app = us["app"]
    over = us["whole"] - app
    layers = [
        (f"({bare}) the bare app", app, ""),
        (f"+ one round trip on {line} (syscalls, Redis)", us["round_trip"] - app,
         "irreducible"),
        ("+ the shell and the core (the store answering from the line)",
         us["shell"] - us["round_trip"], "ours"),
        ("+ the store's read (redis-py's connection; pack, parse)", us["whole"] - us["shell"],
         "redis-py + ours"),
    ]
    lines = [f"{title}: CPU us per request (this thread + Redis), each layer measured in place"]
    for label, value, kind in layers:
        share = f"{value / over:5.0%}" if kind else "     "
        lines.append(f"  {label:<62} {value:7.2f} {share}  {kind}")
    lines.append(f"  {'= (' + case + ') the whole read':<62} {us['whole']:7.2f}"
                 "        (shares: of its overhead above the bare app)")
    lines.append("  the store's read alone, out of any request:")
    alone = [
        (f"GETEX on {line}", us["bare_alone"], ""),
        ("the same through redis-py's connection (send, read_response)", us["conn_alone"],
         f"{us['conn_alone'] - us['bare_alone']:+.2f} redis-py's"),
        (f"the store's load ({store})", us["store_alone"],
         f"{us['store_alone'] - us['conn_alone']:+.2f} over redis-py's connection"),
        ("  of which the record's parse alone (parse_record: JSON)", us["parse_alone"], ""),
    ]
    for label, value, note in alone:
        lines.append(f"    {label:<60} {value:7.2f}  {note}")
    raw_over = us["floor_raw"] - app
    lines.append(
        f"  floors: ({floor_raw}) {us['floor_raw']:.2f}, ({floor}) {us['floor']:.2f};"
        f"  ({case})/({floor_raw}) overhead {over / raw_over:.2f}x (target <= 1.5x),"
        f"  ({case})/({floor}) {over / (us['floor'] - app):.2f}x")
    return "\n".join(lines)


def run(stack: Stack, port: int, *, requests: int, repeats: int) -> str:
    """Both shells' budgets, one after the other, over the same Redis."""
    wsgi_us = wsgi(stack, port, requests, repeats)
    asgi_us = asgi_budget(stack.redis_url, port, requests, repeats, stack.admin)
    return "\n".join([
        render("WSGI read (c)", wsgi_us, bare="a", line="a bare socket", store="RedisStore",
               case="c",
               floor_raw="b0", floor="b"),
        render("ASGI read (C)", asgi_us, bare="A", line="an asyncio stream",
               store="AsyncRedisStore", case="C",
               floor_raw="B0", floor="B"),
        f"  median of {repeats} interleaved repeats x {requests} requests; a layer's "
        "figure is its case minus the one above it",
    ])
