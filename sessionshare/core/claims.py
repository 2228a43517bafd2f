"""Binding a login state to the first IdP browser that presents it: no login CSRF from a
leaked state.

The state ``S`` of a login attempt travels in the IdP's login URL, so it ends
up in access logs and browser history. Whoever reads it and has an account
could open that URL signed in, get a token minted for ``S`` -- for *their*
session -- and make the victim's browser open it: the victim's state cookie
matches, and the victim becomes the attacker at that remote. So the IdP
**claims** each state for the browser that presents it first, and mints a
token for it only to that browser (another gets **403** ``state_taken``):

- a browser is known by a random id in its own IdP cookie (``<session cookie
  name>_browser``: no expiry, untouched by logout, since the claim must
  survive the sign-in that rotates the session id);
- a claim is one store record, ``state digest -> owner digest`` (keyed: a
  store dump yields neither the state nor the cookie). Minting claims again
  and stores the ticket in one command
  (:class:`~sessionshare.core.steps.ClaimState`), under the state's hash tag;
- a claim lasts as long as the state it guards (one that ended first would
  leave a state read from a log free for the taking): a state that outlives
  :data:`CLAIM_TTL` carries its expiry (:mod:`sessionshare.core.loginstate`);
- the owner digest is keyed, so during a key rotation a new claim is made
  under the newest key, and a claim held under any configured key holds.

**Receipts.** Two tabs that open the IdP before either has its answer both
arrive without the browser cookie, and each mints an id; the browser keeps
only the cookie that arrived last. So a request that claims a state for an
id it minted also leaves a *receipt*: a cookie named after that state holding
the same id, which a sign-in in that tab presents. A receipt proves only what
the browser cookie proves, and relaxes nothing for anyone who does not hold
it (unlike a "provisional" claim the next presenter could take over, which
would hand a private window's state to whoever reads it from a log first).

What this cannot stop: an attacker who learns the state *before* the
victim's browser reaches the IdP (the remote's own logs, say) claims it
first; the victim then sees ``state_taken``.

    claims = StateClaims(key, cookie=CookieSpec("sessionshare_browser"), prefix="p:",
                         clock=time.time)
    browser = claims.browser_of(request.cookies, state)
    held = yield from claims.claim(state, browser.owners)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import NamedTuple

from ..crypto import SyncKey
from ..crypto.tokens import CLOCK_LEEWAY
from .cookies import CookieSpec
from .loginstate import MAX_STATE_TTL, LoginStates
from .reply import Header
from .steps import ClaimState, Steps

__all__ = ["CLAIM_TTL", "BrowserIds", "StateClaims", "state_tag"]

#: Seconds a claim on an ordinary state lasts: as long as a pending hand-off, and a
#: remote's default state_ttl (a longer-lived state carries its expiry).
CLAIM_TTL = 10 * 60
_BROWSER_ID = "[A-Za-z0-9_-]{43}"
_PURPOSE = "browser owner"
_RECEIPT_PREFIX = b"sessionshare receipt\x00"


def state_tag(state: str) -> str:
    """The hash tag naming ``state``'s records in the store (its claim and its tickets)."""
    return hashlib.sha256(b"sessionshare state\x00" + state.encode("ascii")).hexdigest()[:32]


class BrowserIds(NamedTuple):
    """Who this browser is to the claims.

    :param owners: the owner digests it may claim as, the one a new claim is made for
        first (its cookie's id, or the one just minted, under the newest key).
    :param headers: the ``Set-Cookie`` headers giving it an id, when it had none.
    :param minted: that new id, when one was minted (a later step of the same request
        must claim as the same browser, not mint another).
    """

    owners: tuple[str, ...]
    headers: tuple[Header, ...] = ()
    minted: str | None = None


