"""Step-up re-authentication: a remote asks for a recent sign-in.

A remote with ``max_auth_age`` serves a protected path only to a session
signed in at most that many seconds ago (plus :data:`GRACE`). An older one is
sent through the hand-off again with the requirement **inside the login
state** (:class:`~sessionshare.core.loginstate.LoginStates`)::

    state = <43 random> "_" <max age, hex> <tag: 22 chars, keyed BLAKE2b over the rest>

so it cannot be stripped from the URL -- the state must come back equal to the
remote's state cookie -- nor altered (the tag, under a subkey of the sync
key; any configured key reads it, so a remote and an IdP switching keys in
either order still agree). The IdP then hands off only a session
authenticated within that age:
for an older one it keeps the hand-off pending and flags the session
(:attr:`~sessionshare.core.session.Session.reauthentication_required`), so its
app asks for the password again; a sign-in there (the app assigning the user
key, even to the same user) is a fresh authentication, which rotates the id
and completes the hand-off. The remote checks the result again at the
callback (``reauthentication_required`` when the session is still too old:
an IdP that ignored the requirement gets no loop, only a refusal).

:data:`GRACE` keeps a limit of 0 ("always ask") from looping: a sign-in that
just happened counts as fresh for that long.

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
