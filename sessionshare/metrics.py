"""Prometheus metrics: events by reason, store latency, signed-in sessions.

Needs ``prometheus_client`` (``pip install 'sessionshare[prometheus]'``).
One :class:`PrometheusMetrics` per process feeds three metrics from two
seams the library already has, so the protocol and the shells run exactly
as they do without it:

- ``sessionshare_events_total{event, reason}``: every event the core
  reports (:mod:`sessionshare.core.events`), through the ``on_event`` hook;
- ``sessionshare_store_seconds{command}``: a histogram of each store call
  (``load``, ``save``, ``take_ticket``, ...), through a wrapped store
  (:meth:`PrometheusMetrics.instrument`);
- ``sessionshare_sessions_active``: sign-ins minus the sessions ended that
  this process saw (see :meth:`PrometheusMetrics.on_event` for what it
  cannot see).

An app that passes neither the hook nor the wrapped store pays nothing.
Labels hold event names, reason codes and command names only -- never a
user, session id, ticket, token or key -- so their number stays small.

    metrics = PrometheusMetrics()                    # prometheus_client's REGISTRY
    app = IdpAuthMiddleware(app, store=metrics.instrument(store),
                            on_event=metrics.on_event, ...)
    # scraped with the app's existing /metrics, or mount metrics.wsgi_app()
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import make_asgi_app as _make_asgi_app
from prometheus_client import make_wsgi_app as _make_wsgi_app

from .store.base import AsyncSessionStore, SessionStore
from .store.observed import COMMANDS, observed

__all__ = ["STORE_BUCKETS", "PrometheusMetrics"]

#: Store latency buckets (seconds): a loopback Redis answers in about 50 microseconds.
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5)
#: A reason label is one of the library's codes; a cap keeps any other text short.
_REASON_CHARS = 40


class PrometheusMetrics:
    """The library's metrics, registered once in ``registry``.

    :param registry: where the metrics are registered: the app's own
        ``CollectorRegistry``; by default prometheus_client's ``REGISTRY``.
    :param namespace: the metric names' prefix.
    :param buckets: the store histogram's buckets, in seconds.

    Build one per process and registry: registering the same names twice in
    one registry fails, as prometheus_client does for any metric.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "sessionshare",
        buckets: tuple[float, ...] = STORE_BUCKETS,
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.events = Counter(
            "events", "Events reported by sessionshare, by event and reason code.",
            ["event", "reason"], namespace=namespace, registry=self.registry,
        )
        self.store_seconds = Histogram(
            "store_seconds", "Time spent in one session-store call, by command.",
            ["command"], namespace=namespace, buckets=buckets, registry=self.registry,
        )
        self.sessions_active = Gauge(
            "sessions_active",
            "Sign-ins minus sessions ended by logout, revocation or the absolute timeout, "
            "as seen by this process (idle expiry is not seen).",
            namespace=namespace, registry=self.registry,
        )
        # One child per command, made now: a store call then looks nothing up.
        self._timers = {command: self.store_seconds.labels(command) for command in COMMANDS}

    def on_event(self, name: str, fields: dict[str, Any]) -> None:
        """The middlewares' (and ``SessionAdmin``'s) ``on_event`` hook.

        Counts the event under its reason code (empty when it has none) and
        moves the active-sessions gauge: up on ``login``, down on a ``logout``
        of a signed-in session, on ``session_revoked`` (by its count) and on
        ``session_expired``. A session that simply idles out is deleted by the
        store's expiry and reported by no one, so the gauge is an upper bound
        that a restart resets; across processes, sum it. A true count would
        need a global index of every session: one more write per sign-in and,
        on a cluster, one hot key.
        """
        reason = fields.get("reason")
        self.events.labels(name, "" if reason is None else str(reason)[:_REASON_CHARS]).inc()
        if name == "login":
            self.sessions_active.inc()
        elif name == "logout" and "user" in fields:
            self.sessions_active.dec()
        elif name == "session_expired":
            self.sessions_active.dec()
        elif name == "session_revoked":
            count = fields.get("count")
            self.sessions_active.dec(count if isinstance(count, int) else 1)

    def watch(self, command: str) -> AbstractContextManager[object]:
        """A timer observing one ``command`` call into the store histogram."""
        timer = self._timers.get(command)
        if timer is None:
            timer = self.store_seconds.labels(command)
        return timer.time()

    def instrument(self, store: SessionStore | AsyncSessionStore) -> Any:
        """``store``, timing each call into ``sessionshare_store_seconds``.

        Give the result to the middleware as its ``store``. An asyncio store
        gives an asyncio one; for an ASGI app over a ``MemoryStore``, wrap
        ``AsyncMemoryStore(memory_store)``.
        """
        return observed(store, self.watch)

    def wsgi_app(self) -> Callable[..., Any]:
        """A WSGI app serving this registry's metrics in the text format, to mount at
        ``/metrics`` (prometheus_client's ``make_wsgi_app``)."""
        return _make_wsgi_app(self.registry)

    def asgi_app(self) -> Callable[..., Any]:
        """The same, as an ASGI app (``make_asgi_app``)."""
        return _make_asgi_app(self.registry)
