"""A remote app's half of the hand-off, without I/O: :class:`RemoteSide`.

For a protected path and a browser with no signed-in shared session, a
**browser navigation** gets **302** to ``idp_url?callback=...&state=S`` and a
short-lived, signed, HttpOnly state cookie holding ``S`` and the page to
return to; every other request (POST, ``fetch``/XHR, API clients) gets **401**
with a small JSON body naming the login URL (a cross-origin redirect would only
break it).

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
redirect, so there is no loop. A browser holds at most four state cookies,
however many logins a page forces it to start (:mod:`sessionshare.core.state`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..crypto import SyncKey, canonical_origin, open_token
from ..errors import ConfigurationError, TokenRejected
from . import tickets
from .claims import CLAIM_TTL
from .configure import CheckedOptions
from .cookies import CookieSpec
from .guest import GuestMarks, Relays
from .option_checks import prefix_problem
from .options import Protect as Protect
from .options import RemoteSideOptions
from .reply import Reply
from .request import Request, safe_return_path
from .session import Session, state_of
from .side import Outcome, PassThrough, Side
from .state import FoundState, StateSlots
from .steps import Steps
from .stepup import is_fresh
from .storeid import was_lost_here

__all__ = ["MAX_RETURN_PATH", "Protect", "RemoteSide", "path_prefixes"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("sessionshare")

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
        self, options: CheckedOptions | None = None, /, **given: Unpack[RemoteSideOptions]
    ) -> None:
        super().__init__(options, **given)
        options = self.options
        self.idp_url: str = options.idp_url
        self.issuer = canonical_origin(self.idp_url, setting="idp_url")
        callback_path: str = options.callback_path
        state_cookie_name: str = options.state_cookie_name
        # The Host headers that name app_url's host: read only to explain a failure.
        own = urlsplit(self.origin)
        self._own_hosts = {own.netloc}
        if own.port is None:
            self._own_hosts.add(f"{own.netloc}:{443 if own.scheme == 'https' else 80}")
        self.callback_path = callback_path
        self.callback_url = self.origin + callback_path
        self.token_leeway: float = options.token_leeway
        self.state_ttl = int(options.state_ttl)
        self._login_prefix = f"{self.idp_url}?callback={quote(self.callback_url, safe='')}&state="
        # The state cookie ages by this side's clock, as tokens do (itsdangerous
        # would read the wall clock).
        self.state_signer = self.key.serializer(
            "state-cookie", salt="sessionshare.state", clock=self.clock)
        self.states = StateSlots(
            state_cookie_name, path=callback_path, secure=self.lifecycle.cookie.secure,
            ttl=self.state_ttl, signer=self.state_signer,
        )
        self.state_cookie = self.states.cookie
        # "This browser's hand-off was started again after a lost ticket": once, no loop.
        self.retried_cookie = CookieSpec(
            state_cookie_name + "_retried", secure=self.lifecycle.cookie.secure,
            path=callback_path, max_age=self.state_ttl,
        )
        self._retried = self.retried_cookie.pattern("1")
        self._protects = _protect_predicate(options.protect)
        self._required_age = _required_age(options.max_auth_age)
        self._passive = _passive_predicate(options.passive)
        # The way back for a browser that keeps no cookies here (core/guest.py).
        self.relays = Relays(self.key)
        self.guest_marks = GuestMarks(self.key, origin=self.origin)
        self.passive_ttl = int(options.passive_ttl)
        # "Checked, not signed in": no passive bounce again for passive_ttl seconds.
        self.checked_cookie = self._cookie_beside("_checked", max_age=self.passive_ttl)
        self._checked = self.checked_cookie.pattern("1")

    # -- on the way in -----------------------------------------------------
    # (On the way out a remote only persists: Side.on_response and Side.on_close.)
    def _route(self, request: Request, session: Session) -> Outcome:
        """The library's own answer to ``request``, or :class:`PassThrough` to the app."""
        if request.path == self.callback_path:
            return self._callback(request, session)
        if request.path == self.logout_path:
            return self.logout(request, session)
        if not self._protects(request):
            if self._passive(request):
                query, mark = self.guest_marks.split(request.query)
                if mark is None:
                    return self._passive_page(request, session, marked=False)
                # Sent back to its page by a passive check it came back from without
                # cookies: the app sees the page's own query, never the mark.
                return _handing_on(self._passive_page(request, session, marked=(
                    not request.cookies.strip() and self.guest_marks.honours(
                        mark, now=self.clock(), ttl=self.passive_ttl))), query)
            return self._read_user(session)  # a public path: no read for it
        return self._protected(request, session)

    def _passive_page(self, request: Request, session: Session, *, marked: bool) -> Outcome:
        if not marked and self._may_check(request):
            return self._passive_check(request, session)
        if state_of(session).unread_id is not None:
            # Checked lately, but this browser holds a session here (signed in since,
            # say): a passive page knows its user under either shell.
            return self._loaded_user(session)
        return self._read_user(session)

    def _websocket(self, request: Request, session: Session) -> Outcome:
        """A websocket on a protected path is served only as a page would be: signed in
        and joined; else the 401 a script gets (never a redirect, never anonymous)."""
        if not self._protects(request):
            return self._loaded_user(session)
        return self._protected(request, session)

    def _foreign_websocket(self, request: Request) -> Reply | PassThrough:
        """From another origin: refused on a protected path, anonymous elsewhere."""
        if not self._protects(request):
            return super()._foreign_websocket(request)
        self._websocket_event(logging.WARNING, "websocket_rejected", request)
        return Reply.error(403, "cross_origin", "Open this websocket from this site's pages.",
                           as_json=True)

    def _loaded_user(self, session: Session) -> Steps[PassThrough]:
        """The user to publish, once the session is read (one round trip with a cookie)."""
        yield from self.lifecycle.load(session)
        return self._read_user(session)

    def _read_user(self, session: Session) -> PassThrough:
        """The user to publish on a public path: none until the session was read (the
        WSGI shell reads lazily, when the app looks); once read (the ASGI shell reads a
        cookie's session up front), the one a protected path would serve."""
        state = state_of(session)
        if not state.loaded:
            return _ANONYMOUS
        user = self.user_of(session)
        if user is None or not state.has_joined(self.origin):
            return _ANONYMOUS
        return PassThrough(user, True)

    # -- the passive check (core/passive.py) --------------------------------
    def _may_check(self, request: Request) -> bool:
        """Only a top-level GET navigation a user is looking at, not checked lately, by a
        client that will come back with the state cookie: one with no cookie of this site
        and no fetch metadata (a crawler, curl, an old browser's first visit) would come
        back without it and be refused on every page, so it is served as a guest.
        """
        cookies = request.cookies.strip()
        return (
            request.method == "GET" and request.is_navigation and not request.is_prefetch
            and (request.fetch_mode is not None or bool(cookies))
            and not (cookies and self._checked.search(cookies))
        )

    def _passive_check(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)
        known = self._read_user(session)
        if known.user is not None:
            return known  # known already: the public page may greet them
        return self._send_to_idp(request, passive=True)

    def _protected(self, request: Request, session: Session) -> Outcome:
        if state_of(session).direct:
            # A thread shell's session reads itself at the first look (the same one round
            # trip): the answer is found with no steps to drive.
            return self._admitted(request, session)
        return self._protected_steps(request, session)

    def _protected_steps(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)
        return self._admitted(request, session)

    def _admitted(self, request: Request, session: Session) -> Reply | PassThrough:
        """A protected path's answer for ``session`` (read at the first look if need be)."""
        user = self.user_of(session)
        if user is None or not state_of(session).has_joined(self.origin):
            # Signed in, but this origin never joined through an authorized hand-off (or
            # the IdP withdrew it): the IdP's authorize hook decides again, so a cookie
            # copied from another app, or a right taken away, serves nothing here.
            return self._send_to_idp(request)
        if self._required_age is None:
            return PassThrough(user, True)  # no step-up configured: any sign-in will do
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
            again = max_age is not None
            return Reply.error(
                401, "reauthentication_required" if again else "not_authenticated",
                "Sign in again first." if again else "Sign in first.",
                as_json=True, extra={"login_url": self.idp_url},
            )
        self._warn_if_elsewhere(request)
        # The state carries what the IdP and the callback must know (core/loginstate.py).
        expires = int(self.clock()) + self.state_ttl if self.state_ttl > CLAIM_TTL else None
        state = self.login_states.make(max_age=max_age, expires=expires, passive=passive)
        back = request.full_path
        back = safe_return_path(back if len(back) <= MAX_RETURN_PATH else "/")
        mount = request.mount
        path, _, query = back.partition("?")
        query = self.guest_marks.split(query)[0]  # a stale mark, of a link or a bookmark
        headers = self.states.start(request.cookies, state, f"{path}?{query}" if query else path,
                                    mount=mount)
        self.events.emit(logging.INFO, "login_redirect",
                         {"issuer": self.issuer, "passive": passive},
                         "login_redirect issuer=%s%s", self.issuer, " passive=1" if passive else "")
        location = self._login_url(mount) + state
        if passive:
            location += "&passive=1"
            if not request.cookies.strip():
                # This browser may keep no cookie here, and come back without its state
                # cookie: the page (marks and all) travels along, sealed (core/guest.py).
                location += "&relay=" + self.relays.seal(back, state=state)
        return Reply.redirect(location, status=302, headers=headers)

    def _login_url(self, mount: str) -> str:
        """The IdP's login URL up to the state, for an app mounted at ``mount``: the
        callback is under the mount point, or behind a proxy that strips a prefix it would
        never reach this app."""
        if not mount:
            return self._login_prefix
        callback = self.origin + mount + self.callback_path
        return f"{self.idp_url}?callback={quote(callback, safe='')}&state="

    def _warn_if_elsewhere(self, request: Request) -> None:
        """A login started at another host than app_url cannot end well (the state cookie
        stays at the host asked): say so now. The Host header is the client's text: only
        quoted here (capped, repr'd), never used for a URL."""
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
            if not request.cookies.strip():
                # A client that keeps no cookie here came back from the bounce: back to
                # its page as a guest, marked so that it is not bounced again.
                return self._guest_without_cookies(request, state)
            back, spent, _ = self.states.find(request.cookies, state)  # this browser's only
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
        headers = [("Set-Cookie", self.checked_cookie.set("1")),
                   *self.states.clear(spent, mount=request.mount)]
        return Reply.redirect(back, headers=headers)

    def _guest_without_cookies(self, request: Request, state: str) -> Reply:
        """A passive check's answer (or token) for ``state``, back with no cookie of this
        site: to the page it asked for, as a guest, by the relay (core/guest.py).

        A relay that does not open for ``state`` (forged, altered, another check's)
        raises :class:`TokenRejected`. Without a relay, or when the page's own mark
        should have spared it the bounce (clocks apart), a notice with a link: a
        redirect would only bounce it again.
        """
        relays = (request.params or {}).get("relay")
        back = None
        if relays is not None:
            if len(relays) != 1:
                raise TokenRejected("malformed", "at most one relay")
            # Checked again once opened, as any return path: not even a holder of the
            # sync key makes it another site.
            back = safe_return_path(self.relays.open(relays[0], state=state), default="")
            if back:
                mark = self.guest_marks.split(back.partition("?")[2])[1]
                if self.guest_marks.is_unexpired(mark, now=self.clock(), ttl=self.passive_ttl):
                    # Bounced with a mark that has not expired here: the clock that bounced
                    # it disagrees with this one, and would bounce it again.
                    back = ""
        self.events.emit(logging.INFO, "passive_checked", {"issuer": self.issuer},
                         "passive_checked issuer=%s signed_in=no cookies=no%s", self.issuer,
                         " returned=yes" if back else "")
        if back:
            return Reply.redirect(self.guest_marks.add(back, now=self.clock()))
        return Reply.notice(
            "Not signed in",
            "You are not signed in here. This browser does not keep this site's cookies, "
            "so it cannot be signed in or remember this check.",
            # The mount point, encoded and checked: it can hold the client's text (a
            # Starlette Mount("/{tenant}"), a forwarded SCRIPT_NAME), and "//evil.example"
            # or "/\evil.example" in a link is another site.
            link=safe_return_path(request.mount + "/"), as_json=request.wants_json,
        )

    def _token_callback(self, request: Request, session: Session) -> Steps[Reply]:
        try:
            redeemed = yield from self._redeem(request, session)
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
        if isinstance(redeemed, Reply):
            return redeemed  # a lost ticket: the hand-off starts again (or a 503)
        sid, back, spent = redeemed
        self.events.emit(logging.INFO, "ticket_redeemed", {"issuer": self.issuer},
                         "ticket_redeemed issuer=%s", self.issuer)
        # This app's own cookie value: worthless if copied to any other app.
        # A remembered sign-in's cookie lasts as long as its lifetime, counted from it.
        started = max(session.created or self.clock(), session.authenticated_at or 0)
        headers = [("Set-Cookie", self.lifecycle.set_cookie(sid, int(started)))]
        headers += self.states.clear(spent, mount=request.mount)
        if self._retried.search(request.cookies):
            headers.append(("Set-Cookie", self.retried_cookie.clear(mount=request.mount)))
        return Reply.redirect(back, headers=headers)

    def _redeem(
        self, request: Request, session: Session
    ) -> Steps[tuple[str, str, list[str]] | Reply]:
        """Run every check of the callback.

        The shared session id, the return path, and the state slots to clear; or the
        answer to a ticket the store lost, or to a passive check's token in a browser
        that keeps no cookies here.
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
            found = self.states.find(request.cookies, claims.state)
        except TokenRejected:
            # A genuine token in a browser that did not start its login may have been
            # pushed there (a login link carrying someone else's state) and now sits in
            # logs and history: spend the ticket, so the holder of that state cannot.
            yield from tickets.burn(prefix, claims.ticket, claims.state)
            if not request.cookies.strip() and self.login_states.read(claims.state).passive:
                # A passive check by a browser that keeps no cookie here: a guest, as for
                # nobody signed in, not a 403 on every visit (only this site's own tagged
                # states say "passive"; the ticket is spent all the same).
                return self._guest_without_cookies(request, claims.state)
            raise
        # Taken last, atomically and once: a forged, foreign or expired token never
        # reaches the store, so it cannot burn the ticket of the browser it came from.
        # Named after this browser's state cookie: its retry of a lost answer is the same
        # redemption (core/tickets.py); nobody else's is.
        nonce = tickets.redemption_nonce(claims.ticket, found.cookie)
        sid = yield from tickets.redeem(prefix, claims.ticket, claims.state, nonce=nonce)
        if sid == tickets.NOT_HELD:
            return (yield from self._ticket_not_held(request, claims.ticket, found))
        if sid is None:
            raise TokenRejected("replayed", "ticket already used or expired")
        # The same redemption joining again completed once already: a replay (a copy of
        # the token and of this state cookie), not a retry. Remembered while this token
        # could come back: its lifetime, the leeway either side, a minute more.
        joined = yield from self.lifecycle.join(
            session, sid, handoff=nonce,
            remember_for=int(self.token_ttl + 2 * self.token_leeway) + 60,
        )
        if joined == "again":
            raise TokenRejected("replayed", "this hand-off was completed already")
        if joined == "gone":
            raise TokenRejected("session_gone", "the session ended before the hand-off")
        if self.user_of(session) is None:
            raise TokenRejected("not_authenticated", "the session is not signed in")
        required = self.login_states.max_age_of(claims.state)
        if required is not None and not is_fresh(session.authenticated_at, required,
                                                 self.clock()):
            # This login asked for a recent sign-in and the IdP handed off an older one
            # (an IdP that ignored the requirement): refuse, rather than ask again (a loop).
            raise TokenRejected("reauthentication_required", "the sign-in is not recent")
        return sid, found.back, found.spent

    def _ticket_not_held(
        self, request: Request, ticket: bytes, found: FoundState
    ) -> Steps[Reply]:
        """A valid token whose ticket this store does not hold: in another store (a
        misconfiguration), or lost -- then the hand-off starts again, once
        (core/storeid.py)."""
        if not (yield from was_lost_here(self.lifecycle.key_prefix, tickets.store_of(ticket))):
            raise TokenRejected("unknown_ticket", "the IdP and this site use different stores")
        if self._retried.search(request.cookies):
            # Lost again right after a restart: the store is dropping data. No loop.
            self.events.emit(
                logging.ERROR, "token_rejected", {"reason": "ticket_lost", "issuer": self.issuer},
                "token_rejected reason=ticket_lost issuer=%s hint=%r", self.issuer,
                "the session store lost the hand-off's ticket twice in a row: check its "
                "replication, persistence and maxmemory-policy",
            )
            return Reply.error(
                503, "ticket_lost",
                "The session store lost your sign-in twice. Please go back and try again "
                "in a moment.",
                as_json=request.wants_json,
                headers=self.states.clear(found.spent, mount=request.mount),
            )
        self.events.emit(
            logging.WARNING, "handoff_restarted", {"reason": "ticket_lost", "issuer": self.issuer},
            "handoff_restarted reason=ticket_lost issuer=%s hint=%r", self.issuer,
            "the session store no longer held the ticket (a failover, a restart or an "
            "eviction); the browser starts the sign-in again",
        )
        headers = [("Set-Cookie", self.retried_cookie.set("1", mount=request.mount)),
                   *self.states.clear(found.spent, mount=request.mount)]
        return Reply.redirect(found.back, headers=headers)


def _handing_on(outcome: Outcome, query: str) -> Outcome:
    """``outcome``, whose pass-through hands the app ``query`` as the query string."""
    if isinstance(outcome, Reply):
        return outcome
    if isinstance(outcome, PassThrough):
        return PassThrough(outcome.user, outcome.signed_in, outcome.headers,
                           no_session=outcome.no_session, browser=outcome.browser,
                           signed_in_here=outcome.signed_in_here, query=query)

    def steps() -> Steps[Reply | PassThrough]:
        return _handing_on((yield from outcome), query)  # type: ignore[return-value]

    return steps()


def _passive_predicate(passive: bool | Sequence[str]) -> Callable[[Request], bool]:
    if isinstance(passive, bool):
        return lambda request: passive
    under = path_prefixes(passive)
    return lambda request: under(request.path)


def _required_age(
    max_auth_age: int | Mapping[str, int] | None,
) -> Callable[[str], int | None] | None:
    """The step-up age a path requires (None: any sign-in will do); None for no step-up
    anywhere (no call per request)."""
    if max_auth_age is None:
        return None
    if not isinstance(max_auth_age, Mapping):
        age = int(max_auth_age)
        return lambda path: age
    # The longest prefix wins: each is tried alone, longest first.
    by_length = sorted(((path_prefixes([prefix]), int(age), len(prefix.rstrip("/")))
                        for prefix, age in max_auth_age.items()), key=lambda item: -item[2])

    def required(path: str) -> int | None:
        for spelling in (path, normalized_path(path)):
            for under, age, _ in by_length:
                if under(spelling):
                    return age
        return None

    return required


def _protect_predicate(protect: Protect) -> Callable[[Request], bool]:
    if isinstance(protect, bool):
        return lambda request: protect
    if callable(protect):
        predicate = protect
        return lambda request: bool(predicate(request.native))
    under = path_prefixes(protect)

    def protects(request: Request) -> bool:
        path = request.path
        # Frameworks route "//orders" (werkzeug) or "/./orders" to the /orders view:
        # a spelling that reaches a protected page is protected too.
        return under(path) or under(normalized_path(path))

    return protects


def path_prefixes(prefixes: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether a path is at or below one of ``prefixes``, in whole segments.

    ``/shop`` (or ``/shop/``) matches ``/shop``, ``/shop/`` and ``/shop/x``, never
    ``/shopping``: a prefix means what a user writes it for. The same segment with
    a suffix after ``.`` or ``;`` matches too (``/shop.json``, ``/shop;v=1``): some
    routers send a format suffix or path parameters to the very view (Django REST
    framework's ``format_suffix_patterns``, servlet containers), so failing closed
    there costs a sign-in at worst. ``/`` matches every path, and the empty one
    (the mount point itself).

    The path is the one servers hand over (WSGI ``PATH_INFO``: decoded, its UTF-8
    bytes read as latin-1), so a prefix is written decoded (``/konto-ü``, never
    ``/konto-%C3%BC``, which raises :class:`ConfigurationError`) and compared in
    that form. A final newline is ignored: Starlette and Pyramid match a route with
    ``^/admin$``, whose ``$`` also matches before one, so ``/admin%0A`` is their
    ``/admin`` view.
    """
    bases: set[str] = set()
    for prefix in prefixes:
        problem = prefix_problem(prefix)
        if problem is not None:
            raise ConfigurationError(problem)
        base = prefix.rstrip("/")  # "/shop/" -> "/shop", "/" -> ""
        # Both spellings: as a server hands a UTF-8 path over, and as written (the bytes
        # of a latin-1 path): matching one more path only ever asks for a sign-in.
        bases.update({base, base.encode("utf-8", "surrogateescape").decode("latin-1")})
    below = tuple(base + mark for base in bases for mark in _SEGMENT_ENDS)

    def under(path: str) -> bool:
        if path.endswith("\n"):
            path = path[:-1]  # "/admin\n" is routed as /admin by "$"-anchored routes
        return path in bases or path.startswith(below)

    return under


#: What may follow a prefix for a path to be that prefix's segment or below it.
_SEGMENT_ENDS = ("/", ".", ";")


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
