"""The bare apps a deployment in a test serves: an IdP with a password table, a remote echo.

Kept apart from tests/flow.py, which re-exports them, so that a server process
that only serves them (the reliability suite's gunicorn workers, one import per
worker) imports the library and nothing more: flow.py brings WebTest,
BeautifulSoup and the Redis cluster client, about 0.4 s of CPU a process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from sessionshare.core.side import Side

IDP = "http://id.test"
SHOP = "http://shop.test"
BLOG = "http://blog.test"
LOGIN = IDP + "/login"
CALLBACK = "/_sessionshare/callback"
HTML = {"Accept": "text/html"}
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def idp_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A minimal IdP: a login form that checks a password table."""
    session = environ["sessionshare.session"]
    if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/login":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        name = form.get("username", [""])[0]
        if PASSWORDS.get(name) == form.get("password", [""])[0]:
            session["user"] = name
            # 200, not a redirect: any Location a test sees came from the middleware.
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"signed in as {name}".encode()]
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<p>wrong password</p><form method=post>login form</form>"]
    if environ["PATH_INFO"] == "/login":
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<form method=post>login form</form>"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"idp home user={environ.get('REMOTE_USER')}".encode()]


def remote_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A remote app: echoes the user and request; ``/write?k=v`` writes the session."""
    session = environ["sessionshare.session"]
    path = environ["PATH_INFO"]
    if path == "/write":
        for name, values in parse_qs(environ.get("QUERY_STRING", "")).items():
            session[name] = values[0]
    body = {
        "user": environ.get("REMOTE_USER"),
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
    }
    if path == "/read":
        body["session"] = dict(session)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


async def _read_body(receive: Callable[[], Any]) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _respond(send: Callable[[Any], Any], content_type: str, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body})


async def asgi_idp_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """:func:`idp_app`'s ASGI twin."""
    session = scope["session"]
    if scope["method"] == "POST" and scope["path"] == "/login":
        form = parse_qs((await _read_body(receive)).decode())
        name = form.get("username", [""])[0]
        if PASSWORDS.get(name) == form.get("password", [""])[0]:
            session["user"] = name
            await _respond(send, "text/plain", f"signed in as {name}".encode())
            return
        await _respond(send, "text/html",
                       b"<p>wrong password</p><form method=post>login form</form>")
        return
    if scope["path"] == "/login":
        await _respond(send, "text/html", b"<form method=post>login form</form>")
        return
    await _respond(send, "text/plain", f"idp home user={scope['sessionshare.user']}".encode())


async def asgi_remote_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """:func:`remote_app`'s ASGI twin (the path as WSGI's ``PATH_INFO`` would show it)."""
    session = scope["session"]
    path = scope["path"].encode("utf-8", "surrogateescape").decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    if path == "/write":
        for name, values in parse_qs(query).items():
            session[name] = values[0]
    user = scope["sessionshare.user"]
    body = {"user": Side.remote_user(user), "path": path, "query": query}
    if path == "/read":
        body["session"] = dict(session)
    await _respond(send, "application/json", json.dumps(body).encode())
