"""A remote app's half of the hand-off, without I/O: :class:`RemoteSide`.

For a protected path and a browser with no signed-in shared session:

- a **browser navigation** (``Sec-Fetch-Mode: navigate``, or an ``Accept``
  naming ``text/html``) gets **302** to ``idp_url?callback=...&state=S`` and a
  short-lived, signed, HttpOnly state cookie holding ``S`` and the page to
  return to, in one of :data:`STATE_SLOTS` slots (below);
- every other request (POST, ``fetch``/XHR, API clients) gets **401** with a
  small JSON body naming the login URL: a cross-origin redirect would only
  break it.

The IdP sends the browser back to ``callback_path?token=T``. The token is
opened and *every* check must pass -- seal and key, version, issuer,
audience (this app), age, state equal to this browser's state cookie
(stops login CSRF), the ticket redeemed atomically and once (stops replay),
the session alive and signed in. Then the session cookie is set to the shared
session and the browser gets **303** to the saved page, so the token leaves
the address bar. Any failure is a **403** with a reason code and never a
redirect, so there is no loop.

**State slots.** Every login start needs a state cookie, and any page can start
one: an attacker's page that opens a popup and navigates it to a protected
page again and again made the remote set one cookie per start, each with its
own name. Fourteen starts (8.6 KB) were enough for the victim's next callback
to be refused by the server (431) before this code ever ran. So a browser
holds at most :data:`STATE_SLOTS` state cookies: their names are fixed
(``sessionshare_state-0`` ... ``-3``, Path = the callback, as before), and a
start writes the slot named by a small cursor cookie (``Path=/``, so the
protected page sees it; the state cookies stay scoped to the callback) and
moves the cursor on. The slots are reused round robin, the oldest attempt
first, so however many starts are forced the callback's ``Cookie`` header
holds at most four state cookies of at most :data:`MAX_STATE_COOKIE` bytes
each (about 3.3 KB in all), and the latest start -- the user's own -- always
has its slot. Several tabs signing in at once keep working, up to four: each
start takes the next slot, and the callback looks for its state in every
slot. A fifth start overwrites the oldest; that tab gets ``bad_state``. Two
starts the browser sends before either answer arrives (a restored session
reopening tabs) read the same cursor and share a slot: the later one wins.
A successful callback clears its own slot and every slot it saw that holds no
live login (expired, tampered, foreign); the other tabs' live attempts stay
so they can finish, and expire with ``state_ttl``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from itsdangerous import BadData, TimestampSigner

from ..crypto import canonical_origin, open_token
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..errors import ConfigurationError, TokenRejected
from . import tickets
from .cookies import CookieSpec
from .reply import Reply
from .request import Request, safe_return_path
from .session import Session
from .side import Outcome, PassThrough, Side
from .steps import Steps
from .tickets import CLOCK_LEEWAY

__all__ = ["MAX_RETURN_PATH", "MAX_STATE_COOKIE", "STATE_SLOTS", "Protect", "RemoteSide"]

log = logging.getLogger("sessionshare")

#: ``True`` (every path), ``False``, path prefixes, or a predicate on the server
#: interface's own request (the WSGI environ).
Protect = bool | Sequence[str] | Callable[[Any], bool]
MAX_RETURN_PATH = 512
#: How many logins one browser can have under way at once: one state cookie each.
STATE_SLOTS = 4
#: The longest state cookie value written; a longer one saves ``/`` as the page to
#: return to instead. Four slots of it keep the callback's ``Cookie`` header far
#: below the 8 KB that servers and proxies accept by default.
MAX_STATE_COOKIE = 800
_ANONYMOUS = PassThrough()
_STATE_VALUE = r"[A-Za-z0-9_.\-]{1,1500}"


class RemoteSide(Side):
    """Adopts the IdP's shared session for this app, through a one-time token."""

    role = "remote"

    def __init__(
        self,
        *,
        idp_url: str,
        callback_path: str = DEFAULT_CALLBACK_PATH,
        protect: Protect = True,
        state_ttl: int = 10 * 60,
        state_cookie_name: str = "sessionshare_state",
        token_leeway: float = CLOCK_LEEWAY,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.issuer = canonical_origin(idp_url, setting="idp_url")
        if "?" in idp_url or "#" in idp_url:
            raise ConfigurationError(f"idp_url {idp_url!r} must not have a query or fragment")
        if not callback_path.startswith("/") or callback_path == self.logout_path:
            raise ConfigurationError(
                f"callback_path {callback_path!r} must be its own absolute path"
            )
        if state_ttl <= 0:
            raise ConfigurationError("state_ttl must be a positive number of seconds")
        self.idp_url = idp_url
        self.callback_path = callback_path
        self.callback_url = self.origin + callback_path
        self.token_leeway = token_leeway
        self.state_ttl = int(state_ttl)
        self._login_prefix = f"{idp_url}?callback={quote(self.callback_url, safe='')}&state="
        self.state_cookie = CookieSpec(
            state_cookie_name, secure=self.lifecycle.cookie.secure, samesite="Lax",
            path=callback_path, max_age=self.state_ttl,
        )
        self._slot_names = tuple(self.state_cookie_name(slot) for slot in range(STATE_SLOTS))
        self._slot_patterns = tuple(
            self.state_cookie.pattern(_STATE_VALUE, name=name) for name in self._slot_names
        )
        # Path=/: the protected page that starts a login must read it, and the state
        # cookies themselves are only sent to the callback. Not a state cookie, so its
        # name does not start with theirs. It lives as long as the newest state: when it
        # is gone, so is every state it points past, and slot 0 is free.
        self.slot_cursor = CookieSpec(
            f"next-{state_cookie_name}", secure=self.lifecycle.cookie.secure, samesite="Lax",
            path="/", max_age=self.state_ttl,
        )
        self._cursor_pattern = self.slot_cursor.pattern("[0-9]")
        self.state_signer = self.key.serializer("state-cookie", salt="sessionshare.state")
        # The state cookie ages by this side's clock, as tokens do (itsdangerous
        # would read the wall clock).
        self.state_signer.signer = _clocked_signer(self.clock)
        self._protects = _protect_predicate(protect)

    # -- on the way in -----------------------------------------------------
    def on_request(self, request: Request, session: Session) -> Outcome:
        """The library's own answer to ``request``, or :class:`PassThrough` to the app."""
        if request.path == self.callback_path:
            return self._callback(request, session)
        if request.path == self.logout_path:
            return self.logout(request, session)
        if not self._protects(request):
            return _ANONYMOUS  # a public path: the session is read only if the app looks
        return self._protected(request, session)

    def _protected(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)
        user = self.user_of(session)
        if user is None:
            return self._send_to_idp(request)
        return PassThrough(user, True)

    # -- step 2: off to the IdP ----------------------------------------------
    def state_cookie_name(self, slot: int) -> str:
        """The name of the state cookie in ``slot`` (``0`` to ``STATE_SLOTS - 1``)."""
        return f"{self.state_cookie.name}-{slot}"

    def _send_to_idp(self, request: Request) -> Reply:
        if not request.is_navigation:
            # Always JSON: a script or API client cannot follow a cross-origin login anyway.
            return Reply.error(
                401, "not_authenticated", "Sign in first.",
                as_json=True, extra={"login_url": self.idp_url},
            )
        state = secrets.token_urlsafe(32)
        back = request.full_path
        back = safe_return_path(back if len(back) <= MAX_RETURN_PATH else "/")
        value = self.state_signer.dumps([state, back])
        if len(value) > MAX_STATE_COOKIE:
            # A path that compresses badly (or JSON-escapes) must not grow the slot past
            # its share of the callback's Cookie header: the bound is per cookie too.
            value = self.state_signer.dumps([state, "/"])
        slot = self._next_slot(request)
        headers = [
            # The cursor first: the state cookie is the answer's last Set-Cookie.
            ("Set-Cookie", self.slot_cursor.set(str((slot + 1) % STATE_SLOTS))),
            ("Set-Cookie", self.state_cookie.set(value, name=self._slot_names[slot])),
        ]
        log.info("login_redirect issuer=%s", self.issuer)
        return Reply.redirect(self._login_prefix + state, status=302, headers=headers)

    def _next_slot(self, request: Request) -> int:
        """The slot this login start writes: the one the cursor names, else 0."""
        # Unsigned on purpose: whoever can set it (this browser, or a sibling host tossing
        # cookies) can only choose which of this browser's slots is overwritten next --
        # never add one, so the bound holds whatever it says.
        match = self._cursor_pattern.search(request.cookies)
        if match is None:
            return 0
        slot = int(match.group(1) or match.group(2))
        return slot if slot < STATE_SLOTS else 0

    # -- step 5: back from the IdP with a token --------------------------------
    def _callback(self, request: Request, session: Session) -> Steps[Reply]:
        try:
            sid, back, spent = yield from self._redeem(request, session)
        except TokenRejected as exc:
            log.warning("token_rejected reason=%s", exc.reason)
            return Reply.error(
                403, exc.reason, "This sign-in link is not valid. Please go back and try again.",
                as_json=request.wants_json,
            )
        log.info("ticket_redeemed issuer=%s", self.issuer)
        headers = [("Set-Cookie", self.lifecycle.cookie.set(sid))]
        headers += [("Set-Cookie", self.state_cookie.clear(name=name)) for name in spent]
        return Reply.redirect(back, headers=headers)

    def _redeem(
        self, request: Request, session: Session
    ) -> Steps[tuple[str, str, list[str]]]:
        """Run every check of the callback.

        The shared session id, the return path, and the state slots to clear.
        """
        if request.method != "GET":
            raise TokenRejected("bad_method", "the token arrives by GET")
        params = request.params
        tokens = None if params is None else params.get("token")
        if tokens is None or len(tokens) != 1:
            raise TokenRejected("malformed", "exactly one token parameter expected")
        claims = open_token(
            self.key, tokens[0], audience=self.origin, issuer=self.issuer,
            ttl=self.token_ttl, now=self.clock(), leeway=self.token_leeway,
        )
        prefix = self.lifecycle.key_prefix
        try:
            back, spent = self._check_state(request, claims.state)
        except TokenRejected:
            # A genuine token in a browser that did not start its login may have been
            # pushed there (a login link carrying someone else's state) and now sits in
            # logs and history: spend the ticket, so the holder of that state cannot.
            yield from tickets.burn(prefix, claims.ticket)
            raise
        # Taken last, atomically and once: a forged, foreign or expired token never
        # reaches the store, so it cannot burn the ticket of the browser it came from.
        sid = yield from tickets.redeem(prefix, claims.ticket)
        if sid is None:
            raise TokenRejected("replayed", "ticket already used or expired")
        if not (yield from self.lifecycle.adopt(session, sid)):
            raise TokenRejected("session_gone", "the session ended before the hand-off")
        if self.user_of(session) is None:
            raise TokenRejected("not_authenticated", "the session is not signed in")
        return sid, back, spent

    def _check_state(self, request: Request, state: str) -> tuple[str, list[str]]:
        """The saved return path when this browser started the login with ``state``.

        With it, the slots a successful callback clears: the one holding ``state``
        and every one holding no live login (expired, tampered, signed by another
        key). Live slots of other tabs stay, so those tabs can finish too.
        """
        back: str | None = None
        spent: list[str] = []
        seen = valid = 0
        for name, pattern in zip(self._slot_names, self._slot_patterns, strict=True):
            # The first cookie of a name counts, as for the session cookie: a copy a
            # sibling host planted ahead of it cannot stand in for it.
            match = pattern.search(request.cookies)
            if match is None:
                continue
            seen += 1
            saved = self._open_state(match.group(1) or match.group(2))
            if saved is None:
                spent.append(name)
                continue
            valid += 1
            if back is None and hmac.compare_digest(saved[0].encode(), state.encode()):
                # Checked again: the signature proves who wrote it, not that it is safe.
                back = safe_return_path(saved[1])
                spent.append(name)
        if back is None:
            if not seen:
                raise TokenRejected("bad_state", "no login was started in this browser")
            if not valid:
                raise TokenRejected("bad_state", "state cookie invalid or expired")
            # Also the oldest of more tabs than there are slots: its slot was reused.
            raise TokenRejected("bad_state", "state does not match this browser's login")
        return back, spent

    def _open_state(self, value: str) -> list[str] | None:
        """``[state, return path]`` from a state cookie, or None if it is no live login."""
        try:
            saved = self.state_signer.loads(value, max_age=self.state_ttl)
        except BadData:
            return None
        if (
            not isinstance(saved, list)
            or len(saved) != 2
            or not all(isinstance(part, str) for part in saved)
        ):
            return None
        return saved


def _clocked_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


def _protect_predicate(protect: Protect) -> Callable[[Request], bool]:
    if protect is True:
        return lambda request: True
    if protect is False:
        return lambda request: False
    if callable(protect):
        predicate = protect
        return lambda request: bool(predicate(request.native))
    if isinstance(protect, str):
        raise ConfigurationError("protect takes a list of path prefixes, not one string")
    prefixes = tuple(protect)
    if not all(isinstance(p, str) and p.startswith("/") for p in prefixes):
        raise ConfigurationError("protect prefixes must be absolute paths such as '/account/'")

    def protects(request: Request) -> bool:
        path = request.path
        # Frameworks route "//orders" (werkzeug) or "/./orders" to the /orders view:
        # a spelling that reaches a protected page is protected too.
        return path.startswith(prefixes) or normalized_path(path).startswith(prefixes)

    return protects


def normalized_path(path: str) -> str:
    """``path`` with repeated slashes merged and ``.``/``..`` segments resolved."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    trailing = "/" if segments and path.endswith(("/", "/.", "/..")) else ""
    return "/" + "/".join(segments) + trailing
