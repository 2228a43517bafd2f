"""A remote app's half of the hand-off, without I/O: :class:`RemoteSide`.

For a protected path and a browser with no signed-in shared session:

- a **browser navigation** (``Sec-Fetch-Mode: navigate``, or an ``Accept``
  naming ``text/html``) gets **302** to ``idp_url?callback=...&state=S`` and a
  short-lived, signed, HttpOnly state cookie holding ``S`` and the page to
  return to, in one of a few slots (below);
- every other request (POST, ``fetch``/XHR, API clients) gets **401** with a
  small JSON body naming the login URL: a cross-origin redirect would only
  break it.

The IdP sends the browser back to ``callback_path?token=T``. The token is
opened and *every* check must pass -- seal and key, version, issuer,
audience (this app), age, state equal to this browser's state cookie
(stops login CSRF), the ticket redeemed atomically and once (stops replay),
the session alive and signed in. The session records that this origin joined
it (in the same store command that reads it), the session cookie is set to
this app's own value for the shared session, and the browser gets **303** to
the saved page, so the token leaves the address bar.

A protected path is served only to a signed-in session this origin has
joined: a session it has not (or one the IdP withdrew it from, see
:meth:`~sessionshare.core.session.Session.withdraw`) goes through the
hand-off again, where the IdP's ``authorize`` hook decides anew.

Any failure of the callback is a **403** with a reason code and never a
redirect, so there is no loop.

A browser holds at most four state cookies, reused oldest first, however many
logins a page forces it to start (a popup navigated again and again made
the callback's ``Cookie`` header too large to serve): see
:mod:`sessionshare.core.state`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from itsdangerous import TimestampSigner

from ..crypto import SyncKey, canonical_origin, open_token
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..errors import ConfigurationError, TokenRejected
from . import tickets
from .cookies import CookieSpec
from .passive import PassiveAnswers
from .reply import Reply
from .request import Request, safe_return_path
from .session import Session
from .side import Outcome, PassThrough, Side
from .state import StateSlots
from .steps import Steps
from .stepup import StepUp, is_fresh
from .tickets import CLOCK_LEEWAY

__all__ = ["MAX_RETURN_PATH", "Protect", "RemoteSide"]

log = logging.getLogger("sessionshare")

#: ``True`` (every path), ``False``, path prefixes, or a predicate on the server
#: interface's own request (the WSGI environ).
Protect = bool | Sequence[str] | Callable[[Any], bool]
MAX_RETURN_PATH = 512
#: Refusals that no retry can fix: what the operator must change, for the log and the page.
_MISCONFIGURED = {
    "unknown_ticket": "the IdP and this site must use the same session store: "
                      "set SESSIONSHARE_STORE_URL to the same Redis on both",
    "unknown_key": "the IdP and this site must hold the same sync key: set the same "
                   "SESSIONSHARE_SYNC_KEY on both; compare `python -m sessionshare "
                   "fingerprint` on each",
    # The IdP minted a token only for a session signed in under *its* user_key, so a
    # live, signed-out session here is most likely another user_key (it could also be
    # an IdP app that signed the user out within the token's few seconds).
    "not_authenticated": "the IdP and this site must use the same user_key: set "
                         "SESSIONSHARE_USER_KEY to the same value on both",
}
_ANONYMOUS = PassThrough()


def _rejection_facts(exc: TokenRejected, key: SyncKey, user_key: str) -> str:
    """The public facts a misconfiguration's log line needs: both key fingerprints, or
    the session key this site reads the user from."""
    if exc.key_fingerprint is not None:
        return (f" token_key_fingerprint={exc.key_fingerprint}"
                f" app_key_fingerprints={','.join(key.fingerprints)}")
    if exc.reason == "not_authenticated":
        return f" user_key={user_key[:100]!r}"
    return ""


class RemoteSide(Side):
    """Adopts the IdP's shared session for this app, through a one-time token."""

    role = "remote"

    def __init__(
        self,
        *,
        idp_url: str,
        callback_path: str = DEFAULT_CALLBACK_PATH,
        protect: Protect = True,
        passive: bool | Sequence[str] = False,
        passive_ttl: int = 5 * 60,
        max_auth_age: int | Mapping[str, int] | None = None,
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
        # The Host headers that name app_url's host: read only to explain a failure.
        own = urlsplit(self.origin)
        self._own_hosts = {own.netloc}
        if own.port is None:
            self._own_hosts.add(f"{own.netloc}:{443 if own.scheme == 'https' else 80}")
        self.callback_path = callback_path
        self.callback_url = self.origin + callback_path
        self.token_leeway = token_leeway
        self.state_ttl = int(state_ttl)
        self._login_prefix = f"{idp_url}?callback={quote(self.callback_url, safe='')}&state="
        self.state_signer = self.key.serializer("state-cookie", salt="sessionshare.state")
        # The state cookie ages by this side's clock, as tokens do (itsdangerous
        # would read the wall clock).
        self.state_signer.signer = _clocked_signer(self.clock)
        self.states = StateSlots(
            state_cookie_name, path=callback_path, secure=self.lifecycle.cookie.secure,
            ttl=self.state_ttl, signer=self.state_signer,
        )
        self.state_cookie = self.states.cookie
        self._protects = _protect_predicate(protect)
        self.step_up = StepUp(self.key)
        self._required_age = _required_age(max_auth_age)
        self._passive = _passive_predicate(passive)
        self.passive_answers = PassiveAnswers(self.key)
        session_cookie = self.lifecycle.cookie
        # "Checked, not signed in": no passive bounce again for passive_ttl seconds.
        self.checked_cookie = CookieSpec(
            session_cookie.name + "_checked", secure=session_cookie.secure,
            domain=self.cookie_domain, max_age=int(passive_ttl),
        )
        self._checked = self.checked_cookie.pattern("1")

    # -- on the way in -----------------------------------------------------
    def on_request(self, request: Request, session: Session) -> Outcome:
        """The library's own answer to ``request``, or :class:`PassThrough` to the app."""
        if request.path == self.callback_path:
            return self._callback(request, session)
        if request.path == self.logout_path:
            return self.logout(request, session)
        if not self._protects(request):
            if self._passive(request):
                if self._may_check(request):
                    return self._passive_check(request, session)
                if session.unread_id is not None:
                    # Checked lately, but this browser holds a session here (signed in
                    # since, say): a passive page knows its user under either shell.
                    return self._loaded_user(session)
            return self._read_user(session)  # a public path: no read for it
        return self._protected(request, session)

    def on_websocket(self, request: Request, session: Session) -> Outcome:
        """A websocket on a protected path is served only as a page would be: signed in
        and joined; else the 401 a script gets (never a redirect, never anonymous)."""
        if not self._protects(request):
            return self._loaded_user(session)
        return self._protected(request, session)

    def _loaded_user(self, session: Session) -> Steps[PassThrough]:
        """The user to publish, once the session is read (one round trip with a cookie)."""
        yield from self.lifecycle.load(session)
        return self._read_user(session)

    def _read_user(self, session: Session) -> PassThrough:
        """The user to publish on a public path: none until the session was read (the
        WSGI shell reads lazily, when the app looks); once read (the ASGI shell reads a
        cookie's session up front), the one a protected path would serve."""
        if not session.loaded:
            return _ANONYMOUS
        user = self.user_of(session)
        if user is None or not session.has_joined(self.origin):
            return _ANONYMOUS
        return PassThrough(user, True)

    # -- the passive check (core/passive.py) --------------------------------
    def _may_check(self, request: Request) -> bool:
        """Only a top-level GET navigation a user is looking at, not checked lately."""
        return (
            request.method == "GET" and request.is_navigation and not request.is_prefetch
            and not (request.cookies and self._checked.search(request.cookies))
        )

    def _passive_check(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)
        known = self._read_user(session)
        if known.user is not None:
            return known  # known already: the public page may greet them
        return self._send_to_idp(request, passive=True)

    def _protected(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)
        user = self.user_of(session)
        if user is None or not session.has_joined(self.origin):
            # Signed in, but this origin never joined through an authorized hand-off (or
            # the IdP withdrew it): the IdP's authorize hook decides again (finding 1).
            return self._send_to_idp(request)
        required = self._required_age(request.path)
        if required is not None and not is_fresh(session.authenticated_at, required,
                                                 self.clock()):
            # Step-up: signed in too long ago for this path. The requirement travels
            # inside the state, so the IdP cannot be asked without it.
            return self._send_to_idp(request, max_age=required)
        return PassThrough(user, True)

    # -- step 2: off to the IdP ----------------------------------------------
    def _send_to_idp(
        self, request: Request, *, max_age: int | None = None, passive: bool = False
    ) -> Reply:
        if not request.is_navigation:
            self.events.emit(logging.DEBUG, "login_required", {"reason": "not_authenticated"},
                             "login_required reason=not_authenticated")
            # Always JSON: a script or API client cannot follow a cross-origin login anyway.
            if max_age is not None:
                return Reply.error(
                    401, "reauthentication_required", "Sign in again first.",
                    as_json=True, extra={"login_url": self.idp_url},
                )
            return Reply.error(
                401, "not_authenticated", "Sign in first.",
                as_json=True, extra={"login_url": self.idp_url},
            )
        self._warn_if_elsewhere(request)
        state = secrets.token_urlsafe(32) if max_age is None else self.step_up.state(max_age)
        back = request.full_path
        back = safe_return_path(back if len(back) <= MAX_RETURN_PATH else "/")
        headers = self.states.start(request.cookies, state, back)
        self.events.emit(logging.INFO, "login_redirect",
                         {"issuer": self.issuer, "passive": passive},
                         "login_redirect issuer=%s%s", self.issuer, " passive=1" if passive else "")
        location = self._login_prefix + state + ("&passive=1" if passive else "")
        return Reply.redirect(location, status=302, headers=headers)

    def _warn_if_elsewhere(self, request: Request) -> None:
        """A login started at another host than app_url cannot end well: say so now.

        The browser keeps the state cookie for the host it asked (``127.0.0.1:8001``)
        and comes back to app_url's (``shop.localhost:8001``), where it has none. The
        Host header is only quoted here (capped, repr'd: it is the client's text), never
        used for a URL.
        """
        host = request.host.strip().lower()
        if not host or host in self._own_hosts:
            return
        log.warning(
            "login_redirect_host_mismatch host=%r app_url=%s: this site was opened at "
            "another host than its app_url; the browser keeps the sign-in's state cookie "
            "for that host and comes back to app_url's, where the callback will refuse it "
            "(bad_state). Open the site at %s, or set app_url (SESSIONSHARE_APP_URL) to the "
            "address users open; behind a proxy that rewrites Host, pass the original on",
            host[:100], self.origin, self.origin,
        )

    def _hint(self, exc: TokenRejected, request: Request) -> tuple[str | None, str | None]:
        """What the log says to change, and the page's message (None: the usual one)."""
        hint = _MISCONFIGURED.get(exc.reason)
        if hint is not None:
            return hint, f"Signing in cannot work here: the sites are misconfigured ({hint})."
        if exc.reason in ("expired", "not_yet_valid"):
            # A slow browser can be late once; every sign-in late is a clock.
            return (f"{exc.detail}: if every sign-in fails so, the IdP's clock and this "
                    "site's disagree; keep both in sync (NTP)"), None
        if exc.reason == "bad_state" and not self.states.started_here(request.cookies):
            return ("no sign-in started in this browser at this app_url: was the site opened "
                    "at another address (127.0.0.1, localhost, another name)? Open it at its "
                    "app_url, or set SESSIONSHARE_APP_URL to the address users open (a "
                    "browser refusing cookies looks the same)"), (
                f"This browser started no sign-in at {self.origin}. If you opened this site "
                f"at another address, open it at {self.origin} and sign in again.")
        return None, None

    # -- step 5: back from the IdP with a token --------------------------------
    def _callback(self, request: Request, session: Session) -> Steps[Reply] | Reply:
        params = request.params
        if params is not None and "passive" in params and "token" not in params:
            return self._not_signed_in(request, params["passive"])
        return self._token_callback(request, session)

    def _not_signed_in(self, request: Request, answers: list[str]) -> Reply:
        """The IdP's sealed "not signed in" answer to a passive check: remember the check."""
        try:
            if request.method != "GET" or len(answers) != 1:
                raise TokenRejected("malformed", "exactly one passive answer, by GET")
            state = self.passive_answers.open(
                answers[0], now=self.clock(), ttl=self.token_ttl
            )
            back, spent = self.states.find(request.cookies, state)  # this browser's only
        except TokenRejected as exc:
            self.events.emit(logging.WARNING, "token_rejected",
                             {"reason": exc.reason, "passive": True},
                             "token_rejected reason=%s passive=1", exc.reason)
            return Reply.error(
                403, exc.reason, "This sign-in check is not valid. Please go back.",
                as_json=request.wants_json,
            )
        self.events.emit(logging.INFO, "passive_checked", {"issuer": self.issuer},
                         "passive_checked issuer=%s signed_in=no", self.issuer)
        headers = [("Set-Cookie", self.checked_cookie.set("1")), *self.states.clear(spent)]
        return Reply.redirect(back, headers=headers)

    def _token_callback(self, request: Request, session: Session) -> Steps[Reply]:
        try:
            sid, back, spent = yield from self._redeem(request, session)
        except TokenRejected as exc:
            hint, message = self._hint(exc, request)
            fields = {"reason": exc.reason, "issuer": self.issuer}
            if exc.key_fingerprint is not None:
                fields["token_key_fingerprint"] = exc.key_fingerprint
            facts = _rejection_facts(exc, self.key, self.user_key)
            if exc.reason == "bad_state" and message is not None:
                facts += f" app_url={self.origin}"
            self.events.emit(logging.WARNING, "token_rejected", fields,
                             "token_rejected reason=%s%s%s", exc.reason, facts,
                             f" hint={hint!r}" if hint else "")
            message = message or "This sign-in link is not valid. Please go back and try again."
            return Reply.error(403, exc.reason, message, as_json=request.wants_json)
        self.events.emit(logging.INFO, "ticket_redeemed", {"issuer": self.issuer},
                         "ticket_redeemed issuer=%s", self.issuer)
        # This app's own cookie value: worthless if copied to any other app (finding 1).
        # A remembered sign-in's cookie lasts as long as its lifetime, counted from it.
        started = max(session.created or self.clock(), session.authenticated_at or 0)
        headers = [("Set-Cookie", self.lifecycle.set_cookie(sid, int(started)))]
        headers += self.states.clear(spent)
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
            back, spent = self.states.find(request.cookies, claims.state)
        except TokenRejected:
            # A genuine token in a browser that did not start its login may have been
            # pushed there (a login link carrying someone else's state) and now sits in
            # logs and history: spend the ticket, so the holder of that state cannot.
            yield from tickets.burn(prefix, claims.ticket, claims.state)
            raise
        # Taken last, atomically and once: a forged, foreign or expired token never
        # reaches the store, so it cannot burn the ticket of the browser it came from.
        sid = yield from tickets.redeem(prefix, claims.ticket, claims.state)
        if sid == tickets.NOT_HELD:
            # A valid token whose ticket this store never held: the IdP wrote it into
            # another store. Retrying cannot help, so the answer must not say "retry".
            raise TokenRejected("unknown_ticket", "the IdP and this site use different stores")
        if sid is None:
            raise TokenRejected("replayed", "ticket already used or expired")
        if not (yield from self.lifecycle.join(session, sid)):
            raise TokenRejected("session_gone", "the session ended before the hand-off")
        if self.user_of(session) is None:
            raise TokenRejected("not_authenticated", "the session is not signed in")
        required = self.step_up.max_age_of(claims.state)
        if required is not None and not is_fresh(session.authenticated_at, required,
                                                 self.clock()):
            # This login asked for a recent sign-in and the IdP handed off an older one
            # (an IdP that ignored the requirement): refuse, rather than ask again (a loop).
            raise TokenRejected("reauthentication_required", "the sign-in is not recent")
        return sid, back, spent


def _clocked_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


def _passive_predicate(passive: bool | Sequence[str]) -> Callable[[Request], bool]:
    if passive is True:
        return lambda request: True
    if passive is False:
        return lambda request: False
    prefixes = tuple(passive)
    return lambda request: request.path.startswith(prefixes)


def _required_age(
    max_auth_age: int | Mapping[str, int] | None,
) -> Callable[[str], int | None]:
    """The step-up age a path requires (None: any sign-in will do)."""
    if max_auth_age is None:
        return lambda path: None
    if not isinstance(max_auth_age, Mapping):
        age = int(max_auth_age)
        return lambda path: age
    by_length = sorted(max_auth_age.items(), key=lambda item: -len(item[0]))

    def required(path: str) -> int | None:
        for prefix in (path, normalized_path(path)):
            for start, age in by_length:  # the longest prefix wins
                if prefix.startswith(start):
                    return int(age)
        return None

    return required


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
