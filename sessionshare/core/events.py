"""Events: what happened, as a name and a few facts, for the log and for an app's hook.

Every step of the protocol that an operator may want to count or alert on
-- a sign-in, a hand-off issued or redeemed, each rejection with its reason
code, a logout, a session ended or revoked, a store outage -- is reported
once, by the core, to the log and to the ``on_event`` hook alike; the shells
only run the core's steps, so the WSGI and the ASGI middlewares report the
same events for the same requests (``tests/test_core_events.py``).

- The ``sessionshare`` logger gets one line per event (``ticket_issued
  audience=https://shop.example``). The record also carries the event's name and
  fields (:data:`EVENT_ATTR`, :data:`FIELDS_ATTR`), which
  :class:`sessionshare.logging.JsonFormatter` writes as one JSON object per line.
- ``on_event(name, fields)`` -- a constructor option -- is called with the
  same name and a fresh dict of the fields. A hook that raises does not
  break the request: the failure is logged (``on_event_failed``, with the
  exception's class only) and the request goes on.

Security: fields hold origins, reason codes, key *fingerprints* (public by
design), the signed-in user's name and short index references -- never a
session id, cookie value, ticket, token or key. A field whose value came
from the request is capped.

    def on_event(name, fields):
        metrics.counter(name, fields.get("reason", "")).inc()

    IdpAuthMiddleware(app, ..., on_event=on_event)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = [
    "EVENT_ATTR", "EVENTS", "FIELDS_ATTR", "CapturedWarnings", "EventHook", "EventName", "Events",
]

log = logging.getLogger("sessionshare")

#: The events the library reports, each with the fields it carries.
EventName = Literal[
    "login",                # IdP: a user signed in (origin, user)
    "login_redirect",       # remote: a browser was sent to the IdP (issuer)
    "login_required",       # remote: an API request without a session got 401 (reason)
    "ticket_issued",        # IdP: a hand-off token was minted (audience)
    "ticket_redeemed",      # remote: a hand-off succeeded (issuer)
    "token_rejected",       # remote: a hand-off was refused, 403 (reason)
    "callback_rejected",    # IdP: a callback off the allow-list (reason[, origin])
    "handoff_refused",      # IdP: 403 state_taken / not_authorized (reason, audience)
    "handoff_restarted",    # remote: a lost ticket sent the browser back to start again
                            # (reason, issuer)
    "logout",               # both: a session ended everywhere (origin[, user])
    "logout_rejected",      # both: a logout refused (reason, origin)
    "websocket_rejected",   # remote: a websocket from another origin refused (reason, origin)
    "websocket_without_session",  # both: one served with no session (reason, origin)
    "request_rejected",     # both: a path without its leading "/", 400 (reason, origin)
    "session_expired",      # both: a session read past its absolute timeout or an app's
                            # ask to end (reason)
    "session_revoked",      # IdP / admin: sessions ended by max_sessions_per_user or an
                            # operator (reason, count[, user])
    "session_withdrawn",    # admin: a remote origin taken out of a user's sessions
                            # (origin, count, user)
    "change_refused",       # both: a session change dropped (reason)
    "late_change_refused",  # both: a change made after the headers went out (reason)
    "store_unavailable",    # both: the store did not answer (error or phase)
    "passive_answered",     # IdP: a passive check answered "not signed in" (audience)
    "passive_checked",      # remote: a passive check found nobody signed in (issuer)
]
#: Every event name, for tests and dashboards.
EVENTS: tuple[str, ...] = EventName.__args__  # type: ignore[attr-defined]

#: ``on_event(name, fields)``: called once per event; its return value is ignored.
EventHook = Callable[[str, dict[str, Any]], object]

#: Attribute of the ``LogRecord`` holding the event name.
EVENT_ATTR = "sessionshare_event"
#: Attribute of the ``LogRecord`` holding the event's fields (a dict).
FIELDS_ATTR = "sessionshare_fields"


class Events:
    """Reports events to the ``sessionshare`` logger and to an optional hook.

    :param hook: ``on_event(name, fields)``, or None for the log alone.
    """

    __slots__ = ("hook",)

    def __init__(self, hook: EventHook | None = None) -> None:
        self.hook = hook

    def emit(
        self,
        level: int,
        name: EventName,
        fields: Mapping[str, Any],
        message: str,
        *args: object,
    ) -> None:
        """Log ``message % args`` at ``level`` as event ``name``, then call the hook with
        ``fields``, the structured facts (also for the JSON formatter)."""
        if log.isEnabledFor(level):
            # stacklevel: the record names the step that reported it, not this method.
            log.log(level, message, *args, extra={EVENT_ATTR: name, FIELDS_ATTR: dict(fields)},
                    stacklevel=2)
        hook = self.hook
        if hook is None:
            return
        try:
            hook(name, dict(fields))
        except Exception as exc:  # noqa: BLE001 - an app's hook must not break the request
            # The class only: the message is the app's text and might echo anything.
            log.warning("on_event_failed event=%s error=%s", name, type(exc).__name__)


class CapturedWarnings(logging.Handler):
    """The WARNINGs the ``sessionshare`` logger gets inside a ``with`` block, kept rather
    than shown: a pre-flight check (``python -m sessionshare check``, Django's system
    checks) builds a middleware and reports what it warned about with its own result,
    not on stderr in the middle of it::

        with CapturedWarnings() as captured:
            IdpAuthMiddleware(app, ...)
        captured.messages  # ["allow_list_https_only: ..."]
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        #: The captured lines, in order.
        self.messages: list[str] = []
        self._propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> CapturedWarnings:
        self._propagate = log.propagate
        log.propagate = False
        log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self)
        log.propagate = self._propagate
