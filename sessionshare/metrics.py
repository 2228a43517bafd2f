"""Prometheus metrics: events by reason, store latency, signed-in sessions.

Needs ``prometheus_client`` (``pip install 'sessionshare[prometheus]'``).
One :class:`PrometheusMetrics` per process feeds three metrics from two
seams the library already has, so the protocol and the shells run exactly
as they do without it:

- ``sessionshare_events_total{event, reason}``: every event the core
  reports (:mod:`sessionshare.core.events`), through the ``on_event`` hook;
- ``sessionshare_store_seconds{command}``: a histogram of each store call,
  through a wrapped store (:meth:`PrometheusMetrics.instrument`);
- ``sessionshare_sessions_active``: the live shared sessions of all users,
  read from the deployment's census by a background thread every
  ``sessions_every`` seconds, when a :class:`~sessionshare.SessionAdmin` is
  given as ``sessions`` (:meth:`~sessionshare.SessionAdmin.count_sessions`
  says how close the figure is).

An app that passes neither the hook nor the wrapped store pays nothing.
Labels hold event names, reason codes and command names only -- never a
user, session id, ticket, token or key -- so their number stays small.

    metrics = PrometheusMetrics(sessions=SessionAdmin(store, key))   # REGISTRY
    app = IdpAuthMiddleware(app, store=metrics.instrument(store),
                            on_event=metrics.on_event, ...)
    # scraped with the app's existing /metrics, or mount metrics.wsgi_app()

:meth:`~PrometheusMetrics.wsgi_app` and ``asgi_app`` serve the metrics only
to a scraper with the bearer token of ``SESSIONSHARE_METRICS_TOKEN`` (or, if
asked, to this machine's loopback; :mod:`sessionshare.metrics_access` says
why): a public ``/metrics`` would show anyone how many users are signed in
and why sign-ins fail.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import make_asgi_app as _make_asgi_app
from prometheus_client import make_wsgi_app as _make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .metrics_access import MetricsAccess, guard_asgi, guard_wsgi
from .store.base import AsyncSessionStore, SessionStore
from .store.observed import COMMANDS, observed

if TYPE_CHECKING:
    from .admin import SessionAdmin

log = logging.getLogger("sessionshare")

__all__ = ["STORE_BUCKETS", "ActiveSessions", "PrometheusMetrics"]

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
    :param sessions: a :class:`~sessionshare.SessionAdmin` over the shared store (a
        thread store, even for an ASGI app): with it, ``sessions_active`` counts every
        user's live sessions, on a background thread. Without it there is no such gauge.
    :param sessions_every: seconds between two counts, each one round trip; also
        how long a session that expired unread may stay in the figure.

    Build one per process and registry: registering the same names twice in
    one registry fails, as prometheus_client does for any metric. :meth:`close`
    stops the counting thread.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "sessionshare",
        buckets: tuple[float, ...] = STORE_BUCKETS,
        sessions: SessionAdmin | None = None,
        sessions_every: float = 60.0,
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
        # One child per command, made now: a store call then looks nothing up.
        self._timers = {command: self.store_seconds.labels(command) for command in COMMANDS}
        self.sessions: ActiveSessions | None = None
        if sessions is not None:
            self.sessions = ActiveSessions(sessions, f"{namespace}_sessions_active",
                                           every=sessions_every)
            self.registry.register(self.sessions)  # counts from the first scrape on

    def on_event(self, name: str, fields: dict[str, Any]) -> None:
        """The middlewares' (and ``SessionAdmin``'s) ``on_event`` hook: counts the event
        under its reason code (empty when it has none)."""
        reason = fields.get("reason")
        self.events.labels(name, "" if reason is None else str(reason)[:_REASON_CHARS]).inc()

    def close(self) -> None:
        """Stop counting sessions (the metrics stay registered)."""
        if self.sessions is not None:
            self.sessions.stop()

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

    def wsgi_app(self, *, token: str | None = None, loopback: bool = False
                 ) -> Callable[..., Any]:
        """A WSGI app serving this registry's metrics in the text format, to mount at
        ``/metrics`` (prometheus_client's ``make_wsgi_app``), guarded as
        :mod:`sessionshare.metrics_access` says.

        :param token: the bearer token a scraper must send; None reads
            ``SESSIONSHARE_METRICS_TOKEN``; shorter than 32 characters: a
            :class:`~sessionshare.ConfigurationError`.
        :param loopback: with no token, serve this machine's loopback clients (only
            where no proxy runs on the machine); with neither, nobody is served.
        """
        return guard_wsgi(_make_wsgi_app(self.registry), MetricsAccess(token, loopback=loopback))

    def asgi_app(self, *, token: str | None = None, loopback: bool = False
                 ) -> Callable[..., Any]:
        """The same, as an ASGI app (``make_asgi_app``), guarded the same way."""
        return guard_asgi(_make_asgi_app(self.registry), MetricsAccess(token, loopback=loopback))


class ActiveSessions(Collector):
    """``<namespace>_sessions_active``: every user's live sessions, counted now and then.

    A thread counts them with :meth:`SessionAdmin.count_sessions` every
    ``every`` seconds and keeps the figure; a scrape only reads it, so it never
    waits on the store -- nor blocks an event loop that serves ``/metrics``.
    The thread starts at the first scrape (or :meth:`start`) in the process
    that scrapes, so a server that forks its workers after building the app
    counts in each worker; a child forked while the parent counts gets fresh
    locks and state (:meth:`after_fork`). A count that fails is logged
    (``sessions_count_failed``); after :data:`STALE_AFTER` failures in a row
    the sample is dropped rather than shown stale. Until the first count there
    is no sample.
    """

    #: Failed counts in a row after which the last figure is no longer shown.
    STALE_AFTER = 3

    def __init__(self, admin: SessionAdmin, name: str, *, every: float = 60.0) -> None:
        if not every > 0:
            raise ValueError("sessions_every must be a positive number of seconds")
        admin.check_counting()  # a store that cannot count fails here, not on a thread
        self.admin = admin
        self.name = name
        self.every = float(every)
        self.value: int | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._starting = threading.Lock()
        # One count at a time: the figure kept is always the latest count's.
        self._counting = threading.Lock()
        _GAUGES.add(self)

    def after_fork(self) -> None:
        """In a child just forked: start over with fresh locks and no figure.

        Only the forking thread exists in the child. Any lock the parent's counting
        thread held at that moment -- in the middle of a count, say -- would stay held
        here forever, and every count (so the gauge) would hang on it.
        """
        counting = self._thread is not None and not self._stop.is_set()
        stopped = self._stop.is_set()
        self._starting, self._counting = threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._pid, self._thread, self.value, self.failures = os.getpid(), None, None, 0
        if counting:
            self.start()  # the parent counted: so does each worker, from its start

    def refresh(self) -> int:
        """Count now; the new figure (StoreUnavailable when the store is down)."""
        with self._counting:
            self.value = self.admin.count_sessions(sweep_every=self.every)
            self.failures = 0
            return self.value

    def start(self) -> None:
        """Count in a daemon thread, now and every ``every`` seconds until :meth:`stop`
        (again in a forked child, whose parent's thread did not come along)."""
        with self._starting:
            if self._pid != os.getpid():
                self._pid, self._thread, self.value = os.getpid(), None, None
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="sessionshare-sessions",
                                                daemon=True)
                self._thread.start()

    @property
    def running(self) -> bool:
        """True while the counting thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the counting thread (within a count's time)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - a gauge must not die of one bad count
                self.failures += 1
                if self.failures >= self.STALE_AFTER:
                    self.value = None
                log.warning("sessions_count_failed error=%s failures=%d",
                            type(exc).__name__, self.failures)
            self._stop.wait(self.every)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, _SESSIONS_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._pid != os.getpid() or self._thread is None:
            self.start()
        if self.value is not None:
            yield GaugeMetricFamily(self.name, _SESSIONS_HELP, value=self.value)


_SESSIONS_HELP = ("Live shared sessions of all users, read from the deployment's census "
                  "(refreshed every sessions_every seconds; a session that expired unread "
                  "leaves it within that time).")

#: Every gauge of this process, for the fork handler (weakly: a dropped gauge goes).
_GAUGES: weakref.WeakSet[ActiveSessions] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for gauge in list(_GAUGES):
        gauge.after_fork()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
