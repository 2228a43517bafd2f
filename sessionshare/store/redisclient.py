"""The Redis stores' client: how it is built, checked and named, and what it may raise.

Shared by :class:`~sessionshare.store.RedisStore` and
:class:`~sessionshare.store.AsyncRedisStore` through :class:`ClientStore`, with
the warnings for a set-up that would hang or lose sessions.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, NamedTuple, TypeVar

from redis import utils as redis_utils
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from ..errors import ConfigurationError, StoreUnavailable
from .exchange import DEFAULT_MAX_IDLE, packs_like_redis_py
from .redisproto import Seen

__all__ = ["DRIVER_ERRORS", "POLICY_UNKNOWN", "ClientStore", "Lines", "eviction_warning",
           "line_for", "server_name", "unavailable", "warn_without_timeout", "web_client"]

S = TypeVar("S", bound="ClientStore")

#: Everything the driver may raise for an unreachable or failing server (a cluster's
#: errors do not derive from RedisError; a socket may fail below redis-py's wrapping).
DRIVER_ERRORS = (RedisError, RedisClusterException, OSError)


class Lines(NamedTuple):
    """The redis-py classes of one flavour (threads or asyncio) and the lines for them."""

    #: The plain single-server client, its pool and connection classes: the fast path's.
    client: Any
    pool: Any
    connection: Any
    cluster: Any
    #: The client methods a store needs, beyond a pool or a cluster's nodes.
    methods: tuple[str, ...]
    #: The retry class ``from_url`` gives the client.
    retry: Any
    #: The line classes: the fast path, a pool's, a cluster's.
    direct: Any
    pooled: Any
    clustered: Any

    def accepts(self, client: Any) -> bool:
        """True for a client of this flavour: a cluster, or one with a connection pool."""
        return all(hasattr(client, name) for name in self.methods) and (
            isinstance(client, self.cluster) or hasattr(client, "connection_pool")
        )


def line_for(client: Any, max_idle: int | None, lines: Lines) -> Any:
    """The line this client's commands go out on; every one keeps ``exchange.py``'s rules.

    The fast path (``DirectLine`` and its asyncio twin) for a plain single-server
    client whose connections ``exchange.pack`` packs for byte for byte, RESP2 or
    RESP3 (the connection's parser handles a RESP3 push before the reply it
    precedes). redis-py's pool for what the fast path cannot park: a client-side
    cache (its invalidation pushes and lock), a Sentinel master (which may move),
    any other pool or connection class of the user's own; ``ClusterLine`` for a
    Cluster.
    """
    if isinstance(client, lines.cluster):
        return lines.clustered(client)
    pool = client.connection_pool
    if (
        type(client) is lines.client
        and type(pool) is lines.pool
        and getattr(pool, "cache", None) is None
        and _protocol(pool) in ("2", "3")
        and packs_like_redis_py(pool, lines.connection)
    ):
        if max_idle is None:
            # Half the pool's bound at most: the client's own commands keep the rest.
            max_idle = min(DEFAULT_MAX_IDLE, max(pool.max_connections // 2, 1))
        return lines.direct(pool, max_idle)
    return lines.pooled(pool)


def _protocol(pool: Any) -> str:
    """The RESP version the pool's connections speak (redis-py 8 defaults to 3)."""
    given = pool.connection_kwargs.get("protocol")
    if given is None:
        given = getattr(redis_utils, "DEFAULT_RESP_VERSION", 2)
    return str(given)


