"""WSGI plumbing: the environ turned into the protocol's request, and replies sent back.

Translation only: every decision about either lives in ``core/``.

    request = request_of(environ)
    return send_reply(environ, start_response, Reply.redirect("/"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.reply import Reply
from ..core.request import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["is_websocket_handshake", "reply_body", "request_of", "send_reply", "wants_json"]


def is_websocket_handshake(environ: WSGIEnvironment) -> bool:
    """True for a websocket's opening handshake: a GET asking to upgrade to ``websocket``.

    flask-sock, gevent-websocket and the like take the socket over from such a request,
    and a page of any origin can open one: the protocol must see it for what it is.
    """
    if environ.get("REQUEST_METHOD", "GET") != "GET":
        return False
    upgrade = environ.get("HTTP_UPGRADE", "")
    return bool(upgrade) and "websocket" in (t.strip().lower() for t in upgrade.split(","))


def request_of(environ: WSGIEnvironment) -> Request:
    """The facts of a WSGI request the protocol reads."""
    get = environ.get
    # Positional, in Request's order: thirteen keywords cost as much again as the look-ups.
    # (A test gives every header its own value and reads each back from its field.)
    return Request(
        get("REQUEST_METHOD", "GET"),  # method
        get("PATH_INFO", ""),  # path
        get("QUERY_STRING", ""),  # query
        get("HTTP_COOKIE", ""),  # cookies
        get("HTTP_ACCEPT", ""),  # accept
        # fetch_mode: a websocket handshake is never a page load (the others skip the call).
        "websocket" if "HTTP_UPGRADE" in environ and is_websocket_handshake(environ)
        else get("HTTP_SEC_FETCH_MODE"),
        get("SCRIPT_NAME", ""),  # root
        environ,  # native
        get("HTTP_ORIGIN"),  # origin
        get("HTTP_SEC_FETCH_SITE"),  # fetch_site
        get("HTTP_SEC_PURPOSE") or get("HTTP_PURPOSE"),  # purpose
        get("HTTP_USER_AGENT", ""),  # user_agent
        get("HTTP_HOST", ""),  # host
    )


def wants_json(environ: WSGIEnvironment) -> bool:
    """True when an error should be JSON rather than a page."""
    return request_of(environ).wants_json


def reply_body(environ: WSGIEnvironment, reply: Reply) -> list[bytes]:
    """The body to hand the server: none for ``HEAD`` (the headers stay the same)."""
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]


def send_reply(
    environ: WSGIEnvironment, start_response: StartResponse, reply: Reply
) -> list[bytes]:
    """Send one of the library's own answers through WSGI."""
    start_response(reply.status_line, list(reply.headers))
    return reply_body(environ, reply)
