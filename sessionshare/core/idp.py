"""The identity provider's half of the hand-off, without I/O: :class:`IdpSide`.

A remote app sends an unknown visitor to ``GET <login_path>?callback=<remote
callback URL>&state=<S>``. On that request (:meth:`IdpSide.on_request`):

1. ``callback`` is checked against the allow-list
   (:class:`~sessionshare.crypto.AllowList`). A callback that fails is never
   redirected to: the request goes on to the IdP's own login page with no
   pending hand-off and ``callback_rejected`` is logged (``strict=True``
   answers 400 instead);
2. if the user is already signed in, the optional ``authorize(session,
   remote_origin)`` hook is asked (False: 403), a single-use ticket is stored
   for the session, and the answer is **303** to ``callback?token=T``;
3. otherwise the hand-off is remembered in the session (a few at once, so
   several tabs work, and no usable state in it: :mod:`sessionshare.core.pending`)
   and the app shows its form.

On the way out (:meth:`IdpSide.on_response`), a sign-in **rotates the session
id** (no fixation) and, if a hand-off is pending, replaces the app's answer
with that 303. The login form should post back to the same URL (``<form
method=post>`` without ``action`` does) so that each tab returns to its own
page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ..crypto import AllowList, is_valid_state, seal_token
from ..errors import CallbackRejected
from . import tickets
from .claims import BrowserIds, StateClaims
from .configure import CheckedOptions
from .guest import MAX_RELAY, is_valid_relay
from .index import UserIndex, record_session
from .lifecycle import Headers
from .options import Authorize as Authorize
from .options import IdpSideOptions
from .pending import PendingHandoffs
from .reply import Reply
from .request import Request
from .session import Session, state_of
from .side import Closing, Outcome, PassThrough, Side
from .steps import Steps
from .stepup import is_fresh
from .storeid import Identity

__all__ = ["Authorize", "IdpSide"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("sessionshare")

_Refusal = Literal["state_taken", "not_authorized"]
#: Why the IdP refuses a hand-off with a 403, and what the user is told.
_REFUSALS: dict[_Refusal, str] = {
    # Another browser presented the login state first: no token for this one (login CSRF).
    "state_taken": "This sign-in link was opened in another browser first. Go back to the "
                   "site and sign in from there.",
    # The authorize hook keeps the user out of this remote: no redirect to it.
    "not_authorized": "Your account may not use this site.",
}


@dataclass(frozen=True)
class _Handoff:
    callback: str  # canonical, allow-listed
    origin: str  # the token's audience
    state: str
    passive: bool = False  # a passive check: never a login form (core/passive.py)
    # A passive check's sealed return path, handed back as it came (core/guest.py).
    relay: str | None = None


class IdpSide(Side):
    """Signs users in once and hands their session to allow-listed remote apps."""

    role = "idp"
    reads_app_headers = True

    def __init__(
        self, options: CheckedOptions | None = None, /, **given: Unpack[IdpSideOptions]
    ) -> None:
        super().__init__(options, **given)
        options = self.options
        self.max_sessions_per_user: int | None = options.max_sessions_per_user
        self.index = UserIndex(self.key, key_prefix=self.lifecycle.key_prefix,
                               user_key=self.user_key, events=self.events, clock=self.clock)
        hosts = options.known_remote_hosts
        self.allow_list = hosts if isinstance(hosts, AllowList) else AllowList(
            hosts, callback_path=options.callback_path)
        if self.origin.startswith("http:") and not self.allow_list.plain_http_entries:
            log.warning(
                "allow_list_https_only: this IdP (%s) is served over plain http but every "
                "known_remote_hosts entry allows only https callbacks, so a plain-http remote "
                "is refused (callback_rejected reason=scheme_not_allowed); list such a remote "
                "with its scheme, e.g. %s",
                self.origin, _http_example(self.allow_list.entries),
            )
        self.login_path: str = options.login_path
        self.authorize: Authorize | None = options.authorize
        self.strict: bool = options.strict
        self.pending = PendingHandoffs(self.key, clock=self.clock)
        self.claims = StateClaims(
            self.key, prefix=self.lifecycle.key_prefix, clock=self.clock,
            # Lax: it must come along on the top-level navigation from a remote.
            cookie=self._cookie_beside("_browser", samesite="Lax"),
        )
        #: The identity of the store tickets are written into, carried in each ticket.
        self.store_identity = Identity(self.lifecycle.key_prefix, clock=self.clock)

    # -- on the way in -----------------------------------------------------
    def _route(self, request: Request, session: Session) -> Outcome:
        """The library's own answer to ``request``, or :class:`PassThrough` to the app."""
        if request.path == self.logout_path:
            return self.logout(request, session)
        if request.query and request.path != self.login_path:
            self._warn_if_sent_elsewhere(request)
        return self._arrive(request, session)

    def _warn_if_sent_elsewhere(self, request: Request) -> None:
        """A remote whose ``idp_url`` names another path sends its sign-ins there.

        The IdP app answers that path as it likes (a 404, a 405, its home page) and
        nothing else would say why the hand-off never happens.
        """
        query = request.query
        if "callback=" not in query or "state=" not in query:
            return  # the cheap test first: most query strings are the app's own
        params = request.params
        if params is None or "callback" not in params or "state" not in params:
            return
        log.warning(
            "wrong_login_path path=%r: a remote's sign-in request (callback and state) came "
            "here, not to the login path %s; set that remote's idp_url (SESSIONSHARE_IDP_URL) "
            "to %s", request.path[:200], self.login_path,
            self.origin + request.root + self.login_path,
        )

    def _arrive(self, request: Request, session: Session) -> Steps[Reply | PassThrough]:
        yield from self.lifecycle.load(session)  # nothing to read without a cookie
        user = self.user_of(session)
        if request.path == self.login_path:
            try:
                handoff = self._requested_handoff(request)
            except CallbackRejected as exc:
                self._log_rejected(exc)
                explained = self._https_only_entry(exc)
                if self.strict or explained:
                    return Reply.error(
                        400, exc.reason,
                        explained or "This sign-in link is not valid for any known site.",
                        as_json=request.wants_json,
                    )
                handoff = None
            if handoff is not None:
                browser = self.claims.browser_of(request.cookies, handoff.state)
                if handoff.passive and request.method in ("GET", "HEAD"):
                    # A passive check: a token for a user signed in (recently enough, and
                    # allowed there), else at once the sealed "not signed in": no form.
                    if user is None or not self._fresh_enough(session, handoff) or (
                        self.authorize is not None
                        and not self.authorize(session, handoff.origin)
                    ):
                        return self._not_signed_in(handoff, list(browser.headers))
                    return (yield from self._complete(
                        request, session, handoff, browser, authorized=True
                    ))
                if user is not None and not self._fresh_enough(session, handoff):
                    # Step-up: the remote asked for a sign-in more recent than this one.
                    # The app asks for the password again; the hand-off waits for it.
                    state_of(session).reauthentication_required = True
                elif user is not None and request.method in ("GET", "HEAD"):
                    return (yield from self._complete(request, session, handoff, browser))
                headers = list(browser.headers)
                if request.method in ("GET", "HEAD"):
                    # The first browser to present a state holds it: a token is minted
                    # for it only there, whoever reads it from a URL (login CSRF).
                    if not (yield from self.claims.claim(handoff.state, browser.owners)):
                        return self._refused(request, handoff, headers, "state_taken")
                    # A browser that came without its cookie keeps a receipt of the id it
                    # claimed as: another tab's answer may replace that cookie.
                    headers += self.claims.receipt(handoff.state, browser)
                self.pending.remember(session, handoff.callback, handoff.origin, handoff.state)
                return PassThrough(user, signed_in=user is not None, headers=headers,
                                   browser=browser.minted)
        return PassThrough(user, signed_in=user is not None)

    def _requested_handoff(self, request: Request) -> _Handoff | None:
        params = request.params
        if params is None:
            raise CallbackRejected("malformed", "unparsable query string")
        callbacks, states = params.get("callback"), params.get("state")
        if callbacks is None and states is None:
            return None  # a plain visit to the login page
        if callbacks is None or states is None or len(callbacks) != 1 or len(states) != 1:
            raise CallbackRejected("malformed", "callback and state must each appear once")
        if not is_valid_state(states[0]):
            raise CallbackRejected("bad_state", "state must match [A-Za-z0-9_-]{16,128}")
        relays = params.get("relay")
        if relays is not None and (len(relays) != 1 or not is_valid_relay(relays[0])):
            # Handed back in the callback URL: held to an alphabet that can add nothing
            # to it (no "&", no "#"), and to a length.
            raise CallbackRejected("malformed", "relay must appear once and match "
                                   f"[A-Za-z0-9_-]{{16,{MAX_RELAY}}}")
        allowed = self.allow_list.check_callback(callbacks[0])
        passive = params.get("passive") == ["1"]
        return _Handoff(allowed.url, allowed.origin, states[0], passive=passive,
                        relay=relays[0] if relays is not None and passive else None)

    def _log_rejected(self, exc: CallbackRejected) -> None:
        """``callback_rejected``, naming the origin and what to list when it parsed."""
        if exc.origin is None:
            self.events.emit(logging.WARNING, "callback_rejected", {"reason": exc.reason},
                             "callback_rejected reason=%s", exc.reason)
            return
        # The origin is canonical (scheme, IDNA host, port: no quote, no newline); repr
        # and a cap all the same, since it came from the network.
        self.events.emit(
            logging.WARNING, "callback_rejected",
            {"reason": exc.reason, "origin": exc.origin[:200]},
            "callback_rejected reason=%s origin=%r hint=%r",
            exc.reason, exc.origin[:200], self._allow_list_hint(exc.reason, exc.origin[:200]),
        )

    def _https_only_entry(self, exc: CallbackRejected) -> str | None:
        """The page's explanation when an http callback meets a bare ``host:port`` entry
        of the same host and port (https only): a development server listed without its
        scheme, which the login form would not fix -- the user would sign in and stay
        here."""
        shown = exc.origin
        if exc.reason != "scheme_not_allowed" or not shown or not shown.startswith("http://"):
            return None
        shown = shown[:200]  # canonical (no quote, no newline), capped all the same
        origin = urlsplit(shown)
        for entry in self.allow_list.entries:
            if "://" in entry or entry.startswith("*."):
                continue
            listed = urlsplit("//" + entry)
            if (listed.port is not None and listed.hostname == origin.hostname
                    and listed.port == (origin.port or 80)):
                return (
                    f"{shown} asked to sign in here, but this sign-in service "
                    f"lists {entry!r} for https only. For a site served over plain http "
                    f"(local development), list it as {shown} in "
                    "SESSIONSHARE_KNOWN_REMOTE_HOSTS."
                )
        return None

    def _allow_list_hint(self, reason: str, origin: str) -> str:
        """What to change so that a well-formed callback from ``origin`` passes."""
        setting = "known_remote_hosts (SESSIONSHARE_KNOWN_REMOTE_HOSTS)"
        if reason == "path_not_allowed":
            return (
                f"callbacks must go to {self.allow_list.callback_path}: give the remote "
                "the same callback_path as the IdP, or list its full callback URL in " + setting
            )
        hint = f"list it as {origin} in {setting}"
        if reason == "host_not_allowed":
            return "if it is one of your sites, " + hint
        if origin.startswith("http:"):
            hint += " to allow plain http"
            if self.origin.startswith("https:"):
                hint += " (an https IdP also needs allow_insecure=True; better serve it over https)"
        return hint

    # -- on the way out: did the app sign the user in? ---------------------
    def _sign_in(self, session: Session, passed: PassThrough) -> tuple[Any, bool]:
        """The user now, and whether the app signed one in since ``passed`` was true (then
        the session is set to move to a new id and the sign-in is recorded)."""
        state = state_of(session)
        user = self.user_of(session) if state.loaded else None
        signed_in = user is not None
        # A different user signing in over a signed-in session is a sign-in too (session
        # fixation): an attacker signed in as bob plants that session id in the victim's
        # browser; without a new id, the victim's sign-in as alice makes the attacker's
        # browser alice. Django flushes the session in this case for the same reason.
        switched = passed.signed_in and signed_in and user != passed.user
        # Step-up: the app signed the user in again (assigned the user key, the same user
        # is fine) where a recent sign-in was asked for: a fresh sign-in, rotation included.
        again = state.reauthentication_required and state.was_assigned(self.user_key)
        signing_in = signed_in and (
            not passed.signed_in or state.invalidated or switched or again
        )
        if signing_in:
            # Session fixation: whatever id the browser had before sign-in dies here.
            session.regenerate()
            state.mark_authenticated(self.clock())
            self.events.emit(
                logging.INFO, "login",
                {"origin": self.origin, "user": (self.remote_user(user) or "")[:200]},
                "login origin=%s", self.origin,
            )
        return user, signing_in

    def on_save(
        self, request: Request, session: Session, passed: PassThrough, *, late: bool = False
    ) -> Steps[PassThrough]:
        """An early save applies the sign-in rules of the way out first: a sign-in made
        before it is never written under the id the browser had before (session
        fixation). After the headers, it is the late persist (:meth:`on_close`)."""
        if late or request.is_websocket:
            closing = self.on_close(session)
            if not isinstance(closing, list):
                yield from closing
            return passed
        state = state_of(session)
        user, signing_in = self._sign_in(session, passed)
        before = state.stored_id
        yield from self.lifecycle.save_now(session)
        yield from self._record(request, session, user, signing_in, before)
        # What the rest of the request is measured against: the session as saved.
        user = self.user_of(session) if state.loaded else None
        return PassThrough(user, signed_in=user is not None, headers=passed.headers,
                           no_session=passed.no_session, browser=passed.browser,
                           signed_in_here=passed.signed_in_here or signing_in)

    def _after_app(
        self, request: Request, session: Session, passed: PassThrough, app_headers: Headers
    ) -> Steps[Reply | Headers]:
        """A sign-in's 303 back to a remote waiting for it replaces the app's answer
        (carrying the app's own cookies)."""
        state = state_of(session)
        user, signing_in = self._sign_in(session, passed)
        signed_in = user is not None
        handoff = (self._take_pending(request, session, signing_in or passed.signed_in_here)
                   if signed_in else None)
        before = state.stored_id
        if handoff is not None and not self._fresh_enough(session, handoff):
            # Not signed in again (a wrong password, or the app did not ask): the hand-off
            # keeps waiting, and no token is minted for the old sign-in.
            self.pending.remember(session, handoff.callback, handoff.origin, handoff.state)
            handoff = None
        cookies = [*passed.headers, *(yield from self.lifecycle.persist(session))]
        yield from self._record(request, session, user, signing_in, before)
        if handoff is None or state.stored_id is None:
            return cookies
        if self.authorize is not None and not self.authorize(session, handoff.origin):
            return self._refused(request, handoff, cookies)
        # The app's own cookies (its CSRF or flash cookie, say) were meant for this
        # browser too: they ride on the 303 that replaces the app's answer.
        own_cookies = [(k, v) for k, v in app_headers if k.lower() == "set-cookie"]
        # The same browser this request claimed as, if it minted an id for it (its cookie
        # is among ``cookies`` already): minting a second one would be another browser.
        browser = self.claims.browser_of(request.cookies, handoff.state, minted=passed.browser)
        location = yield from self._mint(session, handoff, browser.owners)
        headers = [*own_cookies, *cookies, *browser.headers]
        if location is None:
            return self._refused(request, handoff, headers, "state_taken")
        return Reply.redirect(location, headers=headers)

    def _record(self, request: Request, session: Session, user: Any, signing_in: bool,
                before: str | None) -> Steps[None]:
        """The user's index of sessions (to list and end them): a sign-in, or a move."""
        if user is not None and (signing_in or state_of(session).stored_id != before):
            yield from record_session(
                self.index, session, self.remote_user(user) or "", ids=self.lifecycle.ids,
                user_agent=request.user_agent, moved_from=before,
                max_sessions=self.max_sessions_per_user if signing_in else None,
            )

    def on_close(self, session: Session) -> Closing:
        """:meth:`Side.on_close`, where no id can rotate: a sign-in made only now is not
        recorded at all, nor any late change with it -- kept under the pre-login id,
        which another browser may hold (a planted cookie), it would make that browser
        the user (session fixation)."""
        state = state_of(session)
        if (
            state.loaded
            and not state.invalidated  # a late logout still ends the session (no new one)
            and state.is_changed(self.user_key)
            and self.user_of(session) is not None
        ):
            self.events.emit(
                logging.WARNING, "late_change_refused", {"reason": "sign_in"},
                "late_change_refused reason=sign_in hint=%r",
                "the user was signed in after the response started; nothing was saved "
                "(set the user in the session before start_response)",
            )
            # Given up, so that a later moment of the same request (the WSGI body's close
            # after a websocket's answer, ASGI's after the app returned) refuses nothing twice.
            state.forget_changes()
            return []
        return super().on_close(session)

    def _take_pending(
        self, request: Request, session: Session, signed_in_now: bool
    ) -> _Handoff | None:
        states = (request.params or {}).get("state", [])
        taken = self.pending.take(
            session, posted_state=states[0] if len(states) == 1 else None, newest=signed_in_now
        )
        if taken is None:
            return None
        callback, state = taken
        try:
            allowed = self.allow_list.check_callback(callback)  # again: the app can write it
        except CallbackRejected:
            return None
        return _Handoff(allowed.url, allowed.origin, state)

    # -- the redirect back -------------------------------------------------
    def _complete(self, request: Request, session: Session, handoff: _Handoff,
                  browser: BrowserIds, *, authorized: bool = False) -> Steps[Reply]:
        """A signed-in user asks for a remote: straight back with a token."""
        if (not authorized and self.authorize is not None
                and not self.authorize(session, handoff.origin)):
            # The user lost this site: it stops serving them at once, not only at the
            # next hand-off (its protected paths check the joined origins per request).
            session.withdraw(handoff.origin)
            cookies = yield from self.lifecycle.persist(session)
            return self._refused(request, handoff, [*browser.headers, *cookies])
        location = yield from self._mint(session, handoff, browser.owners)
        cookies = [*browser.headers, *(yield from self.lifecycle.persist(session))]
        if location is None:
            return self._refused(request, handoff, cookies, "state_taken")
        return Reply.redirect(location, headers=cookies)

    def _not_signed_in(self, handoff: _Handoff, headers: Headers) -> Reply:
        """The answer to a passive check for nobody signed in: back at once, sealed."""
        answer = self.passive_answers.seal(handoff.state, now=self.clock())
        self.events.emit(logging.INFO, "passive_answered", {"audience": handoff.origin},
                         "passive_answered audience=%s signed_in=no", handoff.origin)
        return Reply.redirect(f"{handoff.callback}?passive={answer}{_relayed(handoff)}",
                              headers=headers)

    def _fresh_enough(self, session: Session, handoff: _Handoff) -> bool:
        """False when ``handoff``'s state asks for a sign-in more recent than the session's."""
        required = self.login_states.max_age_of(handoff.state)
        return required is None or is_fresh(session.authenticated_at, required, self.clock())

    def _refused(self, request: Request, handoff: _Handoff, headers: Headers,
                 reason: _Refusal = "not_authorized") -> Reply:
        """403 for a hand-off refused (:data:`_REFUSALS`): no token, no redirect."""
        self.events.emit(
            logging.WARNING, "handoff_refused", {"reason": reason, "audience": handoff.origin},
            "handoff_refused reason=%s audience=%s", reason, handoff.origin,
        )
        return Reply.error(403, reason, _REFUSALS[reason], as_json=request.wants_json,
                           headers=headers)

    def _mint(
        self, session: Session, handoff: _Handoff, owners: tuple[str, ...]
    ) -> Steps[str | None]:
        """Store a ticket for the session if this browser (``owners``) holds the state; the
        callback URL carrying its sealed token, or None when another browser holds it."""
        sid = state_of(session).stored_id
        assert sid is not None, "only a stored, signed-in session is handed off"
        # Carried in the ticket, so a remote that cannot find it tells "lost" from
        # "another store" (core/storeid.py); a round trip only now and then.
        store_id = yield from self.store_identity.current()
        ticket = yield from tickets.issue(
            self.lifecycle.key_prefix, sid, handoff.state, self.claims, owners,
            token_ttl=self.token_ttl, store_id=store_id,
        )
        if ticket is None:
            return None
        token = seal_token(
            self.key, ticket, audience=handoff.origin, issuer=self.origin,
            state=handoff.state, now=self.clock(),
        )
        self.events.emit(logging.INFO, "ticket_issued", {"audience": handoff.origin},
                         "ticket_issued audience=%s", handoff.origin)
        return f"{handoff.callback}?token={token}{_relayed(handoff)}"


def _relayed(handoff: _Handoff) -> str:
    """The relay a passive check brought, as the callback URL's last parameter ("" for
    none): the IdP neither reads nor keeps it, it only hands it back."""
    return "" if handoff.relay is None else f"&relay={handoff.relay}"


def _http_example(entries: Iterable[str]) -> str:
    """An entry rewritten to allow plain http: ``blog.localhost:9101`` -> ``http://...``."""
    for entry in entries:
        if "://" not in entry and not entry.startswith("*."):
            return f"http://{entry}"[:200]
    return "http://blog.localhost:9101"
