"""Who may read ``/metrics``: ``sessionshare.metrics_access``, behind the mounted apps.

``PrometheusMetrics.wsgi_app()`` and ``asgi_app()`` -- what docs/metrics.md
and the demo mount -- serve the metrics to a scraper that sends the bearer
token of ``SESSIONSHARE_METRICS_TOKEN`` (compared in constant time), and,
when no token is configured, to loopback clients that came through no proxy;
everybody else gets 401 or 403 and not a byte of the metrics. Both mounts,
WSGI (WebTest, with the client address a server would set) and ASGI (the
scope a server builds, ``client`` included).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
import webtest
from prometheus_client import CollectorRegistry

from sessionshare import ConfigurationError
from sessionshare.metrics import PrometheusMetrics

TOKEN = "kP2v8e1yq-Xw0hR5tLm3nZ9sB7cD4fG6"
OUTSIDE = "203.0.113.9"


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.on_event("login", {})  # something to show
    yield metrics
    metrics.close()


def _scrape(metrics: PrometheusMetrics, mount: str, *, client: str | None,
            headers: dict[str, str] | None = None, token: str | None = None,
            ) -> tuple[int, dict[str, str], str]:
    """GET /metrics through the mounted app: status, headers (lower-case names), body."""
    headers = headers or {}
    if mount == "wsgi":
        extra = {} if client is None else {"REMOTE_ADDR": client}
        app = metrics.wsgi_app() if token is None else metrics.wsgi_app(token=token)
        response = webtest.TestApp(app).get("/metrics", headers=headers, extra_environ=extra,
                                            status="*")
        return (response.status_int, {k.lower(): v for k, v in response.headerlist},
                response.text)
    asgi_app = metrics.asgi_app() if token is None else metrics.asgi_app(token=token)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/metrics", "raw_path": b"/metrics",
             "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": None if client is None else (client, 50000),
             "server": ("127.0.0.1", 9000)}
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asgi_app(scope, receive, send)

    asyncio.run(main())
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return (start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]},
            body.decode())


MOUNTS = pytest.mark.parametrize("mount", ["wsgi", "asgi"])


@MOUNTS
def test_without_a_token_only_the_loopback_reads_the_metrics(
    metrics: PrometheusMetrics, mount: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented mount served active sessions, sign-in counts and rejection reasons to
    # anyone who asked, on a remote whose every other path needs a sign-in.
    monkeypatch.delenv("SESSIONSHARE_METRICS_TOKEN", raising=False)
    for client in (OUTSIDE, "10.0.0.7", "2001:db8::1", "", None):
        status, headers, body = _scrape(metrics, mount, client=client)
        assert status == 403, client
        assert "sessionshare_events_total" not in body
        assert "SESSIONSHARE_METRICS_TOKEN" in body  # says how to get in
        assert headers["cache-control"] == "no-store"
    # A loopback peer that forwards someone else's request (a proxy on this machine) is
    # not the loopback: every request through it would be.
    for forwarded in ({"X-Forwarded-For": OUTSIDE}, {"Forwarded": f"for={OUTSIDE}"},
                      {"X-Real-IP": OUTSIDE}):
        assert _scrape(metrics, mount, client="127.0.0.1", headers=forwarded)[0] == 403
    # A token sent where none is configured opens nothing either.
    assert _scrape(metrics, mount, client=OUTSIDE,
                   headers={"Authorization": f"Bearer {TOKEN}"})[0] == 403
    for client in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1"):
        status, _, body = _scrape(metrics, mount, client=client)
        assert status == 200 and 'sessionshare_events_total{event="login",reason=""} 1.0' in body


@MOUNTS
def test_with_a_token_the_scraper_that_sends_it_reads_the_metrics(
    metrics: PrometheusMetrics, mount: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONSHARE_METRICS_TOKEN", TOKEN)
    status, _, body = _scrape(metrics, mount, client=OUTSIDE,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "sessionshare_events_total" in body
    assert _scrape(metrics, mount, client=OUTSIDE,
                   headers={"Authorization": f"bearer  {TOKEN}"})[0] == 200
    for authorization in (None, "", "Bearer", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
                          f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN.upper()}", "Bearer é"):
        headers = {} if authorization is None else {"Authorization": authorization}
        for client in (OUTSIDE, "127.0.0.1"):
            # The loopback needs it too: behind a proxy on this machine, every client is.
            status, answer, body = _scrape(metrics, mount, client=client, headers=headers)
            assert status == 401, (authorization, client)
            assert answer["www-authenticate"] == 'Bearer realm="metrics"'
            assert "sessionshare_events_total" not in body and TOKEN not in body
    # The argument wins over the variable.
    other = "Zt5" * 11
    assert _scrape(metrics, mount, client=OUTSIDE, token=other,
                   headers={"Authorization": f"Bearer {TOKEN}"})[0] == 401
    assert _scrape(metrics, mount, client=OUTSIDE, token=other,
                   headers={"Authorization": f"Bearer {other}"})[0] == 200


def test_a_wrong_token_is_compared_in_constant_time(
    metrics: PrometheusMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr("sessionshare.metrics_access.compare_digest", spy)
    app = metrics.wsgi_app(token=TOKEN)
    wrong = "x" * len(TOKEN)
    response = webtest.TestApp(app).get("/metrics", headers={"Authorization": f"Bearer {wrong}"},
                                        extra_environ={"REMOTE_ADDR": OUTSIDE}, status="*")
    assert response.status_int == 401
    assert compared == [(wrong.encode(), TOKEN.encode())]


@pytest.mark.parametrize("token", ["short", " " * 40, "x" * 31 + "\n"])
def test_a_weak_or_malformed_token_is_refused_when_the_app_is_built(
    metrics: PrometheusMetrics, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="token"):
        metrics.wsgi_app(token=token)
    monkeypatch.setenv("SESSIONSHARE_METRICS_TOKEN", token)
    with pytest.raises(ConfigurationError, match="SESSIONSHARE_METRICS_TOKEN"):
        metrics.asgi_app()
