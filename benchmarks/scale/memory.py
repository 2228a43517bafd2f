"""Redis memory per session: sessionshare (with its index entry) beside Flask-Session and Beaker.

Each layer signs in ``n`` users through its own code, each holding the same
1 KB of application data (:func:`~.deployment.app_data`): sessionshare
through the whole hand-off (so its record also names the remote that
joined), Flask-Session 0.8's ``RedisSessionInterface`` and Beaker's
``ext:redis`` through a ``/login`` view, all with their defaults, in their
own database of one redis-server.

What a session costs *at rest* is what stays once its sign-in is over:
sessionshare's session key and its user's index (one user per session here,
so every session brings its own index key -- the worst case; a second
session of a user adds only an entry) and its member of the deployment's
census (one sorted set for all), the peers' one record each. Those
keys are copied with ``DUMP``/``RESTORE`` (their expiry kept) into an empty
database, and two figures are read there:

- ``used_memory`` before and after the copy (``INFO memory``), divided by
  ``n``: everything the server allocated for them, the keyspace's own
  tables included -- what a deployment pays;
- ``MEMORY USAGE key SAMPLES 0`` of each key: the key, its value and its
  entry, exact.

sessionshare's sign-in also leaves short-lived keys (the state claim, the
ticket, the id the sign-in retired, the remote's join marker); they are
listed apart, with the seconds each lives, because they exist only for the
minutes after a sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from werkzeug.test import create_environ

from sessionshare import RedisStore, SyncKey

from .. import apps
from ..cases import Reply, call
from .deployment import Browser, Deployment, app_data

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Database of each layer's sign-ins, and the empty one its at-rest keys are copied to.
DATABASES = {"sessionshare": (1, 11), "flask-session": (2, 12), "beaker": (3, 13)}
LOGIN = "/login"

#: What sessionshare's short-lived keys are, by the letter after the key prefix.
SHORT_LIVED = {"s": "retired id (forwards to the new one)", "c": "state claim",
               "t": "ticket", "j": "remote's join marker"}


@dataclass
class Layer:
    """One session layer's figures."""

    name: str
    sessions: int
    used_memory: int = 0  # bytes, for all sessions
    #: kind -> (keys, MEMORY USAGE total, value bytes total, longest ttl in seconds or -1)
    kinds: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    short_lived: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def per_session(self) -> float:
        return self.used_memory / self.sessions

    @property
    def usage_per_session(self) -> float:
        return sum(usage for _, usage, _, _ in self.kinds.values()) / self.sessions

    def as_dict(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "used_memory_per_session": round(self.per_session, 1),
                "memory_usage_per_session": round(self.usage_per_session, 1),
                "kinds": self.kinds, "short_lived": self.short_lived}


# -- the peers' apps: a /login view that stores the same data ------------------------------


def _user_of(environ: WSGIEnvironment) -> str:
    return str(environ.get("QUERY_STRING", "")).partition("user=")[2]


def flask_session_app(client: redis.Redis) -> WSGIApplication:
    import flask
    from flask_session import Session as FlaskSession

    app = flask.Flask("scale_flask_session")
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
    FlaskSession(app)

    @app.route(LOGIN)
    def login() -> flask.Response:
        flask.session.update(app_data(flask.request.args["user"]))
        return flask.Response(apps.BODY, content_type="text/plain")

    return app.wsgi_app


def beaker_app(url: str) -> WSGIApplication:
    from beaker.middleware import SessionMiddleware as BeakerMiddleware

    def inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        session = environ["beaker.session"]
        session.update(app_data(_user_of(environ)))
        session.save()
        return apps.hello(environ, start_response)

    app: WSGIApplication = BeakerMiddleware(inner, {"session.type": "ext:redis",
                                                    "session.url": url})
    return app


def _peer_sign_ins(app: WSGIApplication, n: int) -> None:
    for number in range(n):
        reply = Reply()
        environ = create_environ(path=LOGIN, base_url=apps.SHOP,
                                 query_string=f"user=user-m{number:07d}")
        call(app, environ, reply)
        if not reply.status.startswith("200") or not reply.cookies():
            raise RuntimeError(f"peer sign-in failed: {reply.status} {reply.headers}")


# -- measuring -------------------------------------------------------------------------


