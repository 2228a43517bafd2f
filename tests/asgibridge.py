"""Drive ASGI apps from WebTest: a WSGI callable over an ASGI app, on one guarded loop.

The suites written for WebTest (hand-off, rejections, security) run against
the ASGI shell through :class:`WsgiToAsgi`: each WSGI call becomes one ASGI
HTTP connection (scope, ``receive``, ``send``) run on a single event loop in a
background thread, the way a server runs them -- so requests from several
test threads run concurrently on that loop, and an ``AsyncRedisStore``
stays on the one loop it belongs to.

The loop's thread runs under :func:`noblock.no_blocking_calls_on` for the
whole test run: a blocking socket call or ``time.sleep`` anywhere in the
ASGI shell, the core or the store, made on the loop, fails the request with
:class:`noblock.BlockingCall` -- and so the test.

    loop = shared_loop()
    app = webtest.TestApp(WsgiToAsgi(asgi_middleware))
    await_on_loop(store.close())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from http import HTTPStatus
from typing import Any, TypeVar

from noblock import no_blocking_calls_on

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def shared_loop() -> asyncio.AbstractEventLoop:
    """The one event loop every bridged request runs on (started on first use)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                with no_blocking_calls_on(threading.current_thread()):
                    loop.call_soon(ready.set)
                    loop.run_forever()

            threading.Thread(target=main, name="asgi-loop", daemon=True).start()
            ready.wait()
            _loop = loop
    return _loop


def await_on_loop(awaitable: Awaitable[T], timeout: float = 30) -> T:
    """Run ``awaitable`` on the shared loop from any other thread; its result."""
    async def wrapped() -> T:
        return await awaitable

    future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), shared_loop())
    return future.result(timeout)


def _bytes(text: str) -> bytes:
    # PEP 3333 text is latin-1; the fuzzers also hand over text that is not (a server
    # would never): send it as the UTF-8 a client would have sent.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def scope_of(environ: dict[str, Any]) -> dict[str, Any]:
    """The ASGI HTTP scope for a WSGI environ (what an ASGI server would build)."""
    headers = []
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers.append((name[5:].replace("_", "-").lower().encode("latin-1"),
                            _bytes(value)))
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((name.replace("_", "-").lower().encode("latin-1"),
                            _bytes(value)))
    path_bytes = _bytes(environ.get("PATH_INFO", ""))
    root_bytes = _bytes(environ.get("SCRIPT_NAME", ""))
    # As uvicorn does: the path decoded as UTF-8; bytes that are not kept as escapes.
    path = path_bytes.decode("utf-8", "surrogateescape")
    root = root_bytes.decode("utf-8", "surrogateescape")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": root + path,
        "raw_path": root_bytes + path_bytes,
        "root_path": root,
        "query_string": _bytes(environ.get("QUERY_STRING", "")),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT", 80))),
    }
    if "REMOTE_USER" in environ:
        # A user the server (or an outer middleware) put there, as a WSGI server sets
        # REMOTE_USER: the ASGI middlewares must not pass it on either.
        scope["sessionshare.user"] = environ["REMOTE_USER"]
    return scope


class WsgiToAsgi:
    """A WSGI app that serves each request with ``app``, an ASGI 3 app, on the shared loop.

    The whole response is collected, then handed to WSGI (no streaming).
    Attributes of ``app`` (``side``, ``store``) read through, as tests read the
    WSGI middleware's.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        scope = scope_of(environ)
        messages: list[dict[str, Any]] = []

        async def connection() -> None:
            sent_body = False
            done = asyncio.Event()

            async def receive() -> dict[str, Any]:
                nonlocal sent_body
                if not sent_body:
                    sent_body = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await done.wait()  # as a server does: the client leaves after the response
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                messages.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    done.set()

            await self.app(scope, receive, send)

        await_on_loop(connection())
        start = next(m for m in messages if m["type"] == "http.response.start")
        status = int(start["status"])
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(
            f"{status} {phrase}",
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])],
        )
        return [b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")]
