"""Tickets: the single-use pointer from a hand-off token to the shared session.

The IdP **issues** a ticket -- 32 bytes -- when it hands a signed-in
session to a remote app: it stores ``key(ticket) -> wrap(ticket, session id)``
for a few seconds and seals the ticket into the token. The remote
**redeems** it: takes the stored value (atomically, once) and unwraps the
session id with the ticket from the token. A remote that refuses a genuine
token after opening it (a state that is not this browser's) **burns** the
ticket, so whoever holds the right state cannot use it later.

Why not put the session id in the token: tokens end up in access logs and
browser history, and a logged token then holds only a spent ticket. Why a
digest as the key and the session id encrypted under the ticket: a dump of
the store alone yields neither a ticket nor a session id.

Lifetime: a ticket lives :data:`CLOCK_LEEWAY` seconds longer than the token
carrying it (:func:`ticket_ttl`), and the remote accepts a token up to the
same leeway past its lifetime (both from this one constant, defined next to
the token check in :mod:`sessionshare.crypto.tokens`), so a valid token never
points to a ticket the store dropped. The store expires tickets by its own
clock (Redis ``EX``), not the middleware's injected one.

The key carries the hash tag of the login state the ticket was minted for
(:func:`~sessionshare.core.claims.state_tag`): the IdP stores the ticket in
the command that claims that state for the browser (:mod:`sessionshare.core.claims`),
and the remote, which knows the state, finds it there. A ticket ends with the
8-byte identity of the store it was written into (:mod:`sessionshare.core.storeid`),
so a remote that cannot find it tells a lost ticket from another store's.

**Retries.** A redemption is named after the ticket and the state cookie of
the browser presenting it (:func:`redemption_nonce`): when the first attempt
ran but its answer was lost, the same browser's retry gets the session, and
anyone else still gets nothing. The join then records which redemption joined
(:meth:`~sessionshare.core.lifecycle.Lifecycle.join`), so a completed callback
is not completed again, not even with a copy of that cookie.

Wire format -- a change needs a new token version (it is 2 since protocol v2),
or tickets issued by one version are not redeemable by the next::

    key   = <key_prefix> "t:{" state_tag(state) "}"
            hex(sha256(b"sessionshare ticket\\x00" + ticket))
    value = urlsafe_b64(AES-GCM(key=ticket, nonce=0*12, aad=b"sessionshare/v1/ticket",
                                plaintext=session id))    # padded base64

    ticket = yield from issue(prefix, sid, state, claims, owners, token_ttl=60,
                              store_id=identity)                  # the IdP
    nonce = redemption_nonce(ticket, state_cookie)
    session_id = yield from redeem(prefix, ticket, state, nonce=nonce)  # the remote
    session_id = run(redeem(prefix, ticket, state), store)            # outside a step
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto.tokens import CLOCK_LEEWAY as CLOCK_LEEWAY
from ..crypto.tokens import TICKET_BYTES
from ..store.base import NOT_HELD as NOT_HELD
from .claims import StateClaims, state_tag
from .steps import Steps, TakeTicket
from .storeid import IDENTITY_BYTES

__all__ = [
    "CLOCK_LEEWAY", "NOT_HELD", "burn", "issue", "new_ticket", "redeem", "redemption_nonce",
    "store_of", "ticket_digest", "ticket_key", "ticket_ttl", "unwrap_session_id",
    "wrap_session_id",
]

# Each ticket is a fresh random AES key that encrypts exactly one message, so
# a fixed nonce never repeats under one key.
_WRAP_NONCE = bytes(12)
_WRAP_AAD = b"sessionshare/v1/ticket"
_DIGEST_PREFIX = b"sessionshare ticket\x00"
_NONCE_PREFIX = b"sessionshare redemption\x00"


def new_ticket(store_id: str | None = None) -> bytes:
    """A new ticket: fresh random bytes, ending with the 8 bytes of ``store_id`` (hex) --
    the identity of the store it is written into -- when given."""
    try:
        identity = bytes.fromhex(store_id) if store_id is not None else b""
    except ValueError:
        identity = b""  # not an identity this release wrote: name no store
    if len(identity) != IDENTITY_BYTES:
        return secrets.token_bytes(TICKET_BYTES)
    return secrets.token_bytes(TICKET_BYTES - IDENTITY_BYTES) + identity


def store_of(ticket: bytes) -> str:
    """The identity of the store ``ticket`` was written into (hex), as the IdP put it."""
    return ticket[-IDENTITY_BYTES:].hex()


def redemption_nonce(ticket: bytes, proof: str) -> str:
    """The name of a redemption of ``ticket`` by the browser whose state cookie is
    ``proof``: the same for its retry, another for anyone else (32 hex characters)."""
    digest = hashlib.sha256(_NONCE_PREFIX + ticket + b"\x00" + proof.encode("utf-8"))
    return digest.hexdigest()[:32]


def ticket_digest(ticket: bytes) -> str:
    """The name of ``ticket`` in the store: a digest, so a store dump holds no ticket."""
    return hashlib.sha256(_DIGEST_PREFIX + ticket).hexdigest()


def ticket_key(key_prefix: str, ticket: bytes, state: str) -> str:
    """The store key of ``ticket``, minted for the login ``state``."""
    return f"{key_prefix}t:{{{state_tag(state)}}}{ticket_digest(ticket)}"


def ticket_ttl(token_ttl: int) -> int:
    """How long the store keeps a ticket whose token lives ``token_ttl`` seconds."""
    return int(token_ttl) + CLOCK_LEEWAY


def wrap_session_id(ticket: bytes, session_id: str) -> str:
    """``session_id`` encrypted under ``ticket``, as the store holds it."""
    sealed = AESGCM(ticket).encrypt(_WRAP_NONCE, session_id.encode("ascii"), _WRAP_AAD)
    return base64.urlsafe_b64encode(sealed).decode("ascii")


def unwrap_session_id(ticket: bytes, wrapped: str) -> str | None:
    """The session id a stored value holds, or None if ``ticket`` does not open it."""
    try:
        plain = AESGCM(ticket).decrypt(
            _WRAP_NONCE, base64.urlsafe_b64decode(wrapped.encode("ascii")), _WRAP_AAD
        )
        return plain.decode("ascii")
    except (InvalidTag, binascii.Error, ValueError, UnicodeError):
        return None


# -- the three store steps ----------------------------------------------------
def issue(
    key_prefix: str, session_id: str, state: str, claims: StateClaims, owners: tuple[str, ...],
    *, token_ttl: int, store_id: str | None = None,
) -> Steps[bytes | None]:
    """Store a new ticket pointing to ``session_id`` if the browser (``owners``) holds (or
    now claims) ``state``; the ticket, for the token, or None when another browser claimed
    the state. ``store_id`` is the store's identity, carried in the ticket."""
    ticket = new_ticket(store_id)
    held = yield from claims.claim_with_ticket(
        state, owners, ticket_key(key_prefix, ticket, state),
        wrap_session_id(ticket, session_id), ticket_ttl(token_ttl),
    )
    return ticket if held else None


def redeem(
    key_prefix: str, ticket: bytes, state: str, *, nonce: str | None = None
) -> Steps[str | None]:
    """Take ``ticket`` (atomically, once): its session id; None if spent already (by
    another redemption than ``nonce``'s).

    :data:`NOT_HELD` when this store holds no such ticket -- for a token that is
    still valid, the IdP put it into another store, or this one lost it.
    """
    wrapped: str | None = yield TakeTicket(ticket_key(key_prefix, ticket, state), nonce)
    if wrapped is None or wrapped == NOT_HELD:
        return wrapped
    return unwrap_session_id(ticket, wrapped)


def burn(key_prefix: str, ticket: bytes, state: str) -> Steps[None]:
    """Spend ``ticket`` without using it, so nobody else can redeem it."""
    yield TakeTicket(ticket_key(key_prefix, ticket, state))
