"""A remote's login states: a few signed cookies per browser, reused oldest first.

Each login start keeps its state ``S`` and the page to return to in a
signed (itsdangerous, its own subkey, aged by the side's clock), HttpOnly
cookie scoped to the callback path; the callback accepts a token only if its
``st`` is in one of them (login CSRF).

**Why slots.** Any page can start a login at a remote: an attacker's page
that navigates a popup to a protected page again and again would, with one
cookie per start, soon make the victim's callback ``Cookie`` header too large
for the server (431, before any of this code runs). So a browser holds at
most :data:`STATE_SLOTS` state cookies with fixed names (``sessionshare_state-0``
... ``-3``), each at most :data:`MAX_STATE_COOKIE` bytes: about 3.3 KB of
state in the callback's ``Cookie`` header, however many starts are forced.

**Why tabs keep working.** The state cookies only reach the callback, so the
protected page that starts a login reads a tiny cursor cookie (``Path=/``)
naming the slot to write next, and moves it on: slots are reused round
robin, the oldest attempt first, and the latest start -- the user's own --
always has a slot. The callback looks for its state in every slot, so up to
four tabs sign in at once, in any order; a fifth start overwrites the
oldest, whose tab then gets ``bad_state``. Two starts the browser sends
before either answer arrives (a restored session reopening tabs) read the
same cursor and share a slot: the later one wins.

    slots = StateSlots("sessionshare_state", path="/_sessionshare/callback",
                       secure=True, ttl=600, signer=signer)
    headers = slots.start(request.cookies, state, "/orders?page=2")  # on the 302
    back, spent, cookie = slots.find(request.cookies, token_state)   # at the callback
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

from itsdangerous import BadData, URLSafeTimedSerializer

from ..errors import TokenRejected
from .cookies import CookieSpec
from .reply import Header
from .request import safe_return_path

__all__ = ["MAX_STATE_COOKIE", "STATE_SLOTS", "FoundState", "StateSlots"]

#: How many logins one browser can have under way at once: one state cookie each.
STATE_SLOTS = 4
#: The longest state cookie value written; a longer one saves ``/`` as the page to
#: return to instead. Four slots of it keep the callback's ``Cookie`` header far
#: below the 8 KB that servers and proxies accept by default.
MAX_STATE_COOKIE = 800
_STATE_VALUE = r"[A-Za-z0-9_.\-]{1,1500}"


class FoundState(NamedTuple):
    """A login this browser started, as its state cookie holds it."""

    #: The page to return to (checked: a same-origin path).
    back: str
    #: The state cookies a successful callback clears (this one, and the dead ones).
    spent: list[str]
    #: The state cookie's own value: only this browser holds it (it names the browser's
    #: redemption of a ticket, so that its retry is recognised).
    cookie: str


class StateSlots:
    """The state cookies of one remote: fixed slots, a cursor, one signer."""

    def __init__(self, name: str, *, path: str, secure: bool, ttl: int,
                 signer: URLSafeTimedSerializer) -> None:
        #: The state cookies' spec (each slot is ``<name>-<slot>`` with its attributes).
        self.cookie = CookieSpec(name, secure=secure, samesite="Lax", path=path, max_age=ttl)
        # Path=/: the page that starts a login reads it. Its name does not start with the
        # state cookies'; it lives as long as the newest state (gone, slot 0 is free).
        #: The cursor cookie's spec: the slot the next login start writes.
        self.cursor = CookieSpec(
            f"next-{name}", secure=secure, samesite="Lax", path="/", max_age=ttl
        )
        #: The ``itsdangerous`` serializer that signs ``[state, return path]``.
        self.signer = signer
        self.ttl = ttl
        self._names = tuple(self.cookie_name(slot) for slot in range(STATE_SLOTS))
        self._patterns = tuple(self.cookie.pattern(_STATE_VALUE, name=n) for n in self._names)
        self._cursor_pattern = self.cursor.pattern("[0-9]")

    def cookie_name(self, slot: int) -> str:
        """The name of the state cookie in ``slot`` (``0`` to ``STATE_SLOTS - 1``)."""
        return f"{self.cookie.name}-{slot}"

    def start(self, cookies: str, state: str, back: str, *, mount: str = "") -> list[Header]:
        """The ``Set-Cookie`` headers that keep ``state`` and ``back`` in the next slot.

        :param cookies: the login start's ``Cookie`` header (only the cursor is read).
        :param mount: the app's mount point as a URL path (the request's ``mount``): the
            state cookie's path is the callback path under it.
        """
        value = self.signer.dumps([state, back])
        if len(value) > MAX_STATE_COOKIE:
            # A path that compresses badly (or JSON-escapes) must not grow the slot past
            # its share of the callback's Cookie header: the bound is per cookie too.
            value = self.signer.dumps([state, "/"])
        slot = self._next_slot(cookies)
        return [
            # The cursor first: the state cookie is the answer's last Set-Cookie.
            ("Set-Cookie", self.cursor.set(str((slot + 1) % STATE_SLOTS))),
            ("Set-Cookie", self.cookie.set(value, name=self._names[slot], mount=mount)),
        ]

    def _next_slot(self, cookies: str) -> int:
        # Unsigned on purpose: whoever can set it (this browser, or a sibling host tossing
        # cookies) can only choose which of this browser's slots is overwritten next --
        # never add one, so the bound holds whatever it says.
        match = self._cursor_pattern.search(cookies)
        if match is None:
            return 0
        slot = int(match.group(1) or match.group(2))
        return slot if slot < STATE_SLOTS else 0

    def find(self, cookies: str, state: str) -> FoundState:
        """The saved return path when this browser started the login ``state``.

        With it, the slots a successful callback clears: the one holding ``state``
        and every one holding no live login (expired, tampered, signed by another
        key). Live slots of other tabs stay, so those tabs can finish too.

        :raises TokenRejected: ``bad_state`` when no slot holds ``state``.
        """
        back: str | None = None
        value = ""
        spent: list[str] = []
        seen = valid = 0
        for name, pattern in zip(self._names, self._patterns, strict=True):
            # The first cookie of a name counts, as for the session cookie: a copy a
            # sibling host planted ahead of it cannot stand in for it.
            match = pattern.search(cookies)
            if match is None:
                continue
            seen += 1
            raw = match.group(1) or match.group(2)
            saved = self._open(raw)
            if saved is None:
                spent.append(name)
                continue
            valid += 1
            if back is None and hmac.compare_digest(saved[0].encode(), state.encode()):
                # Checked again: the signature proves who wrote it, not that it is safe.
                back, value = safe_return_path(saved[1]), raw
                spent.append(name)
        if back is None:
            if not seen:
                raise TokenRejected("bad_state", "no login was started in this browser")
            if not valid:
                raise TokenRejected("bad_state", "state cookie invalid or expired")
            # Also the oldest of more tabs than there are slots: its slot was reused.
            raise TokenRejected("bad_state", "state does not match this browser's login")
        return FoundState(back, spent, value)

    def started_here(self, cookies: str) -> bool:
        """True when this browser started a login here lately: it holds a state cookie or
        the cursor (which outlives the slot a successful callback clears). False at an
        ``app_url`` other than the host the login started at, whose cookies it kept."""
        if self._cursor_pattern.search(cookies):
            return True
        return any(pattern.search(cookies) for pattern in self._patterns)

    def clear(self, names: list[str], *, mount: str = "") -> list[Header]:
        """``Set-Cookie`` headers deleting the state cookies ``names`` (set under ``mount``)."""
        return [("Set-Cookie", self.cookie.clear(name=name, mount=mount)) for name in names]

    def _open(self, value: str) -> list[str] | None:
        """``[state, return path]`` from a state cookie, or None if it is no live login."""
        try:
            saved = self.signer.loads(value, max_age=self.ttl)
        except BadData:
            return None
        if isinstance(saved, list) and len(saved) == 2 and all(isinstance(p, str) for p in saved):
            return saved
        return None