def _db_url(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def _used_memory(admin: redis.Redis) -> int:
    """``used_memory`` with no other client connected: an idle connection's query buffer
    (32 KB) is freed by the server's cron at a moment of its choosing, which would land
    in one reading and not the other."""
    admin.client_kill_filter(_type="normal", skipme=True)
    time.sleep(0.2)
    return int(admin.info("memory")["used_memory"])


def _value_bytes(client: redis.Redis, key: str) -> int:
    kind = client.type(key)
    if kind == b"hash":
        return sum(len(k) + len(v) for k, v in client.hgetall(key).items())
    if kind == b"zset":  # each member and its score (a double)
        return sum(len(member) + 8 for member in client.zrange(key, 0, -1))
    return int(client.strlen(key))


def _copy_at_rest(url: str, scratch: int, clean: int, kinds: dict[str, list[str]],
                  admin: redis.Redis) -> int:
    """DUMP/RESTORE ``kinds``' keys from ``scratch`` to ``clean``; used_memory it added."""
    source = redis.Redis.from_url(_db_url(url, scratch))
    target = redis.Redis.from_url(_db_url(url, clean))
    keys = [key for group in kinds.values() for key in group]
    dumps: list[Any] = []
    pipe = source.pipeline(transaction=False)
    for start in range(0, len(keys), 1000):
        for key in keys[start:start + 1000]:
            pipe.dump(key)
            pipe.pttl(key)
        dumps += pipe.execute()
    source.close()
    before = _used_memory(admin)
    pipe = target.pipeline(transaction=False)
    for index, key in enumerate(keys):
        payload, ttl = dumps[2 * index], dumps[2 * index + 1]
        pipe.restore(key, max(int(ttl), 0), payload)
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()
    target.close()
    return _used_memory(admin) - before


def _describe(url: str, clean: int, kinds: dict[str, list[str]]
              ) -> dict[str, tuple[int, int, int, int]]:
    client = redis.Redis.from_url(_db_url(url, clean))
    found = {}
    for kind, keys in kinds.items():
        usage = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
        size = sum(_value_bytes(client, key) for key in keys)
        ttl = max((int(client.ttl(key)) for key in keys), default=-1)
        found[kind] = (len(keys), usage, size, ttl)
    client.close()
    return found


def _short_lived(client: redis.Redis, keys: list[str], prefix: str
                 ) -> dict[str, tuple[int, int, int]]:
    """kind -> (keys, MEMORY USAGE total, longest ttl) of sessionshare's short-lived keys."""
    found: dict[str, list[int]] = {}
    for key in keys:
        letter = key[len(prefix):].split(":", 1)[0]
        kind = SHORT_LIVED.get(letter, letter)
        row = found.setdefault(kind, [0, 0, -1])
        row[0] += 1
        row[1] += int(client.memory_usage(key, samples=0) or 0)
        row[2] = max(row[2], int(client.ttl(key)))
    return {kind: (row[0], row[1], row[2]) for kind, row in found.items()}


def measure(url: str, n: int, log: Any) -> dict[str, Layer]:
    """Sign ``n`` users in through each layer; each layer's memory figures."""
    admin = redis.Redis.from_url(url)
    layers: dict[str, Layer] = {}
    # sessionshare: the whole hand-off for each user.
    scratch, clean = DATABASES["sessionshare"]
    store = RedisStore.from_url(_db_url(url, scratch))
    deployment = Deployment(store, SyncKey.generate())
    log(f"memory: {n:,} sign-ins through sessionshare's hand-off ...")
    browsers = []
    for number in range(n):
        browser = Browser(deployment)
        browser.sign_in(f"user-m{number:07d}")
        browsers.append(browser)
    kinds = {"session": [b.session_key() for b in browsers],
             "index": [deployment.index_key(b.user) for b in browsers],
             "census": [deployment.admin.census.key]}
    client = redis.Redis.from_url(_db_url(url, scratch), decode_responses=True)
    at_rest = set(kinds["session"]) | set(kinds["index"]) | set(kinds["census"])
    prefix = deployment.admin.index.key_prefix
    others = [k for k in client.scan_iter(count=1000)
              if k not in at_rest and not k.endswith("store-id")]
    layer = Layer("sessionshare", n, short_lived=_short_lived(client, others, prefix))
    client.close()
    store.close()
    layer.used_memory = _copy_at_rest(url, scratch, clean, kinds, admin)
    layer.kinds = _describe(url, clean, kinds)
    layers[layer.name] = layer
    # The peers: one /login each, defaults otherwise.
    for name in ("flask-session", "beaker"):
        scratch, clean = DATABASES[name]
        log(f"memory: {n:,} sign-ins through {name} ...")
        peer_client = redis.Redis.from_url(_db_url(url, scratch))
        app = (flask_session_app(peer_client) if name == "flask-session"
               else beaker_app(_db_url(url, scratch)))
        _peer_sign_ins(app, n)
        records = [k.decode() for k in peer_client.scan_iter(count=1000)]
        if len(records) != n:
            raise RuntimeError(f"{name}: {len(records)} keys for {n} sign-ins")
        peer_client.close()
        layer = Layer(name, n)
        layer.used_memory = _copy_at_rest(url, scratch, clean, {"record": records}, admin)
        layer.kinds = _describe(url, clean, {"record": records})
        layers[name] = layer
    admin.close()
    return layers
