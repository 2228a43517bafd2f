"""The exceptions sessionshare raises.

One base class, :class:`SessionShareError`, and a few subclasses that carry
the context a caller needs. Configuration problems are raised when a
middleware or store is *constructed*, with a message that says what to
change. Problems with input from the network (a forged token, a hostile
callback URL) are raised only inside the library: the middlewares turn them
into a 4xx response and never let them reach the server. Reason codes are
``Literal`` types (:data:`TokenReason`, :data:`CallbackReason`, :data:`Reason`),
so a misspelt code is a mypy error rather than a silently new code in logs,
dashboards and API answers.

    try:
        claims = open_token(key, token, audience=origin, issuer=idp_origin,
                            ttl=60, now=time.time())
    except TokenRejected as exc:
        log.warning("token_rejected reason=%s", exc.reason)
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

__all__ = [
    "CallbackReason",
    "CallbackRejected",
    "ConfigurationError",
    "Reason",
    "SessionShareError",
    "SessionTooLarge",
    "StoreUnavailable",
    "TokenReason",
    "TokenRejected",
]

#: Why a hand-off token (or the callback request carrying it) was refused.
TokenReason = Literal[
    "malformed", "unsupported_version", "unknown_key", "bad_seal", "expired",
    "not_yet_valid", "wrong_audience", "wrong_issuer", "bad_method", "bad_state",
    "replayed", "unknown_ticket", "ticket_lost", "session_gone", "not_authenticated",
    "reauthentication_required",
]
#: Why a callback URL (or the login request naming it) was refused.
CallbackReason = Literal[
    "malformed", "bad_state", "bad_character", "bad_scheme", "bad_authority", "userinfo",
    "bad_host", "bad_ip", "bad_port", "query", "fragment", "host_not_allowed",
    "scheme_not_allowed", "port_not_allowed", "path_not_allowed",
]
#: Every code an error answer of the library carries (the ``error`` of its JSON body).
Reason = Literal[
    TokenReason, CallbackReason, "not_authorized", "state_taken", "store_unavailable",
    "cross_origin", "bad_path",
]

_R = TypeVar("_R", bound=str)


class SessionShareError(Exception):
    """Base class of every exception raised by sessionshare."""


class ConfigurationError(SessionShareError, ValueError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class StoreUnavailable(SessionShareError):
    """The session store could not be reached or answered with an error.

    The middlewares answer 503 with ``Retry-After`` and never let the request
    through unauthenticated (fail closed).
    """


class SessionTooLarge(SessionShareError, ValueError):
    """A write would make the shared session larger than ``max_session_bytes``.

    Raised while the session is persisted (when the app starts its response,
    or when a streamed body closes), before anything is sent to the store:
    the write is refused whole and the stored session stays as it was.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the session would hold {size:,} bytes, over max_session_bytes={limit:,}; "
            "nothing was written. Keep large data elsewhere and a reference to it in "
            "the session, or raise max_session_bytes"
        )
        #: The size the session would have had, in bytes of stored JSON text.
        self.size = size
        #: The configured ``max_session_bytes``.
        self.limit = limit


class SessionEnded(SessionShareError):
    """:meth:`Session.save() <sessionshare.core.session.Session.save>` found the stored
    session ended meanwhile -- a logout in another app or tab, a revocation, its expiry --
    or moved by another request of the same browser (a sign-in).

    Nothing was written: the changes are dropped rather than bring back a session
    that a logout ended, and the session now reads as a new, empty one.
    """

    def __init__(self, *, moved: bool) -> None:
        super().__init__(
            "the session was moved to a new id by another request of this browser (a "
            "sign-in) while this one ran; nothing was saved" if moved else
            "the session was ended elsewhere (a logout, a revocation or its expiry) "
            "while this request ran; nothing was saved, and it is now a new, empty session"
        )
        #: True: moved by another request of the browser; False: ended.
        self.moved = moved


class _Rejected(SessionShareError, Generic[_R]):
    """A piece of network input failed a check; ``reason`` is a stable code."""

    def __init__(self, reason: _R, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        #: The stable reason code, safe to show and to log.
        self.reason: _R = reason
        #: A sentence for the log; never holds a token, ticket, session id or key.
        self.detail = detail


class TokenRejected(_Rejected[TokenReason]):
    """A hand-off token failed a check; ``reason`` is one of :data:`TokenReason` (the
    detail never contains the token or a key)."""

    def __init__(
        self, reason: TokenReason, detail: str = "", *, key_fingerprint: str | None = None
    ) -> None:
        super().__init__(reason, detail)
        #: For ``unknown_key``: the public fingerprint of the key the token was sealed
        #: with (``3f9a-c21b-77e0``), to compare with ``python -m sessionshare
        #: fingerprint`` on each app; else None.
        self.key_fingerprint = key_fingerprint


class CallbackRejected(_Rejected[CallbackReason]):
    """A callback URL is not on the allow-list; ``reason`` says which rule failed."""

    def __init__(
        self, reason: CallbackReason, detail: str = "", *, origin: str | None = None
    ) -> None:
        super().__init__(reason, detail)
        #: The callback's canonical origin (``scheme://host[:port]``) when it parsed but
        #: no allow-list entry took it, else None. Public, so it is logged: the operator
        #: needs it to tell which site to list, and how.
        self.origin = origin
