"""The applications under test, and the one session every case reads.

Every case serves the same tiny response and -- where it has a session --
reads (or writes) one key of the same small session record, so the cases
differ only by the session layer around the app:

- ``hello``: the bare app (case a; also the app behind case g's public path);
- :class:`FloorMiddleware`: the least a server-side session can cost -- parse
  the cookie, one redis ``GET``, ``json.loads``, call the app (case b);
- ``shop``: a remote app under :class:`~sessionshare.RemoteSessionMiddleware`
  with ``/account`` protected (cases c, d, g, h) and ``idp`` the IdP app under
  :class:`~sessionshare.IdpAuthMiddleware` (case h);
- Flask with and without Flask-Session's ``RedisSessionInterface`` (case e),
  and Beaker's ``SessionMiddleware`` with its redis backend (case f), both
  with their default settings -- only the server's address is given.

``http_app(case)`` builds one of them in a gunicorn worker, from the
``BENCH_REDIS_URL`` and ``BENCH_SYNC_KEY`` environment variables.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import redis

from sessionshare import IdpAuthMiddleware, RedisStore, RemoteSessionMiddleware, SyncKey

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SHOP = "https://shop.example"
IDP = "https://id.example"
LOGIN_URL = IDP + "/login"
#: The session cookie's default name on an https app (both sessionshare apps here).
COOKIE = "__Host-sessionshare"
#: What a signed-in user's session holds in every case (the peers store the same).
SESSION_DATA: dict[str, Any] = {"user": "alice", "theme": "dark", "cart": [3, 1, 4, 1, 5]}
READ_KEY = "theme"
WRITE_KEY = "counter"
READ_PATH = "/account/read"
WRITE_PATH = "/account/write"
PUBLIC_PATH = "/public"
PAD_PATH = "/account/pad"
#: The session sizes the one-key write is measured at.
WRITE_SIZES = {"200": 200, "2k": 2_000, "20k": 20_000, "200k": 200_000}
BODY = b"hello"


def reply(start_response: StartResponse, value: object) -> list[bytes]:
    """A small text response echoing ``value`` (so a check can see what was read)."""
    body = value if isinstance(value, bytes) else str(value).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The bare app: touches no session."""
    return reply(start_response, BODY)


# -- (b) the floor ---------------------------------------------------------------


def floor_key(sid: str) -> str:
    return "floor:" + sid


class FloorMiddleware:
    """The cheapest honest server-side session: cookie, one GET, json.loads, app."""

    def __init__(self, app: WSGIApplication, client: redis.Redis, cookie: str = COOKIE) -> None:
        self.app = app
        self.client = client
        self.marker = cookie + "="

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        session: dict[str, Any] = {}
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            part = part.strip()
            if part.startswith(self.marker):
                raw = self.client.get(floor_key(part[len(self.marker):]))
                if raw is not None:
                    session = json.loads(raw)
                break
        environ["floor.session"] = session
        return self.app(environ, start_response)