class ClientStore:
    """What both Redis stores do with their client: check it, pick the line its commands go
    out on (``exchange.py``), and name its server for an outage message (no password)."""

    #: The redis-py classes of the store's flavour (threads or asyncio) and their lines.
    _lines: ClassVar[Lines]
    #: The client the store takes, for the error that names it.
    _wants: ClassVar[str]

    def __init__(self, client: Any, *, max_idle_connections: int | None = None) -> None:
        name = type(self).__name__
        if not self._lines.accepts(client):
            raise ConfigurationError(
                f"{name} needs {self._wants}; use {name}.from_url('redis://host:6379/0') "
                "for a URL"
            )
        if max_idle_connections is not None and (
            not isinstance(max_idle_connections, int) or max_idle_connections < 0
        ):
            raise ConfigurationError("max_idle_connections must be a whole number >= 0")
        self.client = client
        self._line = line_for(client, max_idle_connections, self._lines)
        #: The session this thread or task last read, for its write (redisproto.save).
        self._seen: Seen = ContextVar(f"sessionshare_seen_{id(self):x}", default=None)
        # A cluster keeps a session's new id and a user's index in other slots than the
        # session: a move and a checked index entry take more than one step there.
        self._on_cluster = isinstance(self._line, self._lines.clustered)
        if isinstance(client, self._lines.cluster):
            # On the cluster client (asyncio) or its nodes manager (threads).
            manager = getattr(client, "nodes_manager", None)
            kwargs = (getattr(client, "connection_kwargs", None)
                      or getattr(manager, "connection_kwargs", None))
        else:
            kwargs = getattr(client.connection_pool, "connection_kwargs", None)
        warn_without_timeout(name, kwargs)
        self._server = server_name(kwargs, getattr(client, "connection_pool", None))

    @classmethod
    def from_url(
        cls: type[S],
        url: str,
        *,
        socket_timeout: float = 1.0,
        max_connections: int | None = None,
        **client_options: Any,
    ) -> S:
        """A store over the client ``from_url(url)`` builds, with settings suited to a
        web request: short timeouts make an outage a quick 503 rather than a hung
        worker; one quick retry rides over a connection the server closed while idle
        (every command the store sends is safe to run twice); RESP2 unless
        ``protocol=3`` is passed. ``client_options`` go to redis-py as they are.
        """
        client = web_client(
            cls._lines.client.from_url, cls._lines.retry, url, socket_timeout=socket_timeout,
            max_connections=max_connections, client_options=client_options,
        )
        return cls(client)

    def _forget(self, key: str) -> None:
        """This context's read of ``key`` is out of date (a mark, a move or an end of it is
        under way): its next write merges rather than try a text the server lost."""
        base = self._seen.get()
        if base is not None and base[0] == key:
            self._seen.set(None)

    @property
    def uses_fast_path(self) -> bool:
        """True when commands skip redis-py's client and pool (a plain Redis client, RESP2
        or RESP3, no client-side cache)."""
        return isinstance(self._line, self._lines.direct)

    @property
    def idle_connections(self) -> int:
        """Connections the fast path holds parked right now (0 off the fast path)."""
        return int(self._line.idle_count) if self.uses_fast_path else 0


#: Eviction policies under which Redis may drop sessions and tickets silently.
EVICTING_POLICIES = frozenset({
    "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
})


def server_name(connection_kwargs: Any, pool: Any = None) -> str:
    """Where the client's connections go, for a log line: ``host:port``, the socket path
    or a Sentinel service. From the connection settings, never a URL: no password."""
    kwargs = connection_kwargs if isinstance(connection_kwargs, Mapping) else {}
    if kwargs.get("path"):
        where = f"unix socket {kwargs['path']}"
    elif kwargs.get("host"):
        where = f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    elif getattr(pool, "service_name", None):
        where = f"sentinel master {pool.service_name!r}"
    else:
        where = "the server"
    return where[:200]


