"""Prometheus metrics (``sessionshare.metrics``) over a whole deployment, both shells.

Each test runs on MemoryStore and a real Redis (``store``) and, where it
takes ``shell``, through the WSGI and the ASGI middlewares. Every test has a
registry of its own; the numbers are read back with the registry's own
sample lookup and, for the exposition, scraped over WSGI and ASGI and parsed
with ``prometheus_client.parser``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import webtest
from asgibridge import WsgiToAsgi
from conftest import FakeClock, looks_secret
from flow import BLOG, IDP, SHOP, Browser, Deployment, async_twin, reason_of
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port, gunicorn_alone

from sessionshare import (
    ConfigurationError,
    MemoryStore,
    RedisStore,
    SessionAdmin,
    SessionStore,
    StoreUnavailable,
    SyncKey,
)
from sessionshare.metrics import ActiveSessions, PrometheusMetrics
from sessionshare.store.amemory import AsyncMemoryStore
from sessionshare.store.observed import COMMANDS, ObservedStore

EVENTS = "sessionshare_events_total"
#: A scrape from this machine (with no token set, the mounted app serves only the loopback).
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
LOGOUT = IDP + "/_sessionshare/logout"


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics(registry=CollectorRegistry())


def deployment(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics, shell: str = "wsgi",
    *, store_of: Any = None, **idp: Any,
) -> Deployment:
    """A deployment reporting to ``metrics``: its hook, and its store instrumented
    (``store_of`` puts another wrapper under the instrumented one)."""
    inner = store_of or (lambda s: s)
    common = {"on_event": metrics.on_event}
    if shell == "asgi":
        twin = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_twin(store)
        return Deployment(store, clock, shell="asgi", async_store=metrics.instrument(inner(twin)),
                          idp_options={**common, **idp}, remote_options=common)
    return Deployment(metrics.instrument(inner(store)), clock, idp_options={**common, **idp},
                      remote_options=common)


def events(metrics: PrometheusMetrics, event: str, reason: str = "") -> float:
    value = metrics.registry.get_sample_value(EVENTS, {"event": event, "reason": reason})
    return 0.0 if value is None else value


def store_calls(metrics: PrometheusMetrics) -> dict[str, float]:
    """Observations of the store histogram, by command (those with none left out)."""
    found = {}
    for command in COMMANDS:
        count = metrics.registry.get_sample_value("sessionshare_store_seconds_count",
                                                  {"command": command})
        if count:
            found[command] = count
    return found


def active(metrics: PrometheusMetrics) -> float:
    value = metrics.registry.get_sample_value("sessionshare_sessions_active")
    assert value is not None
    return value


def test_each_step_is_counted_with_its_reason_code(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics, shell: str
) -> None:
    dep = deployment(store, clock, metrics, shell)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(token_url).status_int == 303
    assert events(metrics, "login_redirect") == 1 and events(metrics, "login") == 1
    assert events(metrics, "ticket_issued") == 1 and events(metrics, "ticket_redeemed") == 1

    replay = browser.get(token_url)
    assert replay.status_int == 403 and reason_of(replay) == "bad_state"
    assert events(metrics, "token_rejected", "bad_state") == 1
    assert events(metrics, "token_rejected") == 0  # the reason is the label, not dropped

    assert browser.sign_in_at(BLOG + "/x").json["user"] == "alice"  # no form: no second login
    assert events(metrics, "login") == 1 and events(metrics, "ticket_redeemed") == 2
    assert browser.post(LOGOUT).status_int == 303
    assert events(metrics, "logout") == 1


def test_the_store_histogram_observes_every_call_by_command(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics, shell: str
) -> None:
    made: Counter[str] = Counter()

    def count(command: str) -> AbstractContextManager[object]:
        made[command] += 1
        return nullcontext()

    def counted(inner: Any) -> Any:
        # The calls the store really received, counted under the instrumented wrapper.
        if shell == "asgi":
            from sessionshare.store.observed import AsyncObservedStore

            return AsyncObservedStore(inner, count)
        return ObservedStore(inner, count)

    dep = deployment(store, clock, metrics, shell, store_of=counted)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    assert store_calls(metrics) == dict(made)
    assert {"load", "save", "claim_state", "take_ticket", "mark", "index_put"} <= set(made)
    assert metrics.registry.get_sample_value("sessionshare_store_seconds_sum",
                                             {"command": "load"}) > 0

    # The authenticated read: one store call, a load, and nothing else.
    before = store_calls(metrics)
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    after = store_calls(metrics)
    assert {c: after[c] - before.get(c, 0) for c in after if after[c] != before.get(c)} == {
        "load": 1
    }


def counted(store: SessionStore, key: Any, clock: FakeClock, *, every: float = 3600
            ) -> PrometheusMetrics:
    """Metrics whose gauge counts the sessions of ``store`` (a count only when asked; a
    sweep at most every ``every`` seconds of ``clock`` on a memory store)."""
    metrics = PrometheusMetrics(registry=CollectorRegistry(),
                                sessions=SessionAdmin(store, key, clock=clock),
                                sessions_every=every)
    assert metrics.sessions is not None
    return metrics


def active_now(metrics: PrometheusMetrics) -> float:
    assert metrics.sessions is not None
    metrics.sessions.refresh()
    return active(metrics)


def test_the_active_sessions_gauge_counts_the_index_across_users_and_apps(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics
) -> None:
    dep = deployment(store, clock, metrics)
    gauge = counted(store, dep.key, clock)
    try:
        assert active_now(gauge) == 0
        browsers = [Browser(dep) for _ in range(3)]
        for browser in browsers:
            browser.sign_in_at(SHOP + "/orders")
        bob = Browser(dep)
        bob.sign_in_at(SHOP + "/orders", user="bob")
        assert active_now(gauge) == 4
        browsers[0].sign_in_at(BLOG + "/x")  # a hand-off joins a session, starts none
        assert active_now(gauge) == 4

        assert browsers[0].post(LOGOUT).status_int == 303
        assert active_now(gauge) == 3
        admin = SessionAdmin(store, dep.key, clock=clock)
        assert admin.revoke("alice", admin.sessions("alice")[0].ref)
        assert active_now(gauge) == 2
        assert admin.revoke_all("alice") == 1
        assert active_now(gauge) == 1  # bob's
    finally:
        gauge.close()


def test_sessions_that_idled_out_or_passed_their_absolute_timeout_are_not_counted(
    clock: FakeClock, metrics: PrometheusMetrics
) -> None:
    """What no event reports -- a session nobody came back to -- leaves the count too.

    On MemoryStore, whose expiry follows the test's clock (Redis's follows real time;
    tests/test_admin.py's bound test cuts the keys short there).
    """
    store = MemoryStore(clock=clock)
    dep = deployment(store, clock, metrics, idle_timeout=600, absolute_timeout=3600)
    # A sweep every minute: an expiry leaves the figure within a minute (each step below
    # moves the clock further than that, so each count is exact).
    gauge = counted(store, dep.key, clock, every=60)
    try:
        idle, busy = Browser(dep), Browser(dep)
        idle.sign_in_at(SHOP + "/orders")
        busy.sign_in_at(SHOP + "/orders")
        assert active_now(gauge) == 2
        for _ in range(3):
            clock.advance(500)
            assert busy.get(IDP + "/").text == "idp home user=alice"  # keeps it alive
        assert active_now(gauge) == 1  # the idle one expired in the store: no event said so
        clock.advance(3600)
        assert active_now(gauge) == 0  # past its absolute timeout too
    finally:
        gauge.close()


def test_without_an_admin_there_is_no_gauge(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics
) -> None:
    dep = deployment(store, clock, metrics)
    Browser(dep).sign_in_at(SHOP + "/orders")
    assert metrics.registry.get_sample_value("sessionshare_sessions_active") is None
    assert metrics.registry.get_sample_value(EVENTS, {"event": "login", "reason": ""}) == 1


def test_the_count_runs_on_its_own_thread_from_the_first_scrape(clock: FakeClock) -> None:
    """The thread starts at the first scrape (so a worker forked after the app was built
    counts for itself); a failing count is logged, and after three in a row the figure is
    dropped rather than shown stale; close() stops the thread."""
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock)
    Browser(dep).sign_in_at(SHOP + "/orders")
    failing = [False]

    class Flaky(SessionAdmin):
        def count_sessions(self, *, sweep_every: float = 60.0) -> int:
            if failing[0]:
                raise StoreUnavailable("down")
            return super().count_sessions(sweep_every=sweep_every)

    metrics = PrometheusMetrics(registry=CollectorRegistry(),
                                sessions=Flaky(store, dep.key, clock=clock), sessions_every=0.05)
    assert metrics.sessions is not None and not metrics.sessions.running  # not before a scrape

    def sample() -> float | None:
        return metrics.registry.get_sample_value("sessionshare_sessions_active")

    def wait_for(expected: float | None) -> None:
        deadline = time.monotonic() + 10
        while sample() != expected:
            assert time.monotonic() < deadline, f"the gauge never showed {expected}"
            time.sleep(0.01)

    try:
        wait_for(1)
        assert metrics.sessions.running
        failing[0] = True
        wait_for(None)  # three failed counts: no stale figure
        assert metrics.sessions.failures >= ActiveSessions.STALE_AFTER
        failing[0] = False
        wait_for(1)  # the store is back
    finally:
        metrics.close()
    assert not metrics.sessions.running


def test_a_worker_forked_after_the_first_scrape_counts_for_itself(clock: FakeClock) -> None:
    """A pre-fork server (gunicorn --preload) copies the metrics into each worker, but not
    the parent's counting thread: a worker's first scrape starts a thread of its own."""
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock)
    Browser(dep).sign_in_at(SHOP + "/orders")
    metrics = PrometheusMetrics(registry=CollectorRegistry(),
                                sessions=SessionAdmin(store, dep.key, clock=clock),
                                sessions_every=0.05)
    gauge = metrics.sessions
    assert gauge is not None
    try:
        metrics.registry.get_sample_value("sessionshare_sessions_active")  # starts the thread
        assert gauge.running
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
            child = os.fork()
        if child == 0:  # the worker: its copy of the parent's thread does not run here,
            code = 1  # but the fork handler starts one of its own
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    value = metrics.registry.get_sample_value("sessionshare_sessions_active")
                    if gauge.running and value == 1:
                        code = 0
                        break
                    time.sleep(0.01)
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the forked worker never counted"
    finally:
        metrics.close()


def test_the_gauge_counts_in_every_worker_of_a_preloading_gunicorn(
    redis_url: str, clock: FakeClock
) -> None:
    """Issue 23, finding 5: gunicorn --preload, the gauge started at import. A worker forked
    while its parent counted inherited the parent's locks held by a thread that does not
    exist in the worker, and its count hung forever: no worker ever showed the gauge."""
    store = RedisStore.from_url(redis_url)
    dep = Deployment(store, clock)
    Browser(dep).sign_in_at(SHOP + "/orders")
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "metrics_site:app", "--preload",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
         "--timeout", "30", "--graceful-timeout", "2", "--log-level", "warning",
         "--pythonpath", str(Path(__file__).parent), *gunicorn_alone()],
        env={**os.environ, "SESSIONSHARE_STORE_URL": redis_url,
             "SESSIONSHARE_SYNC_KEY": dep.key, "SESSIONSHARE_METRICS_TOKEN": SCRAPER_TOKEN},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        seen: dict[str, float | None] = {}  # worker pid -> its gauge
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(seen) == 2 and all(value == 1 for value in seen.values())
        ):
            try:
                worker, text = _get(port, "/metrics")  # a new connection each time
                seen[worker] = _gauge(text)
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        assert server.poll() is None, "gunicorn exited"
        assert len(seen) == 2 and all(value == 1 for value in seen.values()), seen
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=15)
        assert server.returncode == 0 or b"Traceback" not in errors, errors[-2000:]


#: The bearer token the preloading site's guarded metrics app asks a scraper for.
SCRAPER_TOKEN = "scraper-token-" + "x" * 32


def _get(port: int, path: str) -> tuple[str, str]:
    """The worker that answered (its pid) and the body, as the scraper sees them."""
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, (response.status, body[:300])
        return response.getheader("X-Worker", ""), body
    finally:
        connection.close()


def _gauge(text: str) -> float | None:
    for family in text_string_to_metric_families(text):
        if family.name == "sessionshare_sessions_active":
            return family.samples[0].value
    return None


def test_a_store_that_cannot_count_is_refused_when_the_metrics_are_built(
    clock: FakeClock
) -> None:
    class ContractOnly:
        def __init__(self, inner: SessionStore) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            if name in ("index_keys", "count_stored"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    store = MemoryStore(clock=clock)
    admin = SessionAdmin(ContractOnly(store), SyncKey.generate(), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot count every user's sessions"):
        PrometheusMetrics(registry=CollectorRegistry(), sessions=admin)


def test_a_session_named_twice_during_a_key_rotation_is_counted_once(clock: FakeClock) -> None:
    """Signed in under the old key, its session is indexed under the old key's user index;
    refreshed after the new key came first, under the new one's too. One session."""
    old, new = SyncKey.generate(), SyncKey.generate()
    store = MemoryStore(clock=clock)
    before = Deployment(store, clock, key=old)
    browser = Browser(before)
    browser.sign_in_at(SHOP + "/orders")
    rotated = Deployment(store, clock, key=f"{new},{old}")
    admin = SessionAdmin(store, rotated.key, clock=clock)
    sid = browser.session_id("id.test")
    assert sid is not None
    # The index entry a session move under the new key writes (the IdP's own step).
    from sessionshare.core.steps import run

    index = rotated.idp.side.index
    digest = rotated.idp.side.lifecycle.ids.digest(sid)
    run(index.record("alice", digest, created=int(clock()), expires=int(clock()) + 3600,
                     user_agent="x"), store)
    assert sum(len(store.index_read(key)) for key in index.index_keys("alice")) == 2
    assert admin.count_sessions() == 1


