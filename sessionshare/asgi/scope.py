"""ASGI plumbing: the scope turned into the protocol's request, and replies sent back.

Translation only, the twin of ``wsgi/environ.py``. The path is handed on as WSGI
would (UTF-8 bytes read as latin-1), so both shells classify and echo it byte for
byte the same; ``root_path`` comes off it only at a segment boundary, as Starlette
routes (under ``/shop``, ``/shopping/orders`` stays whole), so a ``protect`` prefix
sees the very path the app routes.

    request = request_of(scope)
    await send_reply(send, Reply.redirect("/"), head=request.method == "HEAD")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..core.reply import Reply
from ..core.request import Request

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "encode_headers",
    "header_text",
    "request_of",
    "send_reply",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The request headers the protocol reads, by their ASGI (lower-case) names.
_READ = {b"cookie", b"accept", b"sec-fetch-mode", b"origin", b"sec-fetch-site",
         b"sec-purpose", b"purpose", b"user-agent", b"host"}


def _wsgi_text(text: str) -> str:
    if text.isascii():
        return text  # the same either way: spare the two copies on every request
    # surrogateescape: a path that was not UTF-8 (the server kept the bytes as
    # escapes) comes back as its very bytes.
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def request_of(scope: Scope) -> Request:
    """The facts of an HTTP or websocket scope the protocol reads."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers") or ():
        if name in _READ:
            text = value.decode("latin-1")
            if name in found:
                # HTTP/2 may split the Cookie header; any other repeated header is joined
                # as WSGI servers join it, so both shells read the same text -- and two
                # Origin headers (only a non-browser sends them) match no origin.
                text = found[name] + ("; " if name == b"cookie" else ", ") + text
            found[name] = text
    root = scope.get("root_path") or ""
    path = scope.get("path") or ""
    # Servers differ on whether path carries root_path.
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root):]
    websocket = scope["type"] == "websocket"
    get = found.get
    # Positional, in Request's order: see the WSGI shell's request_of.
    return Request(
        "GET" if websocket else scope.get("method", "GET"),  # method
        _wsgi_text(path),  # path
        (scope.get("query_string") or b"").decode("latin-1"),  # query
        get(b"cookie", ""),  # cookies
        get(b"accept", ""),  # accept
        # fetch_mode: a websocket handshake is never a page load, whatever it accepts.
        "websocket" if websocket else get(b"sec-fetch-mode"),
        _wsgi_text(root),  # root
        scope,  # native
        get(b"origin"),  # origin
        get(b"sec-fetch-site"),  # fetch_site
        get(b"sec-purpose") or get(b"purpose"),  # purpose
        get(b"user-agent", ""),  # user_agent
        get(b"host", ""),  # host
    )


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """``(name, value)`` text pairs as ASGI header bytes."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def header_text(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI header bytes as ``(name, value)`` text pairs (what the core reads)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


async def send_reply(send: Send, reply: Reply, *, head: bool = False) -> None:
    """Send one of the library's own answers: no body for ``HEAD`` (same headers)."""
    await send({
        "type": "http.response.start",
        "status": reply.status,
        "headers": encode_headers(reply.headers),
    })
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
