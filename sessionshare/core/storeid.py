"""The store's identity: telling a ticket the store *lost* from one put into *another store*.

A remote that cannot find the ticket of a valid token needs to know which:
another store (the IdP and this remote configured with different stores or
key prefixes) fails every hand-off and must be reported (``unknown_ticket``);
a lost ticket (a Sentinel failover to a replica that never got it, a restart
without persistence, an eviction) most likely works next time, so the
hand-off starts again. So the store holds one long-lived random identity under
``<key prefix>store-id``, written by whichever app asks first, and the IdP
puts it *inside each ticket* (its last 8 bytes, under the token's seal). A
remote that cannot find a ticket reads its own store's identity:

========================  ===================================================
the remote's store holds  meaning
========================  ===================================================
the ticket's identity     the same store lost the ticket: start again
another identity          another store: ``unknown_ticket``, a misconfiguration
none (it writes one now)  a wiped store, or one no IdP ever wrote to: start
                          again once; the next failure meets that identity
========================  ===================================================

A hand-off started again once and failing again is not retried a second
time (no loop): the store is losing data, and the answer says so (503).

**Cost.** Nothing on the authenticated read or on a hand-off that works. The
IdP reads the identity at most once every :data:`REFRESH_EVERY` seconds, on a
hand-off (so in the minute after a wipe a lost ticket may still be called
``unknown_ticket``).

    identity = Identity(prefix, clock=time.time)
    store_id = yield from identity.current()     # the IdP: cached, refreshed now and then
    lost = yield from was_lost_here(prefix, store_of(ticket))  # a remote, ticket missing
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from .steps import Steps, StoreIdentity

__all__ = [
    "IDENTITY_BYTES", "REFRESH_EVERY", "Identity", "identity_key", "new_identity", "was_lost_here",
]

#: Bytes of a store identity (16 hex characters in the store, the last 8 of a ticket).
IDENTITY_BYTES = 8
#: Seconds the IdP trusts the identity it read before reading it again.
REFRESH_EVERY = 60


def identity_key(key_prefix: str) -> str:
    """The store key of the identity: one per deployment's key prefix."""
    return f"{key_prefix}store-id"


def new_identity() -> str:
    """A fresh random identity, as the store keeps it (hex)."""
    return secrets.token_hex(IDENTITY_BYTES)


class Identity:
    """The identity of the IdP's store, read once and refreshed now and then."""

    __slots__ = ("_held", "clock", "key")

    def __init__(self, key_prefix: str, *, clock: Callable[[], float]) -> None:
        self.key = identity_key(key_prefix)
        self.clock = clock
        self._held: tuple[float, str] | None = None  # (read at, identity): one swap, no lock

    def current(self) -> Steps[str]:
        """The store's identity: from the cache while it is young, else read (or written)."""
        held, now = self._held, self.clock()
        if held is not None and 0 <= now - held[0] < REFRESH_EVERY:
            return held[1]
        identity: str = yield StoreIdentity(self.key, new_identity())
        self._held = (now, identity)
        return identity


def was_lost_here(key_prefix: str, ticket_store: str) -> Steps[bool]:
    """A ticket naming the store ``ticket_store`` is missing from this store: True when
    this store lost it (it holds that identity, or none -- then it takes one now), False
    when the ticket was written into another store."""
    candidate = new_identity()
    held: str = yield StoreIdentity(identity_key(key_prefix), candidate)
    return held == candidate or held == ticket_store
