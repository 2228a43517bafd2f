"""What a login state can carry, sealed: a step-up requirement, its expiry, a passive check.

A remote starts each sign-in with a state ``S`` that travels in the IdP's
login URL and comes back in the token; the remote accepts the token only if
``S`` equals the state in this browser's state cookie. An ordinary state is
43 random characters. A state that must tell the IdP something carries it
in the clear, under a tag::

    S = <43 random> "_" <max age, hex, or empty> ["-x" <expires at, hex>] ["-p"] <tag: 22 chars>

- the **max age** is step-up's (:mod:`sessionshare.core.stepup`);
- the **expiry** is when the remote's state cookie expires, written only when
  later than :data:`~sessionshare.core.claims.CLAIM_TTL`: the IdP's claim on
  the state lasts that long (:mod:`sessionshare.core.claims`);
- **passive** (``-p``) marks a passive check's state: the remote reads it back
  from a token brought by a browser that keeps no cookies there (the IdP
  skips it).

The tag is a keyed BLAKE2b over everything before it, so the facts can be
neither stripped (the state must come back equal to the state cookie) nor
altered. The newest key tags and **every configured key reads**, so a remote
and an IdP rotating keys in either order still agree. An untagged state
carries nothing. Whatever the IdP takes from a state is bounded all the same
(:data:`MAX_STATE_TTL`): a key holder's bug must not make it keep records for
years.

    states = LoginStates(key)
    state = states.make(max_age=300, expires=now + 3600)
    states.read(state)          # StateFacts(max_age=300, expires=...)
    states.read("S" * 43)       # StateFacts(max_age=None, expires=None)
"""

from __future__ import annotations

import base64
import hmac
import secrets
from hashlib import blake2b
from typing import NamedTuple

from ..crypto import SyncKey

__all__ = ["MAX_STATE_TTL", "LoginStates", "StateFacts"]

#: The longest a remote's login state may live (``state_ttl``), and so the longest the IdP
#: keeps a claim on one: a day.
MAX_STATE_TTL = 24 * 60 * 60
_RANDOM = 43
_TAG = 22
# The purpose of the step-up states that came first: their tags stay valid.
_PURPOSE = "step-up state"
_HEX = frozenset("0123456789abcdef")


class StateFacts(NamedTuple):
    """What a tagged state says: the step-up age it requires, when it expires, and whether
    it is a passive check's."""

    max_age: int | None = None
    expires: int | None = None
    passive: bool = False


_NOTHING = StateFacts()


class LoginStates:
    """Makes login states carrying facts, and reads them under every configured key."""

    __slots__ = ("_keys",)

    def __init__(self, key: SyncKey) -> None:
        self._keys = key.derive(_PURPOSE)  # newest first: it tags, any of them reads

    def make(
        self, *, max_age: int | None = None, expires: int | None = None, passive: bool = False
    ) -> str:
        """A new state carrying ``max_age``, ``expires`` and ``passive`` (an ordinary one for
        none of them)."""
        random = secrets.token_urlsafe(32)
        if max_age is None and expires is None and not passive:
            return random
        body = f"{random}_{'' if max_age is None else f'{int(max_age):x}'}"
        if expires is not None:
            body += f"-x{int(expires):x}"
        if passive:
            body += "-p"
        return body + _tag(self._keys[0], body)

    def read(self, state: str) -> StateFacts:
        """The facts ``state`` carries; none for an ordinary, forged or foreign state."""
        if len(state) < _RANDOM + 1 + _TAG or state[_RANDOM] != "_":
            return _NOTHING
        body, tag = state[:-_TAG], state[-_TAG:]
        if not any(hmac.compare_digest(_tag(key, body), tag) for key in self._keys):
            return _NOTHING
        age, *extensions = body[_RANDOM + 1:].split("-")
        expires, passive = None, False
        for extension in extensions:
            # Unknown extensions are skipped: a later release may add some.
            if extension[:1] == "x" and _is_hex(extension[1:]):
                expires = int(extension[1:], 16)
            elif extension == "p":
                passive = True
        return StateFacts(int(age, 16) if _is_hex(age) else None, expires, passive)

    def max_age_of(self, state: str) -> int | None:
        """The step-up age ``state`` requires, or None."""
        return self.read(state).max_age


def _is_hex(text: str) -> bool:
    return 0 < len(text) <= 12 and _HEX.issuperset(text)


def _tag(key: bytes, body: str) -> str:
    mac = blake2b(body.encode("ascii"), key=key, digest_size=16).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii")[:_TAG]
