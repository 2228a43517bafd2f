"""Session ids, the store key of one, and each app's own cookie value for it.

Protocol v2: one shared session has one id, known to the store only as a
keyed digest and to each app only through a cookie value that is *its own*::

    id         = <43 random characters> "." <key id> "." <idle limit> "." <absolute limit>
    cookie     = id "." base64url(BLAKE2b-128(key=cookie subkey, audience "\\n" id))
    (timed)    = id "." hex(issued) "." base64url(BLAKE2b-128(key=cookie subkey,
                                                              audience "\\n" id "\\n" hex(issued)))
    store key  = <prefix> "s:{" hex(BLAKE2b-256(key=store subkey, id)) "}"

(BLAKE2b in its keyed mode is a MAC, and about three times cheaper than
HMAC-SHA256 on messages this short: both run on every request.)

- **A cookie is worth nothing at another app.** Its tag is bound to the
  app's origin (the *audience*): the shop's cookie pasted into the blog fails
  the blog's check, so no app's ``authorize`` decision can be bypassed by
  copying a cookie; an app adopts a session only through a hand-off.
- **A session belongs to a deployment.** The store key is a digest under a
  subkey of the sync key: a deployment with another key sharing the store
  finds nothing, and a store dump yields no id and no cookie.
- **The key id** is the fingerprint of the sync key the session was made
  under, whose subkeys it keeps for life: adding a new key in front of the
  old one (rotation) signs nobody out. Remove the old key after the longest
  absolute timeout; its sessions are then simply absent.
- **The limits** are the idle and absolute timeouts (seconds, hex) of the
  app that made the session (for a signed-in one, the IdP: a sign-in always
  moves it). Every app enforces the stricter of its own and these, known
  before the store is read, so the read that slides the idle expiry stays
  one round trip (an IdP's 5 idle minutes are not stretched to a remote's
  30). A tampered limit changes the id, whose tag and store key match nothing.
- **A remembered sign-in** (``Session.remember()``) marks its absolute limit
  with ``r``.
- **A timed cookie** (the app's ``cookie_max_age``) also carries its issue
  time under the same MAC; older than ``cookie_max_age``, it reads as no
  cookie *here* (a copied cookie obeys no browser's ``Max-Age``). The two
  forms' MAC inputs differ (an id holds no newline): neither passes for the other.

    ids = SessionIds(key, audience="https://shop.example", idle_timeout=1800,
                     absolute_timeout=8 * 3600)
    sid = ids.new()
    ids.from_cookie(ids.cookie_value(sid)) == sid      # True; None at another audience
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from hashlib import blake2b

from ..crypto import SyncKey

__all__ = ["COOKIE_VALUE_PATTERN", "MAX_LIMIT", "SESSION_ID_PATTERN", "TIMED_COOKIE_VALUE_PATTERN",
           "SessionIds"]

#: A well-formed session id (nothing about whether it is genuine).
SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{43}\.[0-9a-f]{12}\.[0-9a-f]{1,8}\.r?[0-9a-f]{1,8}"
_TAG_CHARS = 22  # 16 bytes, base64url without padding
#: A well-formed cookie value: an id and its tag.
COOKIE_VALUE_PATTERN = SESSION_ID_PATTERN + r"\.[A-Za-z0-9_-]{22}"
#: A well-formed timed cookie value: an id, the time it was issued (hex seconds), its tag.
TIMED_COOKIE_VALUE_PATTERN = SESSION_ID_PATTERN + r"\.[0-9a-f]{1,12}\.[A-Za-z0-9_-]{22}"
_ID = re.compile(SESSION_ID_PATTERN)
#: The longest limit an id can carry, in seconds (8 hex digits: about 49,710 days).
MAX_LIMIT = 0xFFFFFFFF

_COOKIE_PURPOSE = "session cookie"
#: Entries of each memo of verified cookie values and ids (a few hundred KB at most).
_MEMO = 4096
_STORE_PURPOSE = "session store key"


class SessionIds:
    """Makes and checks session ids and cookie values for one app (its *audience*)."""

    __slots__ = ("_audience", "_cookie_keys", "_lookups", "_newest", "_seen", "_store_keys",
                 "absolute", "cookie_max_age", "idle", "max_remember")

    def __init__(
        self, key: SyncKey, *, audience: str, idle_timeout: int, absolute_timeout: int,
        max_remember: int | None = None, cookie_max_age: int | None = None,
    ) -> None:
        ids = [fingerprint.hex() for fingerprint in key.fingerprint_bytes()]
        self._cookie_keys = dict(zip(ids, key.derive(_COOKIE_PURPOSE), strict=True))
        self._store_keys = dict(zip(ids, key.derive(_STORE_PURPOSE), strict=True))
        self._newest = ids[0]
        self._audience = audience.encode("ascii") + b"\n"
        self.idle = int(idle_timeout)
        self.absolute = int(absolute_timeout)
        #: How far past its own limits this app honours a remembered sign-in's (None: as far
        #: as the id says; 0: not at all).
        self.max_remember = None if max_remember is None else int(max_remember)
        #: Seconds a cookie value of this app is good for after it was issued (it then
        #: carries its issue time: :meth:`timed_cookie_value`); None: untimed values.
        self.cookie_max_age = None if cookie_max_age is None else int(cookie_max_age)
        # Verified facts, memoised (a browser sends the same cookie on every request): only
        # what passed the checks, and starting over past _MEMO entries.
        self._seen: dict[str, str] = {}  # cookie value -> its genuine id
        self._lookups: dict[str, tuple[str, int, int]] = {}  # id -> lookup()

    def new(self, remember: tuple[int, int] | None = None) -> str:
        """A fresh id under the newest key, carrying this app's limits, or a remembered
        sign-in's ``(idle, absolute)`` seconds (an idle of 0: this app's ``idle_timeout``)."""
        if remember is not None:
            idle, absolute = remember
            idle = min(idle or self.idle, absolute)
            if not 0 < idle <= absolute <= MAX_LIMIT:
                raise ValueError(f"a remembered sign-in lasts 1 to {MAX_LIMIT} seconds")
            return f"{secrets.token_urlsafe(32)}.{self._newest}.{idle:x}.r{absolute:x}"
        return f"{secrets.token_urlsafe(32)}.{self._newest}.{self.idle:x}.{self.absolute:x}"

    @staticmethod
    def is_remembered(sid: str) -> bool:
        """True for the id of a remembered sign-in (its cookies persist)."""
        return sid.rsplit(".", 1)[1].startswith("r")

    def is_known(self, sid: str) -> bool:
        """True when ``sid`` is well formed and made under a configured key."""
        return _ID.fullmatch(sid) is not None and sid[44:56] in self._store_keys

    def limits(self, sid: str) -> tuple[int, int]:
        """The idle and absolute timeouts that hold for ``sid`` here: the stricter of
        this app's and the ones the id carries (never below one second)."""
        _, _, idle, absolute = sid.split(".")
        return self._limits(idle, absolute)

    def _limits(self, idle: str, absolute: str) -> tuple[int, int]:
        if absolute[0] == "r":  # remembered: its own limits, as far as this app honours them
            cap = self.max_remember
            if cap is None:
                return max(1, int(idle, 16)), max(1, int(absolute[1:], 16))
            return (max(1, min(max(self.idle, cap), int(idle, 16))),
                    max(1, min(max(self.absolute, cap), int(absolute[1:], 16))))
        return (max(1, min(self.idle, int(idle, 16))),
                max(1, min(self.absolute, int(absolute, 16))))

    def digest(self, sid: str) -> str:
        """The keyed digest naming ``sid`` in the store (``sid`` must be :meth:`is_known`)."""
        key = self._store_keys[sid[44:56]]
        return blake2b(sid.encode("ascii"), key=key, digest_size=32).hexdigest()

    def lookup(self, sid: str) -> tuple[str, int, int] | None:
        """:meth:`digest` and :meth:`limits` of ``sid`` in one pass (the read of every
        request); None unless it is known."""
        found = self._lookups.get(sid)
        if found is not None:
            return found
        if not self.is_known(sid):
            return None
        found = (self.digest(sid), *self.limits(sid))
        if len(self._lookups) >= _MEMO:
            self._lookups.clear()
        self._lookups[sid] = found
        return found

    def cookie_value(self, sid: str) -> str:
        """This app's cookie value for ``sid``: worthless at any other app."""
        return f"{sid}.{self._tag(sid)}"

    def from_cookie(self, value: str) -> str | None:
        """The id in a cookie value made by :meth:`cookie_value` *of this app*, else None
        (``value`` matches :data:`COOKIE_VALUE_PATTERN`: the cookie parser sees to it)."""
        known = self._seen.get(value)
        if known is not None:
            return known
        sid, tag = value[:-_TAG_CHARS - 1], value[-_TAG_CHARS:]
        if sid[44:56] not in self._cookie_keys:
            return None  # another deployment's key, or one removed since
        if not hmac.compare_digest(self._tag(sid), tag):
            return None
        if len(self._seen) >= _MEMO:
            self._seen.clear()
        self._seen[value] = sid
        return sid

    def timed_cookie_value(self, sid: str, issued: int) -> str:
        """This app's timed cookie value for ``sid``, issued at ``issued`` (seconds since
        the epoch): good here for ``cookie_max_age`` seconds from then."""
        stamp = f"{max(0, int(issued)):x}"
        return f"{sid}.{stamp}.{self._tag(sid, stamp)}"

    def from_timed_cookie(self, value: str, now: float) -> tuple[str, int] | None:
        """The id in a value made by :meth:`timed_cookie_value` *of this app*, and when it
        was issued; None when the tag is wrong or the value is ``cookie_max_age`` seconds
        old or more at ``now`` (``value`` matches :data:`TIMED_COOKIE_VALUE_PATTERN`)."""
        assert self.cookie_max_age is not None, "only an app with cookie_max_age times values"
        body, tag = value[:-_TAG_CHARS - 1], value[-_TAG_CHARS:]
        sid, stamp = body.rsplit(".", 1)
        if sid[44:56] not in self._cookie_keys:
            return None
        if not hmac.compare_digest(self._tag(sid, stamp), tag):
            return None  # forged, or its time altered
        issued = int(stamp, 16)
        if now - issued >= self.cookie_max_age:
            return None  # as the browser would have dropped it: a copy lasts no longer
        return sid, issued

    def _tag(self, sid: str, stamp: str | None = None) -> str:
        message = self._audience + sid.encode("ascii")
        if stamp is not None:
            message += b"\n" + stamp.encode("ascii")
        mac = blake2b(message, key=self._cookie_keys[sid[44:56]], digest_size=16).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii")[:_TAG_CHARS]
