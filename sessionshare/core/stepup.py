"""Step-up re-authentication: a remote asks for a recent sign-in.

A remote with ``max_auth_age`` serves a protected path only to a session
signed in at most that many seconds ago (plus :data:`GRACE`). An older one is
sent through the hand-off again with the requirement tagged **inside the
login state** (:mod:`sessionshare.core.loginstate`), so it can be neither
stripped nor altered. The IdP hands off only a session authenticated within
that age; for an older one it keeps the hand-off pending and flags the session
(:attr:`~sessionshare.core.session.Session.reauthentication_required`), so its
app asks for the password again -- a sign-in then (even as the same user)
rotates the id and completes the hand-off. The remote checks again at the
callback: an IdP that ignored the requirement gets a refusal, not a loop.
:data:`GRACE` keeps a limit of 0 ("always ask") from looping.

    states = LoginStates(key)
    state = states.make(max_age=300)
    states.max_age_of(state)        # 300; None for an ordinary state
    is_fresh(session.authenticated_at, 300, now)
"""

from __future__ import annotations

__all__ = ["GRACE", "is_fresh"]

#: Seconds a sign-in counts as fresh beyond the required age (no loop at a limit of 0).
GRACE = 60


def is_fresh(authenticated_at: float | None, max_age: int, now: float) -> bool:
    """True when a sign-in at ``authenticated_at`` is recent enough for ``max_age``."""
    return authenticated_at is not None and now - authenticated_at <= max_age + GRACE
