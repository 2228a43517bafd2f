"""OpenTelemetry spans (``sessionshare.tracing``) over a whole deployment, both shells.

Spans are recorded by the SDK's in-memory exporter through a tracer
provider of the test's own (the global provider is never set). Every
attribute, of spans and of their events, is checked with the suite's
secret scanner and against the very cookies, token and id the test saw.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from conftest import FakeClock, looks_secret
from flow import BLOG, IDP, SHOP, Browser, Deployment, async_twin
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sessionshare import MemoryStore, RedisStore, SessionStore, StoreUnavailable
from sessionshare.store.amemory import AsyncMemoryStore
from sessionshare.tracing import Tracing

LOGOUT = IDP + "/_sessionshare/logout"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer_provider=provider)


class Traced:
    """A deployment whose three middlewares report to ``tracing`` (for ``flow.Browser``)."""

    def __init__(self, store: SessionStore, clock: FakeClock, tracing: Tracing, shell: str,
                 **idp: Any) -> None:
        common = {"on_event": tracing.on_event}
        if shell == "asgi":
            twin = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_twin(store)
            dep = Deployment(store, clock, shell="asgi", async_store=tracing.instrument(twin),
                             idp_options={**common, **idp}, remote_options=common)
            wrap: Any = tracing.asgi
        else:
            dep = Deployment(tracing.instrument(store), clock, idp_options={**common, **idp},
                             remote_options=common)
            wrap = tracing.wsgi
        self.deployment = dep
        self.idp, self.shop, self.blog = wrap(dep.idp), wrap(dep.shop), wrap(dep.blog)
        self.wsgi = dep.wsgi


def requests(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if not span.name.startswith("sessionshare.store.")]


def attribute_text(spans: tuple[ReadableSpan, ...]) -> str:
    """Every attribute of every span and span event, as one text."""
    found: list[Any] = []
    for span in spans:
        found.append(dict(span.attributes or {}))
        found.extend(dict(event.attributes or {}) for event in span.events)
        found.extend(event.name for event in span.events)
    return json.dumps(found)


def test_each_hand_off_step_is_a_span_and_each_store_call_a_child(
    store: SessionStore, clock: FakeClock, tracing: Tracing, exporter: InMemorySpanExporter,
    shell: str,
) -> None:
    browser = Browser(Traced(store, clock, tracing, shell))
    token_url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(token_url).status_int == 303
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert browser.post(LOGOUT).status_int == 303

    spans = exporter.get_finished_spans()
    assert [span.name for span in requests(spans)] == [
        "sessionshare.login_redirect",  # the shop sends the browser to the IdP
        "sessionshare.request",         # the IdP's login form: no step yet
        "sessionshare.login",           # the sign-in, which issues the ticket too
        "sessionshare.ticket_redeemed",
        "sessionshare.request",         # a signed-in page: no step
        "sessionshare.logout",
    ]
    sign_in = requests(spans)[2]
    assert [event.name for event in sign_in.events] == ["sessionshare.login",
                                                        "sessionshare.ticket_issued"]
    assert sign_in.events[1].attributes == {"sessionshare.event": "ticket_issued",
                                            "sessionshare.audience": SHOP}
    assert sign_in.attributes == {"sessionshare.event": "login", "sessionshare.origin": IDP}
    assert requests(spans)[3].attributes == {"sessionshare.event": "ticket_redeemed",
                                             "sessionshare.issuer": IDP}

    # Store calls are children of their request's span, named by command.
    by_id = {span.context.span_id: span for span in spans}
    calls = [span for span in spans if span.name.startswith("sessionshare.store.")]
    assert {"sessionshare.store.take_ticket", "sessionshare.store.index_put",
            "sessionshare.store.load"} <= {span.name for span in calls}
    for call in calls:
        assert call.parent is not None
        parent = by_id[call.parent.span_id]
        assert not parent.name.startswith("sessionshare.store.")
        assert call.attributes == {"db.operation.name": call.name.rsplit(".", 1)[1]}
    def parent_of(call: ReadableSpan) -> int:
        assert call.parent is not None
        return call.parent.span_id

    redeem = [c for c in calls if c.name == "sessionshare.store.take_ticket"]
    assert by_id[parent_of(redeem[0])].name == "sessionshare.ticket_redeemed"
    signed_in_read = requests(spans)[4].context.span_id
    assert [c.name for c in calls if parent_of(c) == signed_in_read] == [
        "sessionshare.store.load"]

    # No identifier in any attribute, nor the user's name.
    text = attribute_text(spans)
    assert not looks_secret(text), text
    assert "alice" not in text and "sessionshare.user" not in text
    secrets = [token_url.split("token=", 1)[1], *(
        browser.cookie(host) for host in ("id.test", "shop.test", "blog.test"))]
    assert all(secret not in text for secret in secrets if secret)


def test_a_rejection_names_its_reason_and_an_outage_is_an_error(
    store: SessionStore, clock: FakeClock, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    browser = Browser(Traced(store, clock, tracing, "wsgi"))
    token_url = browser.token_url_for(BLOG + "/x")
    assert browser.get(token_url).status_int == 303
    exporter.clear()
    assert browser.get(token_url).status_int == 403
    (rejected,) = requests(exporter.get_finished_spans())
    assert rejected.name == "sessionshare.token_rejected"
    assert rejected.attributes == {"sessionshare.event": "token_rejected",
                                   "sessionshare.reason": "bad_state",
                                   "sessionshare.issuer": IDP}
    assert rejected.status.status_code is StatusCode.UNSET  # a refusal, not a failure

    exporter.clear()
    tracing.on_event("store_unavailable", {"error": "ConnectionError: 127.0.0.1:1 refused"})
    (outage,) = exporter.get_finished_spans()  # no request span: one of its own
    assert outage.name == "sessionshare.store_unavailable"
    assert outage.status.status_code is StatusCode.ERROR
    assert outage.attributes == {"sessionshare.event": "store_unavailable"}  # no error text


def test_a_store_failure_is_recorded_on_its_span(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
    watched = tracing.instrument(down)
    with pytest.raises(StoreUnavailable):
        watched.load("k", 60)
    watched.close()
    (span,) = exporter.get_finished_spans()
    assert span.name == "sessionshare.store.load"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert not looks_secret(attribute_text((span,)))