def floor_reader(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return reply(start_response, environ["floor.session"].get(READ_KEY))


def read_bulk(sock: socket.socket) -> bytes | None:
    """One bulk-string reply read from a bare socket and cut out by hand (None for a nil
    one); anything else, or the server closing the line, raises rather than waits."""
    data = sock.recv(65536)
    head, _, rest = data.partition(b"\r\n")
    if head[:1] != b"$":
        raise RuntimeError(f"unexpected reply {head[:40]!r}")
    size = int(head[1:])
    if size < 0:
        return None
    while len(rest) < size + 2:
        more = sock.recv(65536)
        if not more:
            raise RuntimeError("the server closed the connection mid-reply")
        rest += more
    return rest[:size]


class RawFloorMiddleware:
    """The physical floor under (b): the same steps with no client library at all -- the
    ``GET`` written on a bare socket and its bulk-string reply cut out by hand.

    What a request cannot cost less than on this machine: one loopback round trip,
    the cookie split, ``json.loads``. One connection (the benchmark is one thread).
    """

    def __init__(self, app: WSGIApplication, host: str, port: int,
                 cookie: str = COOKIE) -> None:
        self.app = app
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.marker = cookie + "="

    def get(self, key: str) -> bytes | None:
        name = key.encode()
        self.sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(name), name))
        return read_bulk(self.sock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        session: dict[str, Any] = {}
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            part = part.strip()
            if part.startswith(self.marker):
                raw = self.get(floor_key(part[len(self.marker):]))
                if raw is not None:
                    session = json.loads(raw)
                break
        environ["floor.session"] = session
        return self.app(environ, start_response)

    def close(self) -> None:
        self.sock.close()


class FloorWriteMiddleware:
    """The floor under a write: cookie, ``GET``, ``json.loads``, the app, then -- when it
    changed the session -- ``json.dumps`` and ``SET`` with the idle expiry, before the
    response goes out (as every session layer here writes)."""

    def __init__(self, app: WSGIApplication, client: redis.Redis, cookie: str = COOKIE,
                 ttl: int = 1800) -> None:
        self.app = app
        self.client = client
        self.marker = cookie + "="
        self.ttl = ttl

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        key = None
        session: dict[str, Any] = {}
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            part = part.strip()
            if part.startswith(self.marker):
                key = floor_key(part[len(self.marker):])
                raw = self.client.get(key)
                if raw is not None:
                    session = json.loads(raw)
                break
        environ["floor.session"] = session
        body = self.app(environ, start_response)
        if key is not None and environ.get("floor.changed"):
            self.client.set(key, json.dumps(session), ex=self.ttl)
        return body


def floor_writer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    value = environ["floor.session"][WRITE_KEY] = next(_counter)
    environ["floor.changed"] = True
    return reply(start_response, value)


#: The shapes the write cases' sessions are filled with (``--pad``).
PAD_SHAPES = ("text", "pages")


def padded(size: int, shape: str = "text") -> dict[str, Any]:
    """:data:`SESSION_DATA` plus about ``size`` bytes of JSON in all, under ``recent``.

    ``text``: one long string -- the cheapest for a floor's ``json.dumps`` of the
    whole session, so the hardest comparison for the library, which keeps each
    value as JSON text; ``pages``: a list of small objects (short strings and
    numbers, quotes to escape), app data as it usually is.
    """
    data = dict(SESSION_DATA)
    if shape == "text":
        data["recent"] = ""
        data["recent"] = "lorem ipsum dolor " * ((size - len(json.dumps(data))) // 18 + 1)
        return data
    if shape != "pages":
        raise ValueError(f"unknown pad shape {shape!r}; one of {PAD_SHAPES}")
    pages: list[dict[str, Any]] = []
    data["recent"] = pages
    while len(json.dumps(data, separators=(",", ":"))) < size:
        pages.append({"path": f"/catalogue/item/{len(pages) * 7919 % 100000}",
                      "seen": 1700000000 + len(pages), "ref": "search"})
    return data


# -- (c), (d), (g), (h): sessionshare ---------------------------------------------

_counter = itertools.count()


def shop_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Reads one key on READ_PATH, writes one (always a new value) on WRITE_PATH."""
    path = environ["PATH_INFO"]
    if path == READ_PATH:
        return reply(start_response, environ["sessionshare.session"].get(READ_KEY))
    if path == WRITE_PATH:
        value = environ["sessionshare.session"][WRITE_KEY] = next(_counter)
        return reply(start_response, value)
    if path == PAD_PATH:  # fills the session to a size, through the library's own write
        query = dict(part.partition("=")[::2] for part in environ["QUERY_STRING"].split("&"))
        size = int(query["size"])
        environ["sessionshare.session"]["recent"] = padded(size, query["shape"])["recent"]
        return reply(start_response, size)
    return hello(environ, start_response)


def idp_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """An IdP whose login form signs in anyone who posts it (the benchmark's user)."""
    if environ["REQUEST_METHOD"] == "POST":
        environ["sessionshare.session"].update(SESSION_DATA)
    return hello(environ, start_response)


def shop(store: RedisStore, key: SyncKey | str) -> RemoteSessionMiddleware:
    return RemoteSessionMiddleware(
        shop_app, store=store, key=key, app_url=SHOP, idp_url=LOGIN_URL, protect=["/account"],
        max_session_bytes=4 * max(WRITE_SIZES.values()),  # room for the largest write case
    )


def idp(store: RedisStore, key: SyncKey | str) -> IdpAuthMiddleware:
    return IdpAuthMiddleware(
        idp_app, store=store, key=key, app_url=IDP, known_remote_hosts=["shop.example"],
    )


# -- (e) Flask, with and without Flask-Session --------------------------------------


def flask_app(client: redis.Redis | None) -> WSGIApplication:
    """Flask with Flask-Session's redis interface (defaults) over ``client``, or plain."""
    import flask

    app = flask.Flask("bench_flask_session" if client is not None else "bench_flask")

    @app.route(READ_PATH)
    def read() -> flask.Response:
        return flask.Response(str(flask.session.get(READ_KEY)), content_type="text/plain")

    if client is not None:
        from flask_session import Session as FlaskSession

        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
        FlaskSession(app)

        @app.route("/login")
        def login() -> flask.Response:
            flask.session.update(SESSION_DATA)
            return flask.Response(BODY, content_type="text/plain")

    return app.wsgi_app


# -- (f) Beaker ---------------------------------------------------------------------


def _beaker_inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    session = environ["beaker.session"]
    if environ["PATH_INFO"] == "/login":
        session.update(SESSION_DATA)
        session.save()
        return hello(environ, start_response)
    return reply(start_response, session.get(READ_KEY))


def beaker_app(url: str) -> WSGIApplication:
    """Beaker's SessionMiddleware on its redis backend, defaults otherwise."""
    from beaker.middleware import SessionMiddleware as BeakerMiddleware

    app: WSGIApplication = BeakerMiddleware(
        _beaker_inner, {"session.type": "ext:redis", "session.url": url}
    )
    return app


# -- gunicorn entry point ----------------------------------------------------------

HTTP_CASES: dict[str, Callable[[str, str], WSGIApplication]] = {
    "a": lambda url, key: hello,
    "b": lambda url, key: FloorMiddleware(floor_reader, redis.Redis.from_url(url)),
    "c": lambda url, key: shop(RedisStore.from_url(url), key),
    "e": lambda url, key: flask_app(redis.Redis.from_url(url)),
}


def http_app(case: str) -> WSGIApplication:
    """``gunicorn 'benchmarks.apps:http_app("c")'``: one case's app, built in the worker."""
    return HTTP_CASES[case](os.environ["BENCH_REDIS_URL"], os.environ["BENCH_SYNC_KEY"])
