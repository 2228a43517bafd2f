"""The estate's three apps, small on purpose, configured from the environment as deployed.

gunicorn imports ``production.sites:idp()`` and ``production.sites:shop()``
(WSGI), uvicorn ``production.sites:news`` (an ASGI factory); every setting
comes from ``SESSIONSHARE_*`` variables through ``from_env``, the way an
operator configures them (tests/production/estate.py sets them). With https
``app_url`` values nothing about cookies is configured: the defaults --
``__Host-sessionshare``, ``Secure``, ``HttpOnly``, ``SameSite=Lax`` -- are
what the browser gets.

- **idp**: ``/login`` is a password form (alice / wonderland); ``/`` says
  who is signed in.
- **shop**: ``/orders`` is protected; every other page checks passively,
  so ``/`` greets a guest or the user.
- **news**: an ASGI app served under a path prefix (``root_path``, set by
  uvicorn's ``--root-path`` behind a prefix-stripping proxy). ``/`` is a
  protected page whose script opens the websocket ``/live`` (protected: it
  says ``hello <user>``); ``/public-live`` is a public websocket that tells
  whether the handshake carried the session cookie and which user the
  middleware let through.

The library's log lines go to stderr as ``sessionshare-log LEVEL message``
(gunicorn's ``--capture-output`` and uvicorn's redirected stderr put them in
each server's log), so the test can read them and check them for secrets.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sessionshare import IdpAuthMiddleware, RemoteSessionMiddleware, asgi

__all__ = ["LOG_PREFIX", "PASSWORDS", "idp", "news", "shop"]

LOG_PREFIX = "sessionshare-log "
PASSWORDS = {"alice": "wonderland"}
_HTML = [("Content-Type", "text/html; charset=utf-8")]

StartResponse = Callable[..., Any]


def _log_to_stderr() -> None:
    logger = logging.getLogger("sessionshare")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_PREFIX + "%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _page(title: str, body: str) -> bytes:
    return f"<!doctype html><meta charset=utf-8><title>{title}</title>{body}".encode()


# -- the IdP ------------------------------------------------------------------------
_LOGIN_FORM = (
    "<form method=post><input id=username name=username autocomplete=off>"
    "<input id=password name=password type=password>"
    "<button id=sign-in type=submit>Sign in</button></form>"
)


def _idp_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path == "/login" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        name = form.get("username", [""])[0]
        if PASSWORDS.get(name) == form.get("password", [""])[0]:
            environ["sessionshare.session"]["user"] = name
            # With a hand-off pending the middleware answers with its redirect instead.
            start_response("200 OK", _HTML)
            return [_page("Signed in", f"<p id=signed-in>Signed in as {escape(name)}</p>")]
        start_response("200 OK", _HTML)
        return [_page("Sign in", "<p id=wrong>Wrong password</p>" + _LOGIN_FORM)]
    if path == "/login":
        start_response("200 OK", _HTML)
        return [_page("Sign in", _LOGIN_FORM)]
    if path == "/":
        user = escape(environ.get("REMOTE_USER") or "nobody")
        start_response("200 OK", _HTML)
        return [_page("IdP", f"<p>Signed in here: <b id=user>{user}</b></p>")]
    start_response("404 Not Found", _HTML)
    return [_page("Not found", "<p>Not found</p>")]


def idp() -> Any:
    """The IdP, built from the environment."""
    _log_to_stderr()
    return IdpAuthMiddleware.from_env(_idp_app)


# -- the shop (WSGI, gunicorn) -----------------------------------------------------------
def _shop_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    user = environ.get("REMOTE_USER")
    if path == "/orders":
        start_response("200 OK", _HTML)
        return [_page("Orders", f"<p>Orders of <b id=user>{escape(user or '')}</b></p>")]
    if path == "/":
        greeting = f"Welcome, {escape(user)}." if user else "Welcome, guest."
        start_response("200 OK", _HTML)
        return [_page("Shop", f"<p id=greeting>{greeting}</p>")]
    start_response("404 Not Found", _HTML)
    return [_page("Not found", "<p>Not found</p>")]


def _signed_out_page() -> str:
    """Where a remote sends the browser after signing out: the IdP's home, which says
    who is signed in there (nobody, by then)."""
    idp_url = urlsplit(os.environ["SESSIONSHARE_IDP_URL"])
    return f"{idp_url.scheme}://{idp_url.netloc}/"


def shop() -> Any:
    """The shop, built from the environment: ``/orders`` protected, the rest passive."""
    _log_to_stderr()
    return RemoteSessionMiddleware.from_env(
        _shop_app, protect=["/orders"], passive=True, logout_redirect=_signed_out_page()
    )


# -- the news site (ASGI, uvicorn, under a path prefix) --------------------------------------
#: The script of a page that opens a websocket and writes what came of it into #<id>:
#: the first message, or "refused" when the socket closed without ever opening.
SOCKET_SCRIPT = """
function openSocket(url, id) {
  const out = document.getElementById(id);
  const socket = new WebSocket(url);
  let opened = false;
  socket.onopen = () => { opened = true; };
  socket.onmessage = (event) => { out.textContent = event.data; };
  socket.onclose = (event) => {
    if (!opened) { out.textContent = "refused"; }
  };
}
"""


def _local_path(scope: dict[str, Any]) -> str:
    """The path below the mount point (ASGI servers put ``root_path`` in front of it)."""
    path, root = scope["path"], scope.get("root_path") or ""
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def _news_protects(scope: dict[str, Any]) -> bool:
    return _local_path(scope) != "/public-live"


async def _news_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = _local_path(scope)
    user = scope.get("sessionshare.user")
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if path == "/live":
            text = f"hello {user}"
        elif path == "/public-live":
            cookies = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
            text = json.dumps({"cookie": b"__Host-sessionshare=" in cookies, "user": user})
        else:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": text})
        await send({"type": "websocket.close", "code": 1000})
        return
    status, body = 404, _page("Not found", "<p>Not found</p>")
    if path == "/":
        live = json.dumps(scope.get("root_path", "") + "/live")
        status, body = 200, _page("News", (
            f"<p>News for <b id=user>{escape(str(user))}</b></p>"
            "<p>Live: <span id=socket>connecting</span></p>"
            f"<script>{SOCKET_SCRIPT}\n"
            f"openSocket('wss://' + location.host + {live}, 'socket');</script>"
        ))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})


def news() -> Any:
    """The news site, built from the environment, with a lifespan that closes its store."""
    _log_to_stderr()
    middleware = asgi.RemoteSessionMiddleware.from_env(
        _news_app, protect=_news_protects, logout_redirect=_signed_out_page()
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await middleware(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                close = getattr(middleware.store, "close", None)
                if close is not None:
                    await close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app