class StateClaims:
    """The IdP's browser cookie, its receipts, and the claims they make for login states."""

    __slots__ = ("_keys", "_pattern", "clock", "cookie", "prefix", "states")

    def __init__(
        self, key: SyncKey, *, cookie: CookieSpec, prefix: str, clock: Callable[[], float]
    ) -> None:
        self._keys = key.derive(_PURPOSE)  # newest first: a new claim is made under [0]
        self.cookie = cookie
        self.prefix = prefix
        self.clock = clock
        self.states = LoginStates(key)
        self._pattern = cookie.pattern(_BROWSER_ID)

    # -- who the browser is ------------------------------------------------------
    def browser_of(
        self, cookies: str | None, state: str | None = None, *, minted: str | None = None
    ) -> BrowserIds:
        """This browser's owner digests for ``state``.

        :param cookies: the request's ``Cookie`` header.
        :param state: the state it presents: its receipt counts too.
        :param minted: the id an earlier step of this request minted (the browser
            had no cookie); none is minted again.
        """
        ids: list[str] = []
        match = self._pattern.search(cookies) if cookies else None
        if match is not None:
            ids.append(match.group(1) or match.group(2))
        elif minted is not None:
            ids.append(minted)
        if state is not None and cookies:
            receipt = self.cookie.pattern(_BROWSER_ID, name=self.receipt_name(state)).search(
                cookies
            )
            if receipt is not None and (found := receipt.group(1) or receipt.group(2)) not in ids:
                ids.append(found)
        if ids:
            return BrowserIds(self._owners(ids))
        browser = secrets.token_urlsafe(32)
        return BrowserIds(
            self._owners([browser]), (("Set-Cookie", self.cookie.set(browser)),), browser
        )

    def receipt_name(self, state: str) -> str:
        """The name of the receipt cookie for ``state``: the browser cookie's, and a digest."""
        digest = hashlib.sha256(_RECEIPT_PREFIX + state.encode("ascii")).hexdigest()[:12]
        return f"{self.cookie.name}-{digest}"

    def receipt(self, state: str, browser: BrowserIds) -> tuple[Header, ...]:
        """The receipt a request that minted ``browser``'s id leaves for the state it claims
        (nothing for a browser that brought its cookie)."""
        if browser.minted is None:
            return ()
        ttl = self.ttl_of(state, now=self.clock())
        value = self.cookie.set(browser.minted, name=self.receipt_name(state), max_age=ttl)
        return (("Set-Cookie", value),)

    # -- how long a claim lasts ------------------------------------------------------
    def ttl_of(self, state: str, *, now: float) -> int:
        """Seconds a claim on ``state`` lasts from ``now``: until the state expires (as its
        tag says; a few seconds more for the clocks), never less than :data:`CLAIM_TTL`,
        never more than :data:`~sessionshare.core.loginstate.MAX_STATE_TTL`."""
        expires = self.states.read(state).expires
        if expires is None:
            return CLAIM_TTL
        left = expires - int(now) + CLOCK_LEEWAY
        return max(CLAIM_TTL, min(left, MAX_STATE_TTL + CLOCK_LEEWAY))

    # -- the store steps -----------------------------------------------------------
    def claim_key(self, state: str) -> str:
        return f"{self.prefix}c:{{{state_tag(state)}}}"

    def claim(self, state: str, owners: tuple[str, ...]) -> Steps[bool]:
        """Claim ``state`` for this browser: True when it holds it now (first, or again)."""
        return (yield from self.claim_with_ticket(state, owners, None, "", 0))

    def claim_with_ticket(self, state: str, owners: tuple[str, ...], ticket_key: str | None,
                          value: str, ticket_ttl: int) -> Steps[bool]:
        """Claim ``state`` for this browser and, only if it holds it, store a ticket (none
        for ``ticket_key=None``): one command."""
        ttl = self.ttl_of(state, now=self.clock())
        held: bool = yield ClaimState(
            self.claim_key(state), owners, ttl, ticket_key, value, ticket_ttl
        )
        return held

    def _owners(self, browsers: list[str]) -> tuple[str, ...]:
        return tuple(
            hmac.new(key, browser.encode("ascii"), hashlib.sha256).hexdigest()
            for browser in browsers for key in self._keys
        )
