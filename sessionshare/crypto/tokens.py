"""Hand-off tokens and tickets: what travels through the browser.

A **ticket** is 32 random bytes that the IdP stores, for a few seconds, as a
pointer to the shared session. A **token** carries one ticket from the IdP to
one remote app through the browser's address bar. It is sealed with AES-GCM
under a subkey of the sync key, so its authentication tag is its checksum:
any change to any byte, a truncation, or another key gives one uniform
rejection.

Token layout (then URL-safe base64 without padding, at most 512 characters)::

    version (1) | key fingerprint (6) | nonce (12) | AES-GCM(
        issued-at seconds (8) | sha256(audience)[:16] | sha256(issuer)[:16]
        | ticket (32) | state (16..128 ASCII) ) | tag (16)

Version and fingerprint are authenticated as associated data. Audience and
issuer travel as digests so that a token stays short whatever the origins.

Why a ticket and not the session id: tokens end up in access logs and browser
history. A logged token holds only a spent ticket, so even a leaked sync key
reveals no live session. Issuing, redeeming and storing tickets is
:mod:`sessionshare.core.tickets`; this module only carries them.

    token = seal_token(key, ticket, audience="https://shop.example",
                       issuer="https://id.example", state=state, now=now)
    claims = open_token(key, token, audience=..., issuer=..., ttl=60, now=now)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import TokenRejected
from .keys import FINGERPRINT_BYTES, SyncKey, format_fingerprint

__all__ = [
    "CLOCK_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "TICKET_BYTES",
    "TokenClaims",
    "is_valid_state",
    "open_token",
    "seal_token",
]

#: 2 since protocol v2: the session id a ticket points to carries its key id
#: and limits, and each app's cookie is its own. A version-1 token comes from an IdP
#: of the old protocol, whose sessions this app cannot read: ``unsupported_version``.
VERSION = 2
MAX_TOKEN_LENGTH = 512
TICKET_BYTES = 32
#: Seconds of clock difference between IdP and remote that a hand-off
#: tolerates: a token opens this long before its issue time and past its
#: lifetime, and the IdP keeps its ticket this long past the token's life
#: (:func:`sessionshare.core.tickets.ticket_ttl`).
CLOCK_LEEWAY = 5
STATE_MIN, STATE_MAX = 16, 128
_DIGEST = 16
_NONCE = 12
_TAG = 16
_HEADER = 1 + FINGERPRINT_BYTES + _NONCE
_FIXED_PLAIN = 8 + _DIGEST + _DIGEST + TICKET_BYTES
_PURPOSE = "token"
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class TokenClaims:
    """What an intact, current token for this audience and issuer says."""

    ticket: bytes
    state: str
    issued_at: int


def _origin_digest(origin: str) -> bytes:
    return hashlib.sha256(origin.encode("utf-8")).digest()[:_DIGEST]


def is_valid_state(state: str) -> bool:
    """True for a state the protocol accepts: ``[A-Za-z0-9_-]{16,128}``."""
    return (
        STATE_MIN <= len(state) <= STATE_MAX
        and state.isascii()
        and _B64_ALPHABET.issuperset(state.encode("ascii"))
    )


def seal_token(
    key: SyncKey, ticket: bytes, *, audience: str, issuer: str, state: str, now: float
) -> str:
    """Seal ``ticket`` for one remote (``audience``) and one login attempt (``state``)."""
    if len(ticket) != TICKET_BYTES:
        raise ValueError("a ticket is 32 bytes")
    if not is_valid_state(state):
        raise ValueError("state must match [A-Za-z0-9_-]{16,128}")
    header = bytes([VERSION]) + key.fingerprint_bytes()[0]
    nonce = secrets.token_bytes(_NONCE)
    plain = (
        struct.pack(">Q", int(now))
        + _origin_digest(audience)
        + _origin_digest(issuer)
        + ticket
        + state.encode("ascii")
    )
    sealed = _aead(key, 0).encrypt(nonce, plain, header)
    return base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode("ascii")


def open_token(
    key: SyncKey,
    token: str,
    *,
    audience: str,
    issuer: str,
    ttl: float,
    now: float,
    leeway: float = CLOCK_LEEWAY,
) -> TokenClaims:
    """Open and check a token, or raise :class:`TokenRejected` with a reason code.

    Nothing but ``TokenRejected`` ever leaves this function, whatever ``token`` is.
    """
    raw = _decode(token)
    if raw[0] != VERSION:
        raise TokenRejected("unsupported_version")
    fingerprint = raw[1 : 1 + FINGERPRINT_BYTES]
    try:
        index = key.fingerprint_bytes().index(fingerprint)
    except ValueError:
        # The fingerprint is public (it travels in clear): naming it lets the operator
        # compare it with `python -m sessionshare fingerprint` on the IdP.
        raise TokenRejected(
            "unknown_key", "sealed with a key this app does not hold",
            key_fingerprint=format_fingerprint(fingerprint),
        ) from None
    try:
        nonce, aad = raw[1 + FINGERPRINT_BYTES : _HEADER], raw[: 1 + FINGERPRINT_BYTES]
        plain = _aead(key, index).decrypt(nonce, raw[_HEADER:], aad)
    except InvalidTag:
        raise TokenRejected("bad_seal", "token altered or sealed with another key") from None
    if not STATE_MIN <= len(plain) - _FIXED_PLAIN <= STATE_MAX:
        raise TokenRejected("malformed", "bad payload length")
    (issued_at,) = struct.unpack(">Q", plain[:8])
    if not hmac.compare_digest(plain[8 + _DIGEST : 8 + 2 * _DIGEST], _origin_digest(issuer)):
        raise TokenRejected("wrong_issuer", "token was issued by another IdP")
    if not hmac.compare_digest(plain[8 : 8 + _DIGEST], _origin_digest(audience)):
        raise TokenRejected("wrong_audience", "token was issued for another app")
    # The seconds are public facts (no identifier): with them the log tells a clock
    # skew (a steady offset) from a slow browser.
    if issued_at > now + leeway:
        raise TokenRejected(
            "not_yet_valid",
            f"issued {issued_at - now:.0f} s in the future ({leeway:g} s of leeway); "
            "check the clocks",
        )
    if now > issued_at + ttl + leeway:
        raise TokenRejected(
            "expired",
            f"issued {now - issued_at:.0f} s ago; it lives {ttl:g} s (+ {leeway:g} s of leeway)",
        )
    ticket = plain[8 + 2 * _DIGEST : _FIXED_PLAIN]
    try:
        state = plain[_FIXED_PLAIN:].decode("ascii")
    except UnicodeDecodeError:
        raise TokenRejected("malformed", "bad state") from None
    if not is_valid_state(state):
        raise TokenRejected("malformed", "bad state")
    return TokenClaims(ticket=ticket, state=state, issued_at=issued_at)


def _decode(token: object) -> bytes:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise TokenRejected("malformed", "missing or oversized token")
    encoded = token.encode("ascii", "replace")
    if not _B64_ALPHABET.issuperset(encoded) or len(encoded) % 4 == 1:
        raise TokenRejected("malformed", "not URL-safe base64")
    try:
        raw = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise TokenRejected("malformed", "not URL-safe base64") from None
    # Re-encoding must give the same text: a token has exactly one spelling.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != encoded:
        raise TokenRejected("malformed", "non-canonical base64")
    if len(raw) < _HEADER + _FIXED_PLAIN + STATE_MIN + _TAG:
        raise TokenRejected("malformed", "truncated token")
    return raw


_AEADS: dict[bytes, AESGCM] = {}


def _aead(key: SyncKey, index: int) -> AESGCM:
    subkey = key.derive(_PURPOSE)[index]
    aead = _AEADS.get(subkey)
    if aead is None:
        # Few keys per process: building the cipher once per key, not per token.
        aead = _AEADS[subkey] = AESGCM(subkey)
    return aead
