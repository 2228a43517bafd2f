"""The in-process cases (a)-(h): each app called directly with a prepared environ.

:class:`Stack` builds every app over one Redis server and signs the
benchmark user in once per session layer, through that layer's own code (the
IdP's login for sessionshare, a ``/login`` view for Flask-Session and Beaker),
so every case starts from a real, signed-in session. Each :class:`Case` is a
loop of ``n`` requests -- a fresh copy of its environ per request, the body
iterated and closed as a server would -- that returns the seconds it took.

Before it is timed every case is *checked*: the status it answers, and for
the session cases that the response came from the stored session (the app
echoes the value it read), so a misconfigured case (a 302 to the login page
is much cheaper than a session read) fails loudly instead of flattering us.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from werkzeug.test import create_environ

from sessionshare import RedisStore, SyncKey

from . import apps

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

Loop = Callable[[int], float]


@dataclass
class Case:
    """One benchmark case: ``loop(n)`` runs ``n`` units and returns the seconds taken."""

    id: str
    label: str
    loop: Loop
    unit: str = "request"
    #: How many requests one unit is (a login in case h is three).
    scale: int = 1


class Reply:
    """A ``start_response`` that keeps the last status and headers."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        self.headers = headers
        return None

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def cookies(self) -> dict[str, str]:
        found = {}
        for k, v in self.headers:
            if k.lower() == "set-cookie":
                name, _, value = v.split(";", 1)[0].partition("=")
                found[name.strip()] = value
        return found


def environ_for(url: str, cookie: str | None = None, **headers: str) -> WSGIEnvironment:
    """A complete WSGI environ for a GET of ``url`` (as a server would build it)."""
    parts = urlsplit(url)
    if cookie:
        headers["Cookie"] = cookie
    environ: WSGIEnvironment = create_environ(
        path=parts.path, base_url=f"{parts.scheme}://{parts.netloc}", query_string=parts.query,
        headers=headers,
    )
    return environ


class Environs:
    """Environ templates per origin: a request's environ is then a copy and a few keys.

    Building each environ with werkzeug would cost more than some of the cases
    measured; the hand-off loop (h) builds three per login from these.
    """

    def __init__(self) -> None:
        self._bases: dict[str, WSGIEnvironment] = {}

    def get(self, url: str, cookie: str = "", accept: str = "text/html") -> WSGIEnvironment:
        origin, _, rest = url.partition("://")[2].partition("/")
        base = self._bases.get(origin)
        if base is None:
            base = self._bases[origin] = environ_for(url.split("?", 1)[0])
        environ = base.copy()
        path, _, query = ("/" + rest).partition("?")
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query
        environ["REQUEST_URI"] = environ["RAW_URI"] = "/" + rest
        environ["HTTP_ACCEPT"] = accept
        if cookie:
            environ["HTTP_COOKIE"] = cookie
        else:
            environ.pop("HTTP_COOKIE", None)
        return environ


def call(app: WSGIApplication, environ: WSGIEnvironment, reply: Reply) -> bytes:
    """One request, as a server runs it: call, iterate the body, close it."""
    body = app(environ, reply)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def request_loop(app: WSGIApplication, environ: WSGIEnvironment) -> Loop:
    template = dict(environ)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def loop(n: int) -> float:
        copy = template.copy
        wsgi_input = template["wsgi.input"]
        started = time.perf_counter()
        for _ in range(n):
            environ = copy()
            body: Iterable[bytes] = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        elapsed = time.perf_counter() - started
        wsgi_input.seek(0)
        return elapsed

    return loop


