"""The exceptions sessionshare raises.

One base class, :class:`SessionShareError`, and a few subclasses that carry
the context a caller needs. Configuration problems are raised when a
middleware or store is *constructed*, with a message that says what to
change. Problems with input from the network (a forged token, a hostile
callback URL) are raised only inside the library: the middlewares turn them
into a 4xx response and never let them reach the WSGI server.

    try:
        claims = open_token(key, token, audience=..., issuer=...)
    except TokenRejected as exc:
        log.warning("token_rejected reason=%s", exc.reason)
"""

from __future__ import annotations

__all__ = [
    "CallbackRejected",
    "ConfigurationError",
    "SessionShareError",
    "StoreUnavailable",
    "TokenRejected",
]


class SessionShareError(Exception):
    """Base class of every exception raised by sessionshare."""


class ConfigurationError(SessionShareError, ValueError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class StoreUnavailable(SessionShareError):
    """The session store could not be reached or answered with an error.

    The middlewares answer 503 with ``Retry-After`` and never let the request
    through unauthenticated (fail closed).
    """


class _Rejected(SessionShareError):
    """A piece of network input failed a check; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TokenRejected(_Rejected):
    """A hand-off token failed a check.

    ``reason`` is one of ``malformed``, ``unsupported_version``,
    ``unknown_key``, ``bad_seal``, ``expired``, ``not_yet_valid``,
    ``wrong_audience``, ``wrong_issuer`` (and, in the remote middleware,
    ``bad_state``, ``replayed``, ``session_gone``, ``not_authenticated``).
    The detail never contains the token or a key.
    """


class CallbackRejected(_Rejected):
    """A callback URL is not on the allow-list; ``reason`` says which rule failed."""