def unavailable(exc: BaseException, server: str = "the server") -> StoreUnavailable:
    """The store's error for a driver failure: where it went and why, never a password
    (redis-py's own messages can echo a URL with one: only the error classes and an
    errno, spelled by the operating system, appear)."""
    return StoreUnavailable(f"redis at {server} did not answer: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    """``ConnectionError (ConnectionRefusedError, errno 111: Connection refused)``."""
    cause: BaseException | None = exc
    for _ in range(5):  # the OSError redis-py wrapped, a few links down its chain at most
        if cause is None or isinstance(cause, OSError):
            break
        cause = cause.__cause__ or cause.__context__
    text = type(exc).__name__
    parts: list[str] = []
    errno: int | None = None
    if isinstance(cause, OSError):
        if cause is not exc and type(cause).__name__ != text:
            parts.append(type(cause).__name__)
        if isinstance(cause.errno, int) and cause.errno > 0:
            errno = cause.errno
            # Spelled by the OS from the number: the exception's strerror may be a library's
            # text that names the address (asyncio's "Connect call failed ('127.0.0.1', 1)").
            parts.append(f"errno {errno}: {os.strerror(errno)}")
    else:
        # redis.asyncio drops the OSError from the chain; its message starts "Error 111
        # connecting to ...". Only the number is taken from it, and spelled by the OS.
        first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        match = _CONNECT_ERRNO.match(first)
        if match:
            errno = int(match.group(1))
            parts.append(f"errno {errno}: " + (
                os.strerror(errno) if errno > 0 else "the host name did not resolve"
            ))
    return f"{text} ({', '.join(parts)})" if parts else text


_CONNECT_ERRNO = re.compile(r"Error (-?[0-9]{1,5}) connecting to ")


def web_client(
    from_url: Any,
    retry_class: Any,
    url: str,
    *,
    socket_timeout: float,
    max_connections: int | None,
    client_options: Mapping[str, Any],
) -> Any:
    """``from_url(url, ...)`` with the settings of :meth:`ClientStore.from_url`."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "store URL must start with redis://, rediss:// or unix://, "
            f"got {url.split(':')[0]!r}"
        )
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": retry_class(ExponentialBackoff(cap=0.05, base=0.01), 1),
        "health_check_interval": 0,
        "protocol": 2,
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    if not {"driver_info", "lib_name", "lib_version"} & set(client_options):
        options.update(_driver_info())  # lib_name=None etc. keep their meaning
    options.update(client_options)
    try:
        return from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"bad store URL: {exc}") from None


def _driver_info() -> dict[str, Any]:
    """What ``CLIENT SETINFO`` says of the driver, worked out once for the client:
    redis-py 7 and later, given nothing, read the package's metadata for every
    connection they open (about 5 ms of CPU each, a burst of them holding the loop)."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:
        return {}
    return {"driver_info": DriverInfo()}


def warn_without_timeout(store: str, connection_kwargs: Any) -> None:
    """Log a warning when the client's connections wait for a reply forever: a Redis
    that stops answering (paused, a half-open TCP connection after a failover) would
    hold every worker until a restart. redis-py's own ``from_url`` sets no timeout."""
    kwargs = connection_kwargs if isinstance(connection_kwargs, Mapping) else {}
    if kwargs.get("socket_timeout") is None:
        logging.getLogger("sessionshare").warning(
            "store_without_timeout store=%s: the Redis client has no socket_timeout, so a "
            "hung Redis blocks requests forever instead of answering 503; build it with "
            "socket_timeout=1 (as %s.from_url does)", store, store,
        )


def eviction_warning(answer: Any) -> str | None:
    """What ``CONFIG GET maxmemory-policy`` says about sessions being evicted, or None."""
    policies = answer.values() if isinstance(answer, dict) else [answer]
    for policy in policies:
        text = policy.decode() if isinstance(policy, bytes) else str(policy)
        if text in EVICTING_POLICIES:
            return (f"maxmemory-policy is {text}: Redis may evict sessions and tickets "
                    "(users signed out, hand-offs refused as replayed); give sessions a "
                    "Redis of their own with maxmemory-policy noeviction")
    return None


#: When ``CONFIG GET`` is refused (managed Redis often renames CONFIG).
POLICY_UNKNOWN = ("could not read maxmemory-policy (CONFIG GET refused?); make sure the "
                  "server does not evict keys: maxmemory-policy noeviction")
