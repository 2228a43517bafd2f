"""The IdP's pending hand-offs: login requests waiting for the user to sign in.

Until the app signs a visitor in, :class:`PendingHandoffs` keeps each login
request (``callback`` and ``state``) in the session under :data:`PENDING_KEY`
-- a few at once, so several tabs work -- for :data:`PENDING_TTL` seconds.
The sign-in takes the one its posted URL's state names, else the newest.

- **No usable state in the session.** The state is a bearer value at the
  remote: whoever holds it can have a token minted for it -- for their own
  session -- and make the victim's browser open that token. The session is
  readable by the IdP app (its debug pages, its logs) and in a store dump, so
  it holds only a keyed digest of each state (its *name*) and an AES-GCM
  sealed copy, opened only for a plain sign-in.
- **The app can write this key too.** Every entry is checked for shape and
  type before anything sorts or compares it; a malformed one is dropped, never
  a 500 on every later sign-in of that session.

    pending = PendingHandoffs(key, clock=time.time)
    pending.remember(session, callback, origin, state)
    taken = pending.take(session, posted_state=None, newest=True)  # (callback, state)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto import SyncKey, is_valid_state
from .session import Session, peek

__all__ = ["MAX_PENDING", "PENDING_KEY", "PENDING_TTL", "PendingHandoffs"]

#: Session key of the pending hand-offs: name of the state -> [callback URL, origin,
#: time, sealed state].
PENDING_KEY = "sessionshare.pending"
MAX_PENDING = 5
PENDING_TTL = 10 * 60

_NAME_PURPOSE = "pending state name"
_SEAL_PURPOSE = "pending state seal"
_SEAL_AAD = b"sessionshare/v1/pending-state"
_NONCE_BYTES = 12

_Entries = dict[str, list[Any]]


class PendingHandoffs:
    """Reads and writes the pending hand-offs of a session; no I/O."""

    def __init__(self, key: SyncKey, *, clock: Callable[[], float]) -> None:
        self.key = key
        self.clock = clock

    # -- names and seals -----------------------------------------------------
    def name(self, state: str) -> str:
        """The name a pending hand-off for ``state`` has in the session (a keyed digest)."""
        return self._names(state)[0]

    def _names(self, state: str) -> tuple[str, ...]:
        # Under every configured key, newest first: a hand-off pending across a key
        # rotation is still found.
        return tuple(
            hmac.new(sub, state.encode("ascii"), hashlib.sha256).hexdigest()[:32]
            for sub in self.key.derive(_NAME_PURPOSE)
        )

    def _seal(self, state: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)  # random per seal: never reused under a key
        sealed = AESGCM(self.key.derive(_SEAL_PURPOSE)[0]).encrypt(
            nonce, state.encode("ascii"), _SEAL_AAD
        )
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def _open(self, name: str, sealed: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeError):
            return None
        for sub in self.key.derive(_SEAL_PURPOSE):
            try:
                plain = AESGCM(sub).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _SEAL_AAD)
            except (InvalidTag, ValueError):
                continue
            state = plain.decode("ascii", "replace")
            # The name must be this state's: a seal copied under another name is refused.
            if is_valid_state(state) and name in self._names(state):
                return state
        return None

    # -- the record ------------------------------------------------------------
    def _read(self, session: Session) -> tuple[_Entries, bool]:
        """The well-formed, unexpired entries, and whether anything was dropped."""
        raw = peek(session, PENDING_KEY)
        if raw is None:
            return {}, False
        if not isinstance(raw, dict):
            return {}, True
        now = self.clock()
        kept: _Entries = {}
        for name, entry in raw.items():
            # Four fields or dropped (so was a plain state in clear, three fields).
            if not (isinstance(entry, list) and len(entry) == 4):
                continue
            callback, origin, created, sealed = entry
            if not (isinstance(callback, str) and isinstance(origin, str)
                    and isinstance(sealed, str)):
                continue
            # bool is an int to Python; NaN and infinities never expire or never sort.
            if isinstance(created, bool) or not isinstance(created, (int, float)):
                continue
            if not math.isfinite(created) or created + PENDING_TTL < now:
                continue
            kept[name] = [callback, origin, created, sealed]
        return kept, len(kept) != len(raw)

    @staticmethod
    def _write(session: Session, entries: _Entries) -> None:
        if entries:
            session[PENDING_KEY] = entries
        elif PENDING_KEY in session:
            del session[PENDING_KEY]

    # -- the two operations ------------------------------------------------------
    def remember(self, session: Session, callback: str, origin: str, state: str) -> None:
        """Keep a checked hand-off until the sign-in; the oldest go past :data:`MAX_PENDING`."""
        entries, _ = self._read(session)
        name = self.name(state)
        # The same login page reloaded keeps its seal (no rewrite of an unchanged value).
        sealed = entries[name][3] if name in entries else self._seal(state)
        entries[name] = [callback, origin, int(self.clock()), sealed]
        if len(entries) > MAX_PENDING:
            oldest = sorted(entries, key=lambda n: entries[n][2])[: len(entries) - MAX_PENDING]
            for old in oldest:
                del entries[old]
        self._write(session, entries)

    def take(
        self, session: Session, *, posted_state: str | None, newest: bool
    ) -> tuple[str, str] | None:
        """Remove and return ``(callback, state)`` of the hand-off to complete, if any.

        ``posted_state`` is the state in the URL the sign-in was posted to: its
        hand-off is taken. Otherwise, when ``newest``, the newest one. The
        callback is as it was stored: check it again, the app can write it.
        """
        entries, dropped = self._read(session)
        if dropped:
            self._write(session, entries)
        if not entries:
            return None
        posted = None
        if posted_state is not None and is_valid_state(posted_state):
            posted = next((n for n in self._names(posted_state) if n in entries), None)
        if posted is not None:
            chosen = posted  # the tab that posted the form
        elif newest:
            chosen = max(entries, key=lambda n: entries[n][2])
        else:
            return None
        callback, _, _, sealed = entries.pop(chosen)
        self._write(session, entries)
        # The token needs the state itself: the posted URL carries it; a plain form
        # (no state in its URL) gets it back from the seal.
        state = posted_state if posted is not None else self._open(chosen, sealed)
        return None if state is None else (callback, state)
