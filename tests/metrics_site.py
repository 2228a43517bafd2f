"""A WSGI app for gunicorn ``--preload``: the active-sessions gauge started at import.

``tests/test_metrics.py`` serves it with real gunicorn workers forked from a
master that imported it. The master's count is held open (as a slow count
would be) so that every worker is forked while its parent counts -- the case
where a child used to inherit the parent's locks held, and hang forever.

The metrics app is guarded as documented: a scraper sends the bearer token of
``SESSIONSHARE_METRICS_TOKEN``.

    SESSIONSHARE_STORE_URL=redis://... SESSIONSHARE_SYNC_KEY=... \\
    SESSIONSHARE_METRICS_TOKEN=... gunicorn --preload metrics_site:app
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from sessionshare import RedisStore, SessionAdmin
from sessionshare.metrics import PrometheusMetrics

MASTER = os.getpid()
_never = threading.Event()


class MastersCountHangs(SessionAdmin):
    """Counts normally -- except in the master, whose count never ends."""

    def count_sessions(self, *, sweep_every: float = 60.0) -> int:
        if os.getpid() == MASTER:
            _never.wait()
        return super().count_sessions(sweep_every=sweep_every)


store = RedisStore.from_url(os.environ["SESSIONSHARE_STORE_URL"])
metrics = PrometheusMetrics(
    registry=CollectorRegistry(),
    sessions=MastersCountHangs(store, os.environ["SESSIONSHARE_SYNC_KEY"]),
    sessions_every=0.2,
)
assert metrics.sessions is not None
metrics.sessions.start()  # at import, in the master: gunicorn forks the workers after
_metrics_app = metrics.wsgi_app()  # token: SESSIONSHARE_METRICS_TOKEN


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The metrics, each answer naming the worker that served it (``X-Worker``)."""

    def naming_worker(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*headers, ("X-Worker", str(os.getpid()))], *args)

    return _metrics_app(environ, naming_worker)  # type: ignore[no-any-return]
