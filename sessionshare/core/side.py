"""What the IdP's and a remote's protocol have in common: identity, user, sign-out, outage.

A *side* is one app's half of the protocol, with no I/O: it reads a
:class:`~sessionshare.core.request.Request` and the request's
:class:`~sessionshare.core.session.Session`, asks for store work as steps
(``core/steps.py``), and answers with a :class:`~sessionshare.core.reply.Reply`
or lets the request through to the app (:class:`PassThrough`). A shell calls
the same three entry points in this order whatever the role (as h11's I/O
layer always calls the same methods of a connection):

1. :meth:`Side.on_request` -- a request (a websocket handshake too, told apart
   by :attr:`Request.is_websocket <sessionshare.core.request.Request.is_websocket>`)
   is answered by the library or passed to the app;
2. :meth:`Side.on_response` -- the app's answer starts: persist the session
   (the IdP also signs in and hands off, and may replace the answer);
3. :meth:`Side.on_close` -- the body is done: persist what changed while it
   streamed, refusing what would need a cookie (the headers are out).

And whenever the app asks (``Session.save()``, under WSGI), :meth:`Side.on_save`
persists by the rules of the way out there and then. Each answers with its
result when no store work is needed (the common case), else with the steps
that find it.

Shared here: the options a side is built from (checked once, by
:func:`~sessionshare.core.configure.checked_options`, so nothing below checks
or defaults a value again); the app's identity and the session's rules
(:class:`~sessionshare.core.lifecycle.Lifecycle`); who the user is; single
logout (a same-origin POST: :meth:`Side.logout`); a store outage failing
closed (503, :meth:`Side.unavailable`); and what the shells hand over checked
first: a path without its leading ``/`` (:meth:`Side.bad_path`) and a
websocket handshake from a page of another origin, which gets no session
(:meth:`Side._websocket_request`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Union

from ..crypto import SyncKey, canonical_origin
from ..errors import StoreUnavailable
from .configure import CheckedOptions, checked_options
from .cookies import DEFAULT_COOKIE_NAME, CookieSpec, session_cookie
from .events import EventName, Events
from .lifecycle import Headers, Lifecycle
from .loginstate import LoginStates
from .option_checks import origins_of
from .options import Role
from .passive import PassiveAnswers
from .reply import Reply
from .request import Request, safe_return_path
from .session import Session, peek, state_of
from .steps import Steps

__all__ = [
    "DEFAULT_COOKIE_NAME", "Answer", "Closing", "Outcome", "PassThrough", "Side",
    "is_signed_in_user",
]

log = logging.getLogger("sessionshare")
#: (role, origin, key fingerprints) of every side this process has announced at WARNING.
_ANNOUNCED: set[tuple[str, str, tuple[str, ...]]] = set()


def is_signed_in_user(value: Any) -> bool:
    """True when ``session[user_key]`` names a user: a non-empty string, a non-zero
    number, a non-empty list or object -- never ``None``, ``""``, ``0``, ``[]``, ``{}``,
    nor ``True``/``False`` (a flag says nothing about *who* is signed in)."""
    return bool(value) and not isinstance(value, bool)


class PassThrough(NamedTuple):
    """The request goes on to the app.

    :param user: the signed-in user to publish (``REMOTE_USER``), or None.
    :param signed_in: whether the session was signed in before the app ran
        (the IdP watches for a sign-in on the way out).
    :param headers: headers the side adds to the app's answer (the IdP's browser
        cookie); the side's own ``on_response`` adds them.
    :param no_session: the app must not see the browser's session: the shell gives it
        a new, empty one instead (a websocket opened by a page of another origin).
    :param browser: the browser id the IdP minted for this request (the browser had
        none): a sign-in on the way out hands off as that browser, not a second new one.
    :param signed_in_here: a sign-in of this request was recorded already, by an early
        save (:meth:`Side.on_save`): the way out still completes a hand-off for it.
    :param query: the query string the app sees instead of the request's (None: the
        request's own): the library's own parameter taken out (a passive page's guest
        mark, :mod:`sessionshare.core.guest`).
    """

    user: Any = None
    signed_in: bool = False
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()
    no_session: bool = False
    browser: str | None = None
    signed_in_here: bool = False
    query: str | None = None


#: An entry point's answer: the outcome itself when it needs no store work (no
#: generator to drive: the common case, and the cheapest), else the steps to run.
Outcome = Union[Reply, PassThrough, Steps[Union[Reply, PassThrough]]]  # noqa: UP007
#: What :meth:`Side.on_response` answers: the headers to add to the app's answer, or
#: the :class:`Reply` that replaces it -- itself, or the steps that find it.
Answer = Union[Reply, Headers, Steps[Union[Reply, Headers]]]  # noqa: UP007
#: What :meth:`Side.on_close` answers: the headers of the late persist (which no
#: response carries any more), or the steps that write it.
Closing = Union[Headers, Steps[Headers]]  # noqa: UP007

#: A websocket from another origin, where it is not refused: no user, no session.
_WITHOUT_SESSION = PassThrough(no_session=True)


class Side:
    """Base of :class:`~sessionshare.core.idp.IdpSide` and
    :class:`~sessionshare.core.remote.RemoteSide`."""

    role: ClassVar[Role]
    #: Whether :meth:`on_response` reads the app's response headers (the IdP carries the
    #: app's cookies over to a reply that replaces its answer): a shell that must decode
    #: them first (ASGI's are bytes) spares that work for a side that does not.
    reads_app_headers: ClassVar[bool] = False

    def __init__(self, options: CheckedOptions | None = None, /, **given: Any) -> None:
        """Built from a middleware's checked options, or from the options by name (a
        side built directly), checked here in the same round (``core/configure.py``)."""
        if options is None:
            options = checked_options(self.role, given, None, owner=type(self).__name__)
        elif given:
            raise TypeError(f"{type(self).__name__}() takes checked options or keyword "
                            "arguments, not both")
        #: The options this side was built from, checked, every default filled in.
        self.options = options
        self.events = Events(options.on_event)
        self.key = SyncKey.parse(options.key) if isinstance(options.key, str) else options.key
        self.origin = canonical_origin(options.app_url)
        #: The origins whose pages may open a websocket with the session: this app's own,
        #: and those listed (canonical, lower-case: compared with the ``Origin`` header).
        self.websocket_origins = origins_of("websocket_origins", options.websocket_origins) | {
            self.origin}
        self.user_key: str = options.user_key
        self.token_ttl = int(options.token_ttl)
        self.logout_path: str = options.logout_path
        self.logout_redirect: str = options.logout_redirect
        self.clock: Callable[[], float] = options.clock
        self.cookie_domain: str | None = options.cookie_domain
        max_remember = options.max_remember
        self.lifecycle = Lifecycle(
            cookie=session_cookie(options),
            cookie_max_age=options.cookie_max_age,
            cookie_refresh=options.cookie_refresh,
            key=self.key,
            audience=self.origin,
            idle_timeout=options.idle_timeout,
            absolute_timeout=options.absolute_timeout,
            # A remembered sign-in's longer limits hold here only where this app says so: the
            # IdP grants them (it honours its own remember() unless capped), a remote keeps
            # its own limits unless it opts in.
            max_remember=max_remember if max_remember is not None
            else (None if self.role == "idp" else 0),
            key_prefix=options.key_prefix,
            max_session_bytes=options.max_session_bytes,
            clock=options.clock,
            events=self.events,
        )
        # What an adapter's framework settings are held to when the cookie follows them.
        self.lifecycle.options = options
        #: What a login state carries (step-up, expiry, passive), and the passive answers.
        self.login_states = LoginStates(self.key)
        self.passive_answers = PassiveAnswers(self.key)
        self._announce(options.quiet_startup)

    def _cookie_beside(self, suffix: str, **attributes: Any) -> CookieSpec:
        """A cookie of the library's named after the session cookie, Secure as it is,
        with its Domain."""
        cookie = self.lifecycle.cookie
        return CookieSpec(cookie.name + suffix, secure=cookie.secure, domain=self.cookie_domain,
                          **attributes)

    def _announce(self, quiet: bool) -> None:
        """The start-up line: which side, which origin, which key -- seen by default.

        gunicorn, waitress and ``flask run`` configure no handler for a library's
        logger, so Python shows only its WARNINGs: the line an operator compares
        across apps (the fingerprint) is a WARNING the first time this process
        builds this side, INFO after that, and INFO always with ``quiet_startup``.
        """
        seen = (self.role, self.origin, self.key.fingerprints)
        level = logging.INFO if quiet or seen in _ANNOUNCED else logging.WARNING
        _ANNOUNCED.add(seen)
        log.log(
            level, "sessionshare %s started origin=%s key_fingerprint=%s%s",
            self.role, self.origin, self.key.fingerprint,
            " (a one-time notice; SESSIONSHARE_QUIET_STARTUP=true logs it at INFO)"
            if level == logging.WARNING else "",
        )

    # -- the three entry points ----------------------------------------------
    def on_request(self, request: Request, session: Session) -> Outcome:
        """The library's own answer to ``request``, or :class:`PassThrough` to the app."""
        if request.has_bad_path:
            return self.bad_path(request)
        if request.is_websocket:
            return self._websocket_request(request, session)
        return self._route(request, session)

    def on_response(
        self, request: Request, session: Session, passed: PassThrough, app_headers: Headers
    ) -> Answer:
        """The app's answer starts (``app_headers``: its headers): persist the session
        before the status line goes out, so the next request -- often the redirect that
        follows -- sees the write. The headers (cookie, ``Vary``) to add to the app's.
        A websocket handshake's answer carries no cookie: it persists as :meth:`on_close`.
        """
        if request.is_websocket:
            return self.on_close(session)
        return self._after_app(request, session, passed, app_headers)

    def _after_app(
        self, request: Request, session: Session, passed: PassThrough, app_headers: Headers
    ) -> Answer:
        """The persist of :meth:`on_response` (the IdP's also signs in and hands off)."""
        return self.lifecycle.persisting(session)

    def on_save(
        self, request: Request, session: Session, passed: PassThrough, *, late: bool = False
    ) -> Steps[PassThrough]:
        """The app asked to persist its session now (``Session.save()``): the steps that
        do, by the rules of the way out, and the :class:`PassThrough` the rest of the
        request goes on with. ``late``: the response's headers are out (:meth:`on_close`);
        a websocket handshake's save is a late one too (no cookie reaches its page).
        """
        yield from self.lifecycle.save_now(session, late=late or request.is_websocket)
        return passed

    def on_close(self, session: Session) -> Closing:
        """The app's body is done: persist what changed while it streamed. The headers
        are out, so the late persist refuses a move to a new id or a new session (logged),
        and reports a store failure (``store_unavailable phase=close``) rather than raise.
        """
        if not state_of(session).modified:
            return []  # the common case: nothing changed after the headers
        return self.lifecycle.persisting(session, late=True)

    def _route(self, request: Request, session: Session) -> Outcome:
        """The answer to an HTTP request whose path is well formed: the role's own."""
        raise NotImplementedError

    def bad_path(self, request: Request) -> Reply:
        """400 ``bad_path`` for a path that does not start with ``/`` (why:
        :attr:`Request.has_bad_path`)."""
        if request.root.endswith("/"):
            # The mount point, not the client: a server or proxy that hands over
            # SCRIPT_NAME (root_path) with its final slash leaves every path without its
            # leading one, and every request of this app would be refused with no clue.
            self.events.emit(
                logging.WARNING, "request_rejected",
                {"reason": "bad_path", "origin": self.origin, "mount": "trailing_slash"},
                "request_rejected reason=bad_path origin=%s: the mount point (SCRIPT_NAME, "
                "ASGI root_path) %r ends with '/', so no path the app gets starts with one; "
                "configure the server or proxy to give the prefix without its final slash",
                self.origin, request.root[:200],
            )
        else:
            # No path in the line: it is the client's text, and may carry anything.
            self.events.emit(logging.INFO, "request_rejected",
                             {"reason": "bad_path", "origin": self.origin},
                             "request_rejected reason=bad_path origin=%s", self.origin)
        return Reply.error(400, "bad_path", "The request path must start with '/'.",
                           as_json=request.wants_json)

    def _websocket_request(self, request: Request, session: Session) -> Outcome:
        """A websocket handshake: :class:`PassThrough` to serve it, a :class:`Reply` to refuse.

        No redirect, cookie or sign-out can travel over a websocket, so the
        library's own paths are the app's there; only a remote's protected path
        refuses (the ASGI shell closes the socket with a code standing for the
        reply, the WSGI shell answers it). A browser sends the ``SameSite=Lax``
        cookie with the handshake of any page of the same *site* (a sibling
        subdomain, another port), and of any site with ``SameSite=None``: served
        the session, such a page would use the socket as the user (cross-site
        websocket hijacking). So a handshake from another origin than this app's
        (and ``websocket_origins``), or with no ``Origin``, gets no session and no
        user -- the session is not even read -- or, on a remote's protected path,
        is refused (``cross_origin``).
        """
        if not request.origin_is(self.websocket_origins):
            return self._foreign_websocket(request)
        return self._websocket(request, session)

    def _websocket(self, request: Request, session: Session) -> Outcome:
        """A handshake from one of :attr:`websocket_origins`: the session's user, anywhere
        (a remote overrides this with its protected paths)."""
        return self._websocket_user(session)

    def _websocket_user(self, session: Session) -> Steps[PassThrough]:
        yield from self.lifecycle.load(session)
        user = self.user_of(session)
        return PassThrough(user, signed_in=user is not None)

    def _foreign_websocket(self, request: Request) -> Reply | PassThrough:
        """A handshake from another origin: no session, no user (a remote refuses it on its
        protected paths)."""
        self._websocket_event(logging.INFO, "websocket_without_session", request)
        return _WITHOUT_SESSION

    def _websocket_event(self, level: int, event: EventName, request: Request) -> None:
        # The Origin is the client's text: repr() and a cap keep it from forging log lines.
        sent = "none" if request.origin is None else repr(request.origin[:100])
        self.events.emit(
            level, event, {"reason": "cross_origin", "origin": self.origin},
            "%s reason=cross_origin origin=%s sent=%s hint=%r", event, self.origin, sent,
            "a page of another origin opened this websocket; if that origin is one of "
            "yours, list it in websocket_origins (SESSIONSHARE_WEBSOCKET_ORIGINS)",
        )

    # -- who the user is ---------------------------------------------------
    def user_of(self, session: Session) -> Any:
        """The signed-in user, or None (reads a session that was not read yet).

        Only :func:`is_signed_in_user` values count: an app that "signs out" by
        setting ``session["user"] = ""`` (or ``False``, ``0``) must not leave the
        session signed in as nobody -- at every app, and at the IdP, whose
        sign-in detection (rotation, hand-off) reads this same method.
        """
        user = peek(session, self.user_key)
        if not is_signed_in_user(user):
            return None
        # A signed-in user is published to the app (REMOTE_USER, the scope's user), so the
        # answer depends on the cookie (Vary): a cache must not hand it to another browser.
        state_of(session).accessed = True
        return user

    @staticmethod
    def remote_user(user: Any) -> str | None:
        """``REMOTE_USER``, the convention frameworks already read: the user as text."""
        if user is None:
            return None
        return user if isinstance(user, str) else json.dumps(user)

    # -- single logout -----------------------------------------------------
    def logout(self, request: Request, session: Session) -> Steps[Reply]:
        """POST: end the shared session everywhere. GET/HEAD: a page with the button.

        A POST on purpose: with ``SameSite=Lax`` cookies a cross-site POST carries
        no session cookie, so a third-party page cannot sign the user out.
        """
        if request.method in ("GET", "HEAD"):
            # Encoded and checked: a mount point holding "//evil.example" (the client's
            # text can reach it) must not send the form, and the user, to another site.
            action = safe_return_path(request.mount + self.logout_path,
                                      default=self.logout_path)
            return Reply.logout_form(action)
        if request.method != "POST":
            self.events.emit(
                logging.DEBUG, "logout_rejected", {"reason": "bad_method", "origin": self.origin},
                "logout_rejected reason=bad_method origin=%s", self.origin,
            )
            return Reply.error(
                405, "bad_method", "Sign out with a POST.",
                as_json=request.wants_json, headers=[("Allow", "GET, HEAD, POST")],
            )
        if not request.is_same_origin(self.origin):
            # A sibling subdomain is same-site: its page's POST carries the SameSite=Lax
            # cookie, so Lax alone would let it sign the user out (logout CSRF).
            self.events.emit(
                logging.WARNING, "logout_rejected",
                {"reason": "cross_origin", "origin": self.origin},
                "logout_rejected reason=cross_origin origin=%s", self.origin,
            )
            return Reply.error(
                403, "cross_origin", "Sign out from this site's own sign-out page.",
                as_json=request.wants_json, title="Sign-out refused",
            )
        had_session = state_of(session).had_cookie
        yield from self.lifecycle.load(session)  # the id to delete, if it is still live
        user = self.remote_user(self.user_of(session))
        session.invalidate()
        headers = yield from self.lifecycle.persist(session)
        if had_session:
            fields = {"origin": self.origin}
            if user is not None:
                fields["user"] = user[:200]
            self.events.emit(logging.INFO, "logout", fields, "logout origin=%s", self.origin)
        return Reply.redirect(self.logout_redirect, headers=headers)

    # -- the store is down -------------------------------------------------
    def unavailable(self, request: Request, exc: StoreUnavailable) -> Reply:
        """Fail closed: 503 and ``Retry-After``, never the app without knowing the user."""
        # repr() and a cap: the path is the client's text, which must not forge log lines.
        # The error names the server (host:port or socket path) and the cause, never a
        # password (store/redisproto.py builds it from the connection settings).
        self.events.emit(
            logging.ERROR, "store_unavailable", {"error": str(exc)[:300]},
            "store_unavailable error=%s path=%r: check that the store runs and that "
            "SESSIONSHARE_STORE_URL names it", exc, request.path[:200],
        )
        return Reply.store_unavailable(as_json=request.wants_json)
