"""OpenTelemetry traces: a span per store call and per hand-off step.

Needs ``opentelemetry-api`` (``pip install 'sessionshare[otel]'``); the app
configures the SDK and its exporter as it does for anything else.
:class:`Tracing` adds, through seams the library already has, a span
``sessionshare.store.<command>`` around each store call (:meth:`Tracing.instrument`),
a child of whatever span is current, and a span around each request through a
middleware (:meth:`Tracing.wsgi`, :meth:`Tracing.asgi`), named after the first
step it reports (``sessionshare.login``, ``sessionshare.ticket_redeemed``, ...)
or ``sessionshare.request``; each event is also a span event.

Security: attributes are command names, event names, reason codes, origins
and counts. The user's name, the store's error text and every argument of a
store call (keys, tickets, session data) are left out.

    tracing = Tracing()
    app = tracing.wsgi(IdpAuthMiddleware(app, store=tracing.instrument(store),
                                         on_event=tracing.on_event, ...))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode

from . import __version__
from .store.base import AsyncSessionStore, SessionStore
from .store.observed import observed

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["EVENT_FIELDS", "Tracing"]

#: The event fields that become attributes (``sessionshare.<field>``); no others.
EVENT_FIELDS = ("reason", "origin", "audience", "issuer", "count", "phase", "passive")
_STEP = context.create_key("sessionshare.step")
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def _attributes(name: str, fields: Mapping[str, Any]) -> dict[str, str | int | bool]:
    attributes: dict[str, str | int | bool] = {"sessionshare.event": name}
    for field in EVENT_FIELDS:
        value = fields.get(field)
        if isinstance(value, (bool, int)):
            attributes[f"sessionshare.{field}"] = value
        elif isinstance(value, str):
            attributes[f"sessionshare.{field}"] = value[:200]
    return attributes


@dataclass(slots=True)
class _Step:
    """The span of one request through a middleware; named by its first event."""

    span: Span
    named: bool = False


class Tracing:
    """Spans for the store calls and the hand-off steps.

    :param tracer_provider: the provider to take the tracer from; by default
        the global one (``opentelemetry.trace.set_tracer_provider``).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("sessionshare", __version__, tracer_provider)

    # -- store calls ---------------------------------------------------------
    def watch(self, command: str) -> AbstractContextManager[object]:
        """A span around one store ``command``."""
        return self.tracer.start_as_current_span(
            f"sessionshare.store.{command}", kind=trace.SpanKind.CLIENT,
            attributes={"db.operation.name": command},
        )

    def instrument(self, store: SessionStore | AsyncSessionStore) -> Any:
        """``store``, each call in a span. An asyncio store gives an asyncio one; for an
        ASGI app over a ``MemoryStore``, wrap ``AsyncMemoryStore(memory_store)``."""
        return observed(store, self.watch)

    # -- steps ---------------------------------------------------------------
    def on_event(self, name: str, fields: dict[str, Any]) -> None:
        """The middlewares' ``on_event`` hook: names the request's span after its first
        step and records each event on it (on the current span outside :meth:`wsgi` /
        :meth:`asgi`, or in a span of its own when none is recording)."""
        attributes = _attributes(name, fields)
        step = context.get_value(_STEP)
        span = step.span if isinstance(step, _Step) else trace.get_current_span()
        if not span.is_recording():
            with self.tracer.start_as_current_span(f"sessionshare.{name}",
                                                   attributes=attributes) as own:
                self._mark(own, name)
            return
        if isinstance(step, _Step) and not step.named:
            step.named = True
            span.update_name(f"sessionshare.{name}")
            span.set_attributes(attributes)
        span.add_event(f"sessionshare.{name}", attributes)
        self._mark(span, name)

    @staticmethod
    def _mark(span: Span, name: str) -> None:
        if name == "store_unavailable":
            span.set_status(Status(StatusCode.ERROR, "store unavailable"))

    def _start(self) -> tuple[_Step, context.Context]:
        span = self.tracer.start_span("sessionshare.request")
        step = _Step(span)
        return step, context.set_value(_STEP, step, trace.set_span_in_context(span))

    def wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """``app`` (a sessionshare WSGI middleware) with a span around each request; the
        span ends when the server closes the response."""

        def traced(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            step, ctx = self._start()
            token = context.attach(ctx)
            try:
                body = app(environ, start_response)
            except BaseException as exc:
                step.span.record_exception(exc)
                step.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                step.span.end()
                raise
            finally:
                context.detach(token)
            return _TracedBody(body, step.span, ctx)

        return traced

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """``app`` (a sessionshare ASGI middleware) with a span around each HTTP request
        and websocket; lifespan messages pass untouched."""

        async def traced(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            step, ctx = self._start()
            token = context.attach(ctx)
            try:
                await app(scope, receive, send)
            except BaseException as exc:
                step.span.record_exception(exc)
                step.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                context.detach(token)
                step.span.end()

        return traced


class _TracedBody:
    """A WSGI body run inside its request's span (a session persisted while it streams
    reports there), ending the span on ``close``."""

    def __init__(self, body: Iterable[bytes], span: Span, ctx: context.Context) -> None:
        self.body = body
        self.span = span
        self.ctx = ctx

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self.body)
        while True:
            token = context.attach(self.ctx)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                context.detach(token)
            yield chunk

    def close(self) -> None:
        token = context.attach(self.ctx)
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            context.detach(token)
            self.span.end()