def scrape(app: Any) -> dict[str, Any]:
    """GET /metrics from a WSGI app; the metric families by name."""
    response = webtest.TestApp(app).get("/metrics", extra_environ=LOOPBACK)
    assert response.status_int == 200
    assert response.content_type.startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


@pytest.mark.parametrize("mount", ["wsgi", "asgi"])
def test_the_mounted_app_serves_metrics_the_prometheus_parser_reads(
    store: SessionStore, clock: FakeClock, metrics: PrometheusMetrics, mount: str
) -> None:
    dep = deployment(store, clock, metrics)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(token_url).status_int == 303
    assert browser.get(token_url).status_int == 403

    app = (metrics.wsgi_app(loopback=True) if mount == "wsgi"
           else WsgiToAsgi(metrics.asgi_app(loopback=True)))
    families = scrape(app)
    counted = {
        (sample.labels["event"], sample.labels["reason"]): sample.value
        for sample in families["sessionshare_events"].samples if sample.name == EVENTS
    }
    assert counted == {("login_redirect", ""): 1, ("login", ""): 1, ("ticket_issued", ""): 1,
                       ("ticket_redeemed", ""): 1, ("token_rejected", "bad_state"): 1}
    histogram = families["sessionshare_store_seconds"]
    assert histogram.type == "histogram"
    counts = {s.labels["command"]: s.value for s in histogram.samples
              if s.name == "sessionshare_store_seconds_count"}
    assert counts["take_ticket"] >= 1 and counts["load"] >= 1 and counts["ping"] == 0
    assert set(counts) == set(COMMANDS)  # every command has its series from the start
    infinite = {s.labels["command"]: s.value for s in histogram.samples
                if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"}
    assert infinite == counts
    assert "sessionshare_sessions_active" not in families  # no admin given: no gauge
    # Labels are event names, reason codes and command names: no identifier anywhere.
    values = [value for family in families.values() for sample in family.samples
              for value in sample.labels.values()]
    assert values and not any(looks_secret(value) for value in values)
    text = webtest.TestApp(app).get("/metrics", extra_environ=LOOPBACK).text
    secrets = [token_url.split("token=", 1)[1], browser.session_id("shop.test"),
               browser.cookie("shop.test"), browser.cookie("id.test"), "alice"]
    assert all(secret and secret not in text for secret in secrets)


def test_metrics_go_to_the_registry_given_and_twice_in_one_fails() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    metrics.on_event("login", {"origin": IDP, "user": "alice"})
    assert registry.get_sample_value(EVENTS, {"event": "login", "reason": ""}) == 1
    other = PrometheusMetrics(registry=CollectorRegistry(), namespace="shop")
    other.on_event("login", {})
    assert registry.get_sample_value("shop_events_total", {"event": "login", "reason": ""}) is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusMetrics(registry=registry)


def test_without_metrics_the_middleware_keeps_the_store_it_was_given(
    store: SessionStore, clock: FakeClock
) -> None:
    # Nothing is wrapped unless asked: the uninstrumented path is the plain one.
    dep = Deployment(store, clock)
    assert dep.shop.store is store
    assert dep.idp.side.events.hook is None
