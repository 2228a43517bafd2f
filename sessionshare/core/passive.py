"""The passive sign-in check: know the user on a public page, never show a login form
for it.

A remote with ``passive`` on sends a browser that opens one of its public
pages with no session through the IdP **once**, with ``passive=1`` in the
login URL (and the usual state, in the usual state cookie):

- a user signed in at the IdP (and authorized for this remote) comes back with
  an ordinary token and is signed in here -- the page then knows them;
- anyone else comes back at once with a sealed "not signed in" *answer*
  instead of a token: ``<state>.<issued at, hex>.<tag>``, the tag a keyed
  BLAKE2b over it under a subkey of the sync key. The remote accepts it only
  for a state of this browser's state cookie (so it cannot be replayed or
  forced on another browser, exactly like a token) and only while it is as
  young as a token may be; it then sets a small *checked* cookie for
  ``passive_ttl`` seconds and returns to the page.

No loop and no trail in the history: the hop is made of redirects (no
history entries), and the checked cookie is set on the last one, so a
reload, Back or Forward finds it. A browser that holds a session here is
read on a passive page every time, so a user who signed in since is known at
once. Only a top-level GET navigation is bounced: never a ``fetch``/XHR, an
API client, a POST, a prefetch or prerender -- nor a client with no cookie of
the site and no fetch metadata (a crawler, a link previewer). A browser that
blocks the site's cookies comes back without its state cookie: the page it
asked for travels with the bounce, sealed (:mod:`sessionshare.core.guest`).

    answers = PassiveAnswers(key)
    answer = answers.seal(state, now=time.time())        # the IdP
    state = answers.open(answer, now=..., ttl=60)        # the remote: the state, or raises
"""

from __future__ import annotations

import base64
import hmac
import re
from hashlib import blake2b

from ..crypto import SyncKey
from ..crypto.tokens import CLOCK_LEEWAY
from ..errors import TokenRejected

__all__ = ["PassiveAnswers"]

_PURPOSE = "passive answer"
_TAG = 22
_ANSWER = re.compile(r"([A-Za-z0-9_-]{16,128})\.([0-9a-f]{1,12})\.([A-Za-z0-9_-]{22})")


class PassiveAnswers:
    """Seals and opens the IdP's "not signed in" answer to a passive check."""

    __slots__ = ("_keys",)

    def __init__(self, key: SyncKey) -> None:
        self._keys = key.derive(_PURPOSE)  # newest first: any configured key opens

    def seal(self, state: str, *, now: float) -> str:
        """The answer for ``state``, issued ``now``."""
        body = f"{state}.{int(now):x}"
        return f"{body}.{self._tag(self._keys[0], body)}"

    def open(self, answer: str, *, now: float, ttl: int) -> str:
        """The state an intact answer at most ``ttl`` seconds old names; else raises
        :class:`~sessionshare.errors.TokenRejected` (``malformed``, ``bad_seal``,
        ``expired``, ``not_yet_valid``)."""
        match = _ANSWER.fullmatch(answer)
        if match is None:
            raise TokenRejected("malformed", "not a passive answer")
        state, issued_hex, tag = match.groups()
        body = f"{state}.{issued_hex}"
        if not any(hmac.compare_digest(self._tag(key, body), tag) for key in self._keys):
            raise TokenRejected("bad_seal", "the passive answer was altered")
        issued = int(issued_hex, 16)
        if issued > now + CLOCK_LEEWAY:
            raise TokenRejected("not_yet_valid", "the passive answer was issued in the future")
        if now - issued > ttl + CLOCK_LEEWAY:
            raise TokenRejected("expired", "the passive answer is too old")
        return state

    @staticmethod
    def _tag(key: bytes, body: str) -> str:
        mac = blake2b(b"none\n" + body.encode("ascii"), key=key, digest_size=16).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii")[:_TAG]
