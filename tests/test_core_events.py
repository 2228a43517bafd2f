"""Events: the ``on_event`` hook and the JSON log lines, over a whole deployment.

Each test runs on MemoryStore and on a real Redis (the ``store`` fixture).
The events must name every step with its reason code and never hold an
identifier: every field is checked with the suite's secret scanner and
against the very cookies, tokens and ids the test saw.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Collection, Mapping
from typing import Any

import pytest
from conftest import FakeClock, looks_secret
from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import MemoryStore, SessionStore, StoreUnavailable
from sessionshare.core.events import EVENTS, Events
from sessionshare.logging import JsonFormatter
from sessionshare.store.base import SessionRecord

Seen = list[tuple[str, dict[str, Any]]]


def recording_deployment(
    store: SessionStore, clock: FakeClock, key: str | None = None, **idp: Any
) -> tuple[Deployment, Seen]:
    seen: Seen = []

    def on_event(name: str, fields: dict[str, Any]) -> None:
        seen.append((name, fields))

    dep = Deployment(store, clock, key=key, idp_options={"on_event": on_event, **idp},
                     remote_options={"on_event": on_event})
    return dep, seen


def assert_no_identifier(seen: Seen, secrets: Collection[str] = ()) -> None:
    text = json.dumps(seen)
    assert not looks_secret(text), text
    for secret in secrets:
        assert secret not in text


def names(seen: Seen) -> list[str]:
    return [name for name, _ in seen]


def of(seen: Seen, name: str) -> list[dict[str, Any]]:
    return [fields for each, fields in seen if each == name]


def test_a_whole_flow_reports_each_step_without_an_identifier(
    store: SessionStore, clock: FakeClock
) -> None:
    dep, seen = recording_deployment(store, clock)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    back = browser.get(token_url)
    assert back.status_int == 303
    assert browser.sign_in_at(BLOG + "/x").json["user"] == "alice"
    sid = browser.session_id("shop.test")
    cookies = [browser.cookie(host) for host in ("id.test", "shop.test", "blog.test")]
    assert browser.post(IDP + "/_sessionshare/logout", headers={"Accept": "text/html"}
                        ).status_int == 303

    assert names(seen) == [
        "login_redirect", "login", "ticket_issued", "ticket_redeemed",  # the shop
        "login_redirect", "ticket_issued", "ticket_redeemed",           # the blog: no form
        "logout",
    ]
    assert of(seen, "login") == [{"origin": IDP, "user": "alice"}]
    assert [f["audience"] for f in of(seen, "ticket_issued")] == [SHOP, BLOG]
    assert of(seen, "ticket_redeemed")[0] == {"issuer": IDP}
    assert of(seen, "logout") == [{"origin": IDP, "user": "alice"}]
    token = token_url.split("token=", 1)[1]
    assert sid is not None
    assert_no_identifier(seen, [sid, token, *(c for c in cookies if c)])
    assert set(names(seen)) <= set(EVENTS)


def test_every_rejection_carries_its_reason_code(store: SessionStore, clock: FakeClock) -> None:
    dep, seen = recording_deployment(store, clock)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(token_url).status_int == 303
    replay = browser.get(token_url)
    # Its state cookie went with the first use: the second fails on that, before the store.
    assert replay.status_int == 403 and reason_of(replay) == "bad_state"
    assert of(seen, "token_rejected") == [{"reason": "bad_state", "issuer": IDP}]

    browser.get(LOGIN + "?callback=https%3A%2F%2Fevil.example%2Fcb&state=" + "s" * 20)
    assert of(seen, "callback_rejected") == [
        {"reason": "host_not_allowed", "origin": "https://evil.example"}
    ]

    cross = browser.post(IDP + "/_sessionshare/logout",
                         headers={"Accept": "text/html", "Origin": "http://evil.example"})
    assert cross.status_int == 403
    assert of(seen, "logout_rejected") == [{"reason": "cross_origin", "origin": IDP}]

    fresh = Browser(dep).get(SHOP + "/orders", headers={"Accept": "application/json"})
    assert fresh.status_int == 401
    assert {"reason": "not_authenticated"} in of(seen, "login_required")
    assert_no_identifier(seen, [token_url.split("token=", 1)[1]])


def test_a_refused_hand_off_names_its_reason(store: SessionStore, clock: FakeClock) -> None:
    dep, seen = recording_deployment(store, clock, authorize=lambda session, origin: False)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)
    refused = browser.post(login_url, {"username": "alice", "password": "wonderland"})
    assert refused.status_int == 403
    assert of(seen, "handoff_refused") == [{"reason": "not_authorized", "audience": SHOP}]


def test_the_absolute_timeout_is_an_event(store: SessionStore, clock: FakeClock) -> None:
    dep, seen = recording_deployment(store, clock, idle_timeout=10**6, absolute_timeout=3600)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    clock.advance(1000)
    assert browser.get(IDP + "/").text == "idp home user=alice"  # slides to the IdP's idle
    clock.advance(2601)
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert of(seen, "session_expired") == [{"reason": "absolute"}]


def test_a_hook_that_raises_breaks_no_request(
    store: SessionStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str, fields: dict[str, Any]) -> None:
        raise RuntimeError("the metrics backend is down")

    dep = Deployment(store, clock, idp_options={"on_event": broken},
                     remote_options={"on_event": broken})
    with caplog.at_level(logging.WARNING, logger="sessionshare"):
        assert Browser(dep).sign_in_at(SHOP + "/orders").json["user"] == "alice"
    failures = [r.getMessage() for r in caplog.records if "on_event_failed" in r.getMessage()]
    assert "on_event_failed event=login error=RuntimeError" in failures
    assert not any("backend is down" in line for line in failures)


class DownStore(MemoryStore):
    """A store whose every read fails, as a Redis that went away."""

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        raise StoreUnavailable("redis at 127.0.0.1:6379 did not answer: ConnectionError")

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int) -> SessionRecord | None:
        raise StoreUnavailable("redis at 127.0.0.1:6379 did not answer: ConnectionError")


def test_a_store_outage_is_an_event(clock: FakeClock) -> None:
    working = MemoryStore(clock=clock)
    dep, _ = recording_deployment(working, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    down, seen = recording_deployment(DownStore(clock=clock), clock, key=dep.key)
    outage = Browser(down)
    cookie = browser.cookie("shop.test")
    assert cookie is not None
    outage.apps["shop.test"].set_cookie("sessionshare", cookie)
    assert outage.get(SHOP + "/orders").status_int == 503
    assert of(seen, "store_unavailable") == [
        {"error": "redis at 127.0.0.1:6379 did not answer: ConnectionError"}
    ]


class FailsWhenDown(MemoryStore):
    """A real MemoryStore whose writes fail once ``down`` is set (Redis gone mid-request)."""

    down = False

    def save(self, key: str, **kwargs: Any) -> bool:
        if self.down:
            raise StoreUnavailable("redis at 127.0.0.1:6379 did not answer: ConnectionError")
        return super().save(key, **kwargs)


def _streaming_apps(store: FailsWhenDown) -> tuple[Any, Any]:
    """The same app for each shell: it writes the session before its answer starts and
    again while the body streams; on ``/early`` the store goes down before the answer
    starts, else between the two parts of the body."""

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["sessionshare.session"]
        session["early"] = environ["PATH_INFO"]
        store.down = environ["PATH_INFO"] == "/early"
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Any:
            yield b"one"
            store.down = True
            session["late"] = "yes"
            yield b"two"

        return body()

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session["early"] = scope["path"]
        store.down = scope["path"] == "/early"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        store.down = True
        session["late"] = "yes"
        await send({"type": "http.response.body", "body": b"two"})

    return wsgi_app, asgi_app


@pytest.mark.parametrize("site", [IDP, SHOP])
def test_both_shells_report_the_same_events_for_the_same_store_failures(
    shell: str, site: str, clock: FakeClock
) -> None:
    """One persist path in the core: a store failure while persisting is the same event
    under WSGI and ASGI, at the IdP and at a remote -- before the answer starts (the
    503, with the error) and after (the late persist of a change made while the body
    streamed: nobody is left to answer, so the core reports it with ``phase=close``)."""
    store = FailsWhenDown(clock=clock)
    wsgi_app, asgi_app = _streaming_apps(store)
    app = asgi_app if shell == "asgi" else wsgi_app
    seen: Seen = []

    def on_event(name: str, fields: dict[str, Any]) -> None:
        seen.append((name, fields))

    dep = Deployment(store, clock, shell=shell, idp=app, remote=app,
                     idp_options={"on_event": on_event}, remote_options={"on_event": on_event})
    browser = Browser(dep)
    streamed = browser.get(site + "/stream")
    assert streamed.status_int == 200 and streamed.body == b"onetwo"
    assert of(seen, "store_unavailable") == [{"phase": "close"}]
    (record,) = store.sessions().values()
    assert record.fields == {"early": '"/stream"'}  # the late write did not happen
    seen.clear()
    early = browser.get(site + "/early", status=503)
    assert reason_of(early) == "store_unavailable"
    assert of(seen, "store_unavailable") == [
        {"error": "redis at 127.0.0.1:6379 did not answer: ConnectionError"}
    ]


def test_events_reach_the_log_as_one_json_object_per_line(
    store: SessionStore, clock: FakeClock
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sessionshare")
    logger.addHandler(handler)
    try:
        dep = Deployment(store, clock)
        browser = Browser(dep)
        browser.sign_in_at(SHOP + "/orders")
        browser.get(browser.token_url_for(BLOG + "/x"))  # a hand-off, spent once
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    events = [line for line in lines if "event" in line]
    assert [e["event"] for e in events if e["event"] in ("login", "ticket_redeemed")] == [
        "login", "ticket_redeemed", "ticket_redeemed"
    ]
    login = next(e for e in events if e["event"] == "login")
    assert login["origin"] == IDP and login["user"] == "alice" and login["level"] == "INFO"
    assert login["message"] == f"login origin={IDP}" and login["time"].endswith("Z")
    assert not looks_secret(stream.getvalue())


def test_the_json_formatter_keeps_plain_lines_and_its_own_keys() -> None:
    formatter = JsonFormatter(message=False)
    plain = logging.LogRecord("sessionshare", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    assert json.loads(formatter.format(plain))["message"] == "a b"
    event = logging.LogRecord("sessionshare", logging.INFO, __file__, 1, "x", (), None)
    event.sessionshare_event = "logout"
    event.sessionshare_fields = {"origin": "https://id.example", "level": "forged"}
    line = json.loads(formatter.format(event))
    assert line["event"] == "logout" and line["origin"] == "https://id.example"
    assert line["level"] == "INFO" and "message" not in line


def test_an_event_without_a_hook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sessionshare"):
        Events().emit(logging.INFO, "logout", {"origin": "https://id.example"}, "logout origin=x")
    assert [r.getMessage() for r in caplog.records] == ["logout origin=x"]
