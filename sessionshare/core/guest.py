"""The way back to a passive page for a browser that keeps no cookies here.

A passive check (:mod:`sessionshare.core.passive`) sends a browser through
the IdP with the page it asked for in its state cookie. A browser that
blocks this site's cookies comes back without one: nothing says which page
to return to, and a redirect to that page would only bounce it again -- for
ever. Two small sealed values carry what the cookies would have:

- the **relay**. A passive bounce from a request carrying no cookie of this
  site puts the return path in the login URL as ``relay=R``, and the IdP
  hands ``R`` back unchanged. ``R`` is the return path encrypted with
  AES-GCM under a subkey of the sync key, with the state as associated data:
  the IdP's access log shows no page address (a query can hold something
  private), and ``R`` opens only with its own state, so an answer paired
  with another bounce's relay is refused, like a forged one. It never
  touches the store. Once opened, it is checked as any return path is, so
  not even a holder of the sync key makes it another site.
- the **guest mark**. The callback sends such a browser to its page with
  ``sessionshare_guest=<issued at, hex>.<tag>`` appended to the query. A
  request with no cookie of this site at all and a mark this site made at
  most ``passive_ttl`` seconds ago is served as a guest rather than bounced;
  the app never sees the mark (the shells hand it the query without). A mark
  names no page and no person: planted in a link, all it does is spare one
  visitor with no cookie here one passive check.

No loop, whatever the browser or the clocks: a page request that carries a
mark this site honours is never bounced, and a bounce that comes back with a
return path whose mark this site would still honour (one made by an instance
whose clock runs ahead) gets a notice with a link instead of a redirect.

    relays = Relays(key)
    relay = relays.seal("/news?id=7", state=state)
    relays.open(relay, state=state)           # "/news?id=7", or raises TokenRejected
    marks = GuestMarks(key, origin="https://shop.example")
    marks.add("/news?id=7", now=now)          # "/news?id=7&sessionshare_guest=..."
    marks.split("id=7&sessionshare_guest=6932f0a1.Tq...")  # ("id=7", "6932f0a1.Tq...")
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from hashlib import blake2b

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto import SyncKey
from ..crypto.tokens import CLOCK_LEEWAY
from ..errors import TokenRejected

__all__ = ["MARK", "MAX_RELAY", "ORIGINAL_QUERY", "GuestMarks", "Relays", "is_valid_relay"]

#: The query parameter of the guest mark.
MARK = "sessionshare_guest"
#: Where a shell keeps the query string as received (in the environ, in the scope) when
#: the core hands the app another: the guest mark taken out.
ORIGINAL_QUERY = "sessionshare.query_string"
#: The longest relay the IdP takes: a return path of 512 characters seals to 720.
MAX_RELAY = 1024
_RELAY = re.compile(rf"[A-Za-z0-9_-]{{16,{MAX_RELAY}}}")
_NONCE = 12
_TAG = 22
_MARK_VALUE = re.compile(r"([0-9a-f]{1,12})\.([A-Za-z0-9_-]{22})")


def is_valid_relay(relay: str) -> bool:
    """True for a relay the IdP hands back: URL-safe base64, at most :data:`MAX_RELAY`
    characters (so it can add no parameter to the callback URL, nor grow it without end)."""
    return _RELAY.fullmatch(relay) is not None


class Relays:
    """Seals a passive check's return path for the login URL, and opens it at the callback."""

    __slots__ = ("_ciphers",)

    def __init__(self, key: SyncKey) -> None:
        # Newest first: it seals; every configured key opens (a rotation in either order).
        self._ciphers = tuple(AESGCM(subkey) for subkey in key.derive("passive relay"))

    def seal(self, back: str, *, state: str) -> str:
        """``back`` (an ASCII return path), readable only with ``state``."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._ciphers[0].encrypt(nonce, back.encode("ascii"), state.encode("ascii"))
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def open(self, relay: str, *, state: str) -> str:
        """The return path ``relay`` holds for ``state``; else raises
        :class:`~sessionshare.errors.TokenRejected` (``malformed``, ``bad_seal``)."""
        if not is_valid_relay(relay):
            raise TokenRejected("malformed", "not a relay")
        try:
            raw = base64.urlsafe_b64decode(relay + "=" * (-len(relay) % 4))
        except (binascii.Error, ValueError):
            raise TokenRejected("malformed", "not a relay") from None
        nonce, sealed = raw[:_NONCE], raw[_NONCE:]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, state.encode("ascii"))
            except InvalidTag:
                continue
            try:
                return plain.decode("ascii")
            except UnicodeDecodeError:
                break  # sealed by a key holder, and not a return path
        raise TokenRejected("bad_seal", "the relay was altered or is another check's")


class GuestMarks:
    """Makes and reads the guest mark of one site (``origin``)."""

    __slots__ = ("_keys", "_origin")

    def __init__(self, key: SyncKey, *, origin: str) -> None:
        self._keys = key.derive("guest mark")  # newest first: it tags, any of them reads
        self._origin = origin  # a mark of one site means nothing at another

    def add(self, back: str, *, now: float) -> str:
        """``back`` with a new mark as its last parameter (and none of its old ones)."""
        path, _, query = back.partition("?")
        query, _ = self.split(query)
        issued = f"{int(now):x}"
        mark = f"{MARK}={issued}.{self._tag(self._keys[0], issued)}"
        return f"{path}?{query}&{mark}" if query else f"{path}?{mark}"

    @staticmethod
    def split(query: str) -> tuple[str, str | None]:
        """``query`` without any mark, and the last mark's value (None: no mark)."""
        if MARK not in query:
            return query, None  # the cheap test first: almost every query
        kept, value = [], None
        for pair in query.split("&"):
            name, _, mark = pair.partition("=")
            if name == MARK:
                value = mark
            else:
                kept.append(pair)
        if value is None:
            return query, None  # the name only inside another parameter's value
        return "&".join(kept), value

    def issued_at(self, value: str) -> int | None:
        """When this site made the mark ``value``; None for anything it did not make."""
        match = _MARK_VALUE.fullmatch(value)
        if match is None:
            return None
        issued, tag = match.groups()
        if not any(hmac.compare_digest(self._tag(key, issued), tag) for key in self._keys):
            return None
        return int(issued, 16)

    def honours(self, value: str | None, *, now: float, ttl: int) -> bool:
        """True for a mark this site made at most ``ttl`` seconds ago (and not later than
        ``now`` by more than the clock leeway)."""
        issued = None if value is None else self.issued_at(value)
        return issued is not None and now - ttl <= issued <= now + CLOCK_LEEWAY

    def is_unexpired(self, value: str | None, *, now: float, ttl: int) -> bool:
        """True for a mark this site made that has not expired by ``now``, one from later
        than ``now`` too (which :meth:`honours` refuses: a clock that disagrees)."""
        issued = None if value is None else self.issued_at(value)
        return issued is not None and now - ttl <= issued

    def _tag(self, key: bytes, issued: str) -> str:
        mac = blake2b(f"guest\n{self._origin}\n{issued}".encode("ascii"), key=key,
                      digest_size=16).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii")[:_TAG]