class Stack:
    """Every app of the in-process cases, over one Redis server, users signed in."""

    def __init__(self, redis_url: str, pad: str = "text") -> None:
        self.redis_url = redis_url
        #: The shape the write cases' sessions are filled with (apps.padded).
        self.pad = pad
        self._environs = Environs()
        self.sync_key = SyncKey.generate()
        self.admin = redis.Redis.from_url(redis_url)
        self.store = RedisStore.from_url(redis_url)
        self.shop = apps.shop(self.store, self.sync_key)
        self.idp = apps.idp(self.store, self.sync_key)
        self.floor = apps.FloorMiddleware(apps.floor_reader, redis.Redis.from_url(redis_url))
        #: The store built the other way: over a user's own client, redis-py's defaults
        #: (RESP3 in redis-py 8), as the docs invite ("or any redis-py client").
        self.user_client = redis.Redis.from_url(redis_url)
        self.user_store = RedisStore(self.user_client)
        self.user_shop = apps.shop(self.user_store, self.sync_key)
        where = urlsplit(redis_url)
        self.raw_floor = apps.RawFloorMiddleware(apps.floor_reader, where.hostname or "",
                                                 where.port or 6379)
        self.floor_write = apps.FloorWriteMiddleware(apps.floor_writer, self.floor.client)
        self.plain_flask = apps.flask_app(None)
        self.flask_session = apps.flask_app(redis.Redis.from_url(redis_url))
        self.beaker = apps.beaker_app(redis_url)
        #: The IdP's cookie; the shop gets its own through one hand-off.
        self.idp_cookie = f"{apps.COOKIE}={self._sign_in_at_idp()}"
        self.shop_value = self.handoff_once()
        self.cookie = f"{apps.COOKIE}={self.shop_value}"
        sid = self.shop.side.lifecycle.session_id_in(self.cookie)
        if sid is None:
            raise RuntimeError("the hand-off set no cookie the shop accepts")
        #: The shared session's id (for its store key).
        self.sid: str = sid
        self.admin.set(apps.floor_key(self.shop_value), json.dumps(apps.SESSION_DATA))
        #: A session of each write size (its own sign-in), filled through the shop.
        self.sized = {label: self._sized_session(size)
                      for label, size in apps.WRITE_SIZES.items()}
        self.flask_cookie = self._peer_sign_in(self.flask_session, "session")
        self.beaker_cookie = self._peer_sign_in(self.beaker, "beaker.session.id")

    # -- sign-ins, through each layer's own code ---------------------------------
    def _sign_in_at_idp(self) -> str:
        reply = Reply()
        environ = environ_for(apps.IDP + "/login")
        environ["REQUEST_METHOD"] = "POST"
        call(self.idp, environ, reply)
        sid = reply.cookies().get(apps.COOKIE)
        if not sid:
            raise RuntimeError(f"IdP sign-in set no session cookie: {reply.status} {reply.headers}")
        return sid

    def _sized_session(self, size: int) -> str:
        """A shop cookie whose session holds about ``size`` bytes of app data (and the
        floor's record of the same data under the same cookie)."""
        idp_cookie = f"{apps.COOKIE}={self._sign_in_at_idp()}"
        value = self.handoff_once(idp_cookie=idp_cookie)
        cookie = f"{apps.COOKIE}={value}"
        reply = Reply()
        call(self.shop, environ_for(
            f"{apps.SHOP}{apps.PAD_PATH}?size={size}&shape={self.pad}", cookie), reply)
        if not reply.status.startswith("200"):
            raise RuntimeError(f"filling a {size}-byte session: {reply.status}")
        self.admin.set(apps.floor_key(value), json.dumps(apps.padded(size, self.pad)))
        return cookie

    def _peer_sign_in(self, app: WSGIApplication, cookie_name: str) -> str:
        reply = Reply()
        call(app, environ_for(apps.SHOP + "/login"), reply)
        value = reply.cookies().get(cookie_name)
        if not reply.status.startswith("200") or not value:
            raise RuntimeError(f"{cookie_name}: sign-in failed: {reply.status} {reply.headers}")
        return f"{cookie_name}={value}"

    # -- the cases ----------------------------------------------------------------
    def cases(self) -> list[Case]:
        shop_read = environ_for(apps.SHOP + apps.READ_PATH, self.cookie)
        return [
            Case("a", "bare app", request_loop(apps.hello, shop_read)),
            Case("b", "floor: cookie + GET + json.loads", request_loop(self.floor, shop_read)),
            Case("c", "sessionshare remote, read 1 key", request_loop(self.shop, shop_read)),
            Case("d", "sessionshare remote, write 1 key", request_loop(
                self.shop, environ_for(apps.SHOP + apps.WRITE_PATH, self.cookie))),
            Case("e0", "plain Flask", request_loop(
                self.plain_flask, environ_for(apps.SHOP + apps.READ_PATH, self.flask_cookie))),
            Case("e", "Flask + Flask-Session (redis)", request_loop(
                self.flask_session, environ_for(apps.SHOP + apps.READ_PATH, self.flask_cookie))),
            Case("f", "Beaker SessionMiddleware (ext:redis)", request_loop(
                self.beaker, environ_for(apps.SHOP + apps.READ_PATH, self.beaker_cookie))),
            Case("g", "sessionshare remote, public path", request_loop(
                self.shop, environ_for(apps.SHOP + apps.PUBLIC_PATH, self.cookie))),
            Case("h", "hand-off, signed in at the IdP", self.handoff_loop(), "login", 3),
            # The physical floor and the store over a user's default client.
            Case("b0", "raw floor: cookie + socket GET + json", request_loop(
                self.raw_floor, shop_read)),
            Case("cu", "(c) on a user's default client", request_loop(
                self.user_shop, shop_read)),
            Case("du", "(d) on a user's default client", request_loop(
                self.user_shop, environ_for(apps.SHOP + apps.WRITE_PATH, self.cookie))),
            *self.write_cases(),
        ]

    def write_cases(self) -> list[Case]:
        """The one-key write at each session size: the floor (GET, json, SET), the store
        built by ``from_url``, and over a user's default client. Larger sizes run fewer
        requests (``scale``), so every size takes about as long."""
        found = []
        for label, size in apps.WRITE_SIZES.items():
            write = environ_for(apps.SHOP + apps.WRITE_PATH, self.sized[label])
            scale = max(1, size // 2_000)
            found += [
                Case(f"w{label}", f"write floor, {label} B session",
                     request_loop(self.floor_write, write), scale=scale),
                Case(f"d{label}", f"(d) write, {label} B session",
                     request_loop(self.shop, write), scale=scale),
                Case(f"du{label}", f"(du) write, {label} B session",
                     request_loop(self.user_shop, write), scale=scale),
            ]
        return found

    def check(self) -> None:
        """Every case answers what it should, from the stored session."""
        expected: dict[str, tuple[WSGIApplication, str, str, bytes]] = {
            "a": (apps.hello, apps.READ_PATH, self.cookie, b"hello"),
            "b": (self.floor, apps.READ_PATH, self.cookie, b"dark"),
            "c": (self.shop, apps.READ_PATH, self.cookie, b"dark"),
            "e0": (self.plain_flask, apps.READ_PATH, self.flask_cookie, b"None"),
            "e": (self.flask_session, apps.READ_PATH, self.flask_cookie, b"dark"),
            "f": (self.beaker, apps.READ_PATH, self.beaker_cookie, b"dark"),
            "g": (self.shop, apps.PUBLIC_PATH, self.cookie, b"hello"),
            "b0": (self.raw_floor, apps.READ_PATH, self.cookie, b"dark"),
            "cu": (self.user_shop, apps.READ_PATH, self.cookie, b"dark"),
        }
        for case, (app, path, cookie, body) in expected.items():
            reply = Reply()
            got = call(app, environ_for(apps.SHOP + path, cookie), reply)
            if not reply.status.startswith("200") or got != body:
                raise RuntimeError(f"case {case}: {reply.status} {got!r}, expected 200 {body!r}")
        reply = Reply()
        written = int(call(self.shop, environ_for(apps.SHOP + apps.WRITE_PATH, self.cookie), reply))
        record = self.store.load(self.shop.lifecycle.session_key(self.sid), 60)
        if record is None or json.loads(record.fields[apps.WRITE_KEY]) != written:
            raise RuntimeError("case d: the written key did not reach the store")
        for label, cookie in self.sized.items():
            sid = self.shop.side.lifecycle.session_id_in(cookie)
            assert sid is not None
            for app, store in ((self.shop, self.store), (self.user_shop, self.user_store)):
                written = int(call(app, environ_for(apps.SHOP + apps.WRITE_PATH, cookie), reply))
                record = store.load(self.shop.lifecycle.session_key(sid), 1800)
                if (record is None or json.loads(record.fields[apps.WRITE_KEY]) != written
                        or sum(map(len, record.fields.values())) < apps.WRITE_SIZES[label] // 2):
                    raise RuntimeError(f"case d{label}: the write or the padding is missing")
            written = int(call(self.floor_write, environ_for(apps.SHOP + apps.WRITE_PATH,
                                                              cookie), reply))
            floor = json.loads(self.admin.get(apps.floor_key(cookie.partition("=")[2])) or "{}")
            if floor.get(apps.WRITE_KEY) != written:
                raise RuntimeError(f"case w{label}: the floor's write is missing")
        adopted = self.shop.side.lifecycle.session_id_in(f"{apps.COOKIE}={self.handoff_once()}")
        if adopted != self.sid:
            raise RuntimeError("case h: the hand-off did not adopt the IdP's session")

    # -- (h) ---------------------------------------------------------------------
    def handoff_once(self, reply: Reply | None = None, idp_cookie: str | None = None) -> str:
        """Visit the shop signed out, hop to the IdP and back; the shop's new cookie value."""
        reply = reply or Reply()
        idp_cookie = idp_cookie or self.idp_cookie
        environs = self._environs
        call(self.shop, environs.get(apps.SHOP + apps.READ_PATH), reply)
        if not reply.status.startswith("302"):
            raise RuntimeError(f"hand-off step 1: {reply.status}")
        login_url = reply.header("Location")
        state_cookie = "; ".join(f"{k}={v}" for k, v in reply.cookies().items())
        call(self.idp, environs.get(login_url, idp_cookie), reply)
        if not reply.status.startswith("303"):
            raise RuntimeError(f"hand-off step 2: {reply.status}")
        callback = reply.header("Location")
        call(self.shop, environs.get(callback, state_cookie), reply)
        if not reply.status.startswith("303"):
            raise RuntimeError(f"hand-off step 3: {reply.status}")
        return reply.cookies()[apps.COOKIE]

    def handoff_loop(self) -> Loop:
        def loop(n: int) -> float:
            reply = Reply()
            started = time.perf_counter()
            for _ in range(n):
                self.handoff_once(reply)
            return time.perf_counter() - started

        return loop

    def close(self) -> None:
        self.store.close()
        self.user_store.close()
        self.user_client.close()
        self.raw_floor.close()
        self.admin.close()
