"""A remote app's side of the hand-off: :class:`RemoteSessionMiddleware`.

Wrap any app that should share the IdP's login. For a protected path and a
browser with no signed-in shared session:

- a **browser navigation** (``Sec-Fetch-Mode: navigate``, or an ``Accept``
  naming ``text/html``) gets **302** to ``idp_url?callback=...&state=S`` and a
  short-lived, signed, HttpOnly state cookie holding ``S`` and the page to
  return to. Each login attempt has its own cookie, so several tabs signing
  in at once do not overwrite each other;
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

    app.wsgi_app = RemoteSessionMiddleware(
        app.wsgi_app, store=RedisStore.from_url(url), key=sync_key,
        app_url="https://shop.example", idp_url="https://id.example/login",
        protect=["/account/", "/orders"],
    )
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from itsdangerous import BadData, TimestampSigner

from .core import tickets
from .core.options import SameSite, check_options
from .core.reply import Reply
from .crypto import SyncKey, canonical_origin, open_token
from .crypto.allowlist import DEFAULT_CALLBACK_PATH
from .errors import ConfigurationError, StoreUnavailable, TokenRejected
from .middleware import SessionMiddleware
from .store.base import SessionStore
from .web import (
    CookieSpec,
    is_navigation,
    query_params,
    request_path,
    safe_return_path,
    send_reply,
    wants_json,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RemoteSessionMiddleware"]

log = logging.getLogger("sessionshare")

Protect = bool | Sequence[str] | Callable[["WSGIEnvironment"], bool]
MAX_RETURN_PATH = 512
_STATE_NAME_CHARS = 12
_STATE_VALUE = r"[A-Za-z0-9_.\-]{1,1500}"


class RemoteSessionMiddleware(SessionMiddleware):
    """Adopts the IdP's shared session for this app, through a one-time token.

    Every argument after ``app`` is keyword-only and checked at construction:
    a bad one raises :class:`~sessionshare.ConfigurationError` naming it. The
    list below is generated (``python -m sessionshare options --docstring remote``)
    from :data:`sessionshare.core.options.OPTIONS`, and a test keeps it, the
    signature and that declaration equal.

    :param app: The WSGI application to wrap.
    :param store: The shared session store (``RedisStore``, ``MemoryStore``, any
        ``SessionStore``); as a variable: redis://host:port/db, rediss://..., or memory://
        (one process only). Required. From the environment: ``SESSIONSHARE_STORE_URL``.
    :param key: Shared secret(s), newest first, from ``python -m sessionshare keygen``.
        Required. From the environment: ``SESSIONSHARE_SYNC_KEY``.
    :param app_url: This app's public origin, e.g. https://shop.example. Required. From the
        environment: ``SESSIONSHARE_APP_URL``.
    :param idp_url: The IdP's full login URL, e.g. https://id.example/login. Required. From
        the environment: ``SESSIONSHARE_IDP_URL``.
    :param user_key: Session key whose presence means signed in. Default ``"user"``. From
        the environment: ``SESSIONSHARE_USER_KEY``.
    :param token_ttl: Seconds a hand-off token stays valid. Default ``60``. From the
        environment: ``SESSIONSHARE_TOKEN_TTL``.
    :param idle_timeout: Seconds of inactivity before the session ends (sliding). Default
        ``1800``. From the environment: ``SESSIONSHARE_IDLE_TIMEOUT``.
    :param absolute_timeout: Seconds after the latest sign-in (or creation, if never signed
        in) when the session ends regardless. Default ``28800``. From the environment:
        ``SESSIONSHARE_ABSOLUTE_TIMEOUT``.
    :param cookie_name: Session cookie name (a __Host- name is supported). Default
        ``"sessionshare"``. From the environment: ``SESSIONSHARE_COOKIE_NAME``.
    :param cookie_secure: Secure cookie flag; off only for a local http demo. Default
        ``True``. From the environment: ``SESSIONSHARE_COOKIE_SECURE``.
    :param cookie_samesite: SameSite cookie attribute: Lax, Strict or None. Default
        ``"Lax"``. From the environment: ``SESSIONSHARE_COOKIE_SAMESITE``.
    :param cookie_domain: Domain attribute of the session cookie (off: no sibling subdomain
        sees it). Default ``None``.
    :param key_prefix: Prefix of every store key. Default ``"sessionshare:"``. From the
        environment: ``SESSIONSHARE_KEY_PREFIX``.
    :param callback_path: The remote path that receives the token (the IdP accepts callbacks
        to allow-listed hosts at this path). Default ``"/_sessionshare/callback"``. From the
        environment: ``SESSIONSHARE_CALLBACK_PATH``.
    :param logout_path: POST here to sign out everywhere. Default
        ``"/_sessionshare/logout"``. From the environment: ``SESSIONSHARE_LOGOUT_PATH``.
    :param logout_redirect: Where the browser goes after signing out: a local path or an
        http(s) URL. Default ``"/"``.
    :param protect: Which paths need a sign-in: ``True`` (all), ``False``, a list of path
        prefixes, or ``predicate(environ) -> bool``. Default ``True``.
    :param state_ttl: Seconds a started sign-in may take. Default ``600``.
    :param state_cookie_name: Prefix of the per-login state cookies. Default
        ``"sessionshare_state"``.
    :param token_leeway: Seconds of clock skew tolerated on a token. Default ``5.0``.
    :param clock: The time source (tests inject one). Default ``time.time``.
    """

    _role = "remote"

    def __init__(
        self,
        app: WSGIApplication,
        *,
        store: SessionStore,
        key: SyncKey | str,
        app_url: str,
        idp_url: str,
        user_key: str = "user",
        token_ttl: int = 60,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 8 * 60 * 60,
        cookie_name: str = "sessionshare",
        cookie_secure: bool = True,
        cookie_samesite: SameSite = "Lax",
        cookie_domain: str | None = None,
        key_prefix: str = "sessionshare:",
        callback_path: str = DEFAULT_CALLBACK_PATH,
        logout_path: str = "/_sessionshare/logout",
        logout_redirect: str = "/",
        protect: Protect = True,
        state_ttl: int = 10 * 60,
        state_cookie_name: str = "sessionshare_state",
        token_leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Every argument by name, checked against the declaration at once, so one
        # error lists every mistake (idp_url, paths and lifetimes included).
        check_options("remote", locals())
        super().__init__(
            app, store=store, key=key, app_url=app_url, user_key=user_key,
            token_ttl=token_ttl, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
            cookie_name=cookie_name, cookie_secure=cookie_secure,
            cookie_samesite=cookie_samesite, cookie_domain=cookie_domain,
            key_prefix=key_prefix, logout_path=logout_path, logout_redirect=logout_redirect,
            clock=clock,
        )
        self.issuer = canonical_origin(idp_url, setting="idp_url")
        self.idp_url = idp_url
        self.callback_path = callback_path
        self.callback_url = self.origin + callback_path
        self.token_leeway = token_leeway
        self.state_ttl = int(state_ttl)
        self._login_prefix = (
            f"{idp_url}?callback={quote(self.callback_url, safe='')}&state="
        )
        self._state_cookie = CookieSpec(
            state_cookie_name, secure=self.manager.cookie.secure, samesite="Lax",
            path=callback_path, max_age=self.state_ttl,
        )
        self._state_signer = self.key.serializer("state-cookie", salt="sessionshare.state")
        # The state cookie ages by this middleware's clock, as tokens and tickets do
        # (itsdangerous would read the wall clock).
        self._state_signer.signer = _clocked_signer(self.clock)
        self._protects = _protect_predicate(protect)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        try:
            if path == self.callback_path:
                return self._callback(environ, start_response)
            if path == self.logout_path:
                return self.logout(environ, start_response)
            session = self.manager.open(environ)
            if self._protects(environ):
                user = self.user_of(session)
                if user is None:
                    return self._send_to_idp(environ, start_response)
                self.publish_user(environ, user)
            return self.manager.run(self.app, environ, start_response, session)
        except StoreUnavailable as exc:
            return self.store_unavailable(environ, start_response, exc)

    # -- step 2: off to the IdP ----------------------------------------------
    def _state_cookie_name(self, state: str) -> str:
        return f"{self._state_cookie.name}-{state[:_STATE_NAME_CHARS]}"

    def _send_to_idp(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if not is_navigation(environ):
            # Always JSON: a script or API client cannot follow a cross-origin login anyway.
            refusal = Reply.error(
                401, "not_authenticated", "Sign in first.",
                as_json=True, extra={"login_url": self.idp_url},
            )
            return send_reply(environ, start_response, refusal)
        state = secrets.token_urlsafe(32)
        back = request_path(environ)
        back = safe_return_path(back if len(back) <= MAX_RETURN_PATH else "/")
        cookie = self._state_cookie.set(
            self._state_signer.dumps([state, back]), name=self._state_cookie_name(state)
        )
        log.info("login_redirect issuer=%s", self.issuer)
        reply = Reply.redirect(
            self._login_prefix + state, status=302, headers=[("Set-Cookie", cookie)]
        )
        return send_reply(environ, start_response, reply)

    # -- step 5: back from the IdP with a token --------------------------------
    def _callback(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            sid, state, back = self._redeem(environ)
        except TokenRejected as exc:
            log.warning("token_rejected reason=%s", exc.reason)
            refusal = Reply.error(
                403, exc.reason, "This sign-in link is not valid. Please go back and try again.",
                as_json=wants_json(environ),
            )
            return send_reply(environ, start_response, refusal)
        log.info("ticket_redeemed issuer=%s", self.issuer)
        headers = [
            ("Set-Cookie", self.manager.cookie.set(sid)),
            ("Set-Cookie", self._state_cookie.clear(name=self._state_cookie_name(state))),
        ]
        return send_reply(environ, start_response, Reply.redirect(back, headers=headers))

    def _redeem(self, environ: WSGIEnvironment) -> tuple[str, str, str]:
        """Run every check of the callback; the shared session id, state and return path."""
        if environ.get("REQUEST_METHOD") != "GET":
            raise TokenRejected("bad_method", "the token arrives by GET")
        params = query_params(environ)
        tokens = None if params is None else params.get("token")
        if tokens is None or len(tokens) != 1:
            raise TokenRejected("malformed", "exactly one token parameter expected")
        claims = open_token(
            self.key, tokens[0], audience=self.origin, issuer=self.issuer,
            ttl=self.token_ttl, now=self.clock(), leeway=self.token_leeway,
        )
        prefix = self.manager.key_prefix
        try:
            back = self._check_state(environ, claims.state)
        except TokenRejected:
            # A genuine token in a browser that did not start its login may have been
            # pushed there (a login link carrying someone else's state) and now sits in
            # logs and history: spend the ticket, so the holder of that state cannot.
            self.manager.steps(tickets.burn(prefix, claims.ticket))
            raise
        # Taken last, atomically and once: a forged, foreign or expired token never
        # reaches the store, so it cannot burn the ticket of the browser it came from.
        sid = self.manager.steps(tickets.redeem(prefix, claims.ticket))
        if sid is None:
            raise TokenRejected("replayed", "ticket already used or expired")
        session = self.manager.open(environ)
        if not self.manager.adopt(session, sid):
            raise TokenRejected("session_gone", "the session ended before the hand-off")
        if self.user_of(session) is None:
            raise TokenRejected("not_authenticated", "the session is not signed in")
        return sid, claims.state, back

    def _check_state(self, environ: WSGIEnvironment, state: str) -> str:
        """The saved return path when this browser started the login with ``state``."""
        name = self._state_cookie_name(state)
        match = self._state_cookie.pattern(_STATE_VALUE, name=name).search(
            environ.get("HTTP_COOKIE", "")
        )
        if match is None:
            raise TokenRejected("bad_state", "no login was started in this browser")
        try:
            saved = self._state_signer.loads(
                match.group(1) or match.group(2), max_age=self.state_ttl
            )
        except BadData:
            raise TokenRejected("bad_state", "state cookie invalid or expired") from None
        if (
            not isinstance(saved, list)
            or len(saved) != 2
            or not all(isinstance(part, str) for part in saved)
            or not hmac.compare_digest(saved[0].encode(), state.encode())
        ):
            raise TokenRejected("bad_state", "state does not match this browser's login")
        return safe_return_path(saved[1])


def _clocked_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


def _protect_predicate(protect: Protect) -> Callable[[WSGIEnvironment], bool]:
    if protect is True:
        return lambda environ: True
    if protect is False:
        return lambda environ: False
    if callable(protect):
        return protect
    if isinstance(protect, str):
        raise ConfigurationError("protect takes a list of path prefixes, not one string")
    prefixes = tuple(protect)
    if not all(isinstance(p, str) and p.startswith("/") for p in prefixes):
        raise ConfigurationError("protect prefixes must be absolute paths such as '/account/'")

    def protects(environ: WSGIEnvironment) -> bool:
        path = str(environ.get("PATH_INFO", ""))
        # Frameworks route "//orders" (werkzeug) or "/./orders" to the /orders view:
        # a spelling that reaches a protected page is protected too.
        return path.startswith(prefixes) or _normalized_path(path).startswith(prefixes)

    return protects


def _normalized_path(path: str) -> str:
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
