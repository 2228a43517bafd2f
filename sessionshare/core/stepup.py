"""Step-up re-authentication (issue 12, item 3): a remote asks for a recent sign-in.

A remote with ``max_auth_age`` serves a protected path only to a session
signed in at most that many seconds ago (plus :data:`GRACE`). An older one is
sent through the hand-off again with the requirement **inside the login
state**::

    state = <43 random> "_" <max age, hex> <tag: 22 chars, keyed BLAKE2b over the rest>

so it cannot be stripped from the URL -- the state must come back equal to the
remote's state cookie -- nor altered (the tag, under a subkey of the sync
key). The IdP then hands off only a session authenticated within that age:
for an older one it keeps the hand-off pending and flags the session
(:attr:`~sessionshare.core.session.Session.reauthentication_required`), so its
app asks for the password again; a sign-in there (the app assigning the user
key, even to the same user) is a fresh authentication, which rotates the id
and completes the hand-off. The remote checks the result again at the
callback (``reauthentication_required`` when the session is still too old:
an IdP that ignored the requirement gets no loop, only a refusal).

:data:`GRACE` keeps a limit of 0 ("always ask") from looping: a sign-in that
just happened counts as fresh for that long.

    step_up = StepUp(key)
    state = step_up.state(max_age=300)
    step_up.max_age_of(state)        # 300; None for an ordinary state
"""

from __future__ import annotations

import base64
import hmac
import secrets
from hashlib import blake2b

from ..crypto import SyncKey

__all__ = ["GRACE", "StepUp", "is_fresh"]

#: Seconds a sign-in counts as fresh beyond the required age (no loop at a limit of 0).
GRACE = 60
_RANDOM = 43
_TAG = 22
_PURPOSE = "step-up state"


def is_fresh(authenticated_at: float | None, max_age: int, now: float) -> bool:
    """True when a sign-in at ``authenticated_at`` is recent enough for ``max_age``."""
    return authenticated_at is not None and now - authenticated_at <= max_age + GRACE


class StepUp:
    """Makes and reads login states that carry a step-up requirement."""

    __slots__ = ("_key",)

    def __init__(self, key: SyncKey) -> None:
        self._key = key.derive(_PURPOSE)[0]

    def state(self, max_age: int) -> str:
        """A login state requiring a sign-in at most ``max_age`` seconds old."""
        body = f"{secrets.token_urlsafe(32)}_{int(max_age):x}"
        return body + self._tag(body)

    def max_age_of(self, state: str) -> int | None:
        """The age a state requires, or None for an ordinary (or forged) one."""
        if len(state) < _RANDOM + 3 + _TAG or state[_RANDOM] != "_":
            return None
        body, tag = state[:-_TAG], state[-_TAG:]
        if not hmac.compare_digest(self._tag(body), tag):
            return None
        try:
            return int(body[_RANDOM + 1:], 16)
        except ValueError:
            return None

    def _tag(self, body: str) -> str:
        mac = blake2b(body.encode("ascii"), key=self._key, digest_size=16).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii")[:_TAG]
