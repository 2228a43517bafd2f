"""Binding a login state to the first IdP browser that presents it (issue 16, finding 3).

The state ``S`` of a login attempt travels in the IdP's login URL, so it ends
up in access logs and browser history. Whoever reads it and has an account of
their own could open that URL signed in, get a token minted for ``S`` -- for
*their* session -- and make the victim's browser open it: the victim's state
cookie matches, and the victim becomes the attacker at that remote (login
CSRF with a leaked state).

So the IdP **claims** each state for the browser that presents it first, and
mints a token for it only to that browser:

- a browser is known by a random id in its own IdP cookie (``<session cookie
  name>_browser``: HttpOnly, no expiry, untouched by logout, since the claim
  must survive the sign-in that rotates the session id);
- the claim is one store record per state, ``state digest -> owner digest``
  (keyed digests: a store dump yields neither the state nor the cookie), kept
  as long as a pending hand-off (10 minutes); the first claimant wins;
- a signed-out visit to the login URL claims the state (one more round trip
  on that page view); minting claims again *and* stores the ticket in the
  same store command (:class:`~sessionshare.core.steps.ClaimState`), so the
  hand-off of a signed-in user stays at four round trips. Both records share
  the state's hash tag, and the remote finds the ticket under that tag too
  (it knows the state from its state cookie), so the command is Cluster-safe.

A browser that presents a state another browser claimed gets **403**
``state_taken`` and no token. What this cannot stop: an attacker who learns
the state *before* the victim's browser reaches the IdP (the remote's own
logs, say) claims it first. The victim's browser then gets ``state_taken`` at
the IdP, which at least shows; the attack needs the victim to open the
attacker's token before that.

    claims = StateClaims(key, cookie=CookieSpec("sessionshare_browser"), prefix="p:")
    owner, set_cookie = claims.browser_of(request.cookies)
    held = yield from claims.claim(state, owner)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..crypto import SyncKey
from .cookies import CookieSpec
from .steps import ClaimState, Steps

__all__ = ["CLAIM_TTL", "StateClaims", "state_tag"]

#: Seconds a claim lasts: as long as a pending hand-off, and a remote's default state_ttl.
CLAIM_TTL = 10 * 60
_BROWSER_ID = "[A-Za-z0-9_-]{43}"
_PURPOSE = "browser owner"


def state_tag(state: str) -> str:
    """The hash tag naming ``state``'s records in the store (its claim and its tickets)."""
    return hashlib.sha256(b"sessionshare state\x00" + state.encode("ascii")).hexdigest()[:32]


class StateClaims:
    """The IdP's browser cookie and the claims it makes for login states."""

    __slots__ = ("_key", "_pattern", "cookie", "prefix")

    def __init__(self, key: SyncKey, *, cookie: CookieSpec, prefix: str) -> None:
        self._key = key.derive(_PURPOSE)[0]
        self.cookie = cookie
        self.prefix = prefix
        self._pattern = cookie.pattern(_BROWSER_ID)

    def browser_of(self, cookies: str | None) -> tuple[str, list[tuple[str, str]]]:
        """This browser's owner digest, and the ``Set-Cookie`` header giving it an id if it
        has none yet."""
        match = self._pattern.search(cookies) if cookies else None
        if match is not None:
            return self._owner(match.group(1) or match.group(2)), []
        browser = secrets.token_urlsafe(32)
        return self._owner(browser), [("Set-Cookie", self.cookie.set(browser))]

    def claim_key(self, state: str) -> str:
        return f"{self.prefix}c:{{{state_tag(state)}}}"

    def claim(self, state: str, owner: str) -> Steps[bool]:
        """Claim ``state`` for ``owner``: True when it holds it now (first, or again)."""
        held: bool = yield ClaimState(self.claim_key(state), owner, CLAIM_TTL)
        return held

    def claim_with_ticket(
        self, state: str, owner: str, ticket_key: str, value: str, ticket_ttl: int
    ) -> Steps[bool]:
        """Claim ``state`` for ``owner`` and, only if it holds it, store a ticket: one command."""
        held: bool = yield ClaimState(
            self.claim_key(state), owner, CLAIM_TTL, ticket_key, value, ticket_ttl
        )
        return held

    def _owner(self, browser: str) -> str:
        return hmac.new(self._key, browser.encode("ascii"), hashlib.sha256).hexdigest()
