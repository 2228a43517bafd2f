"""The identity provider's side of the hand-off: :class:`IdpAuthMiddleware`.

Wrap the IdP app (the one with the login form). A remote app sends an
unknown visitor to ``GET /login?callback=<remote callback URL>&state=<S>``.
The middleware:

1. checks ``callback`` against the allow-list (:class:`~sessionshare.crypto.AllowList`).
   A callback that fails is never redirected to, on any path of this code:
   the request goes on to the IdP's own login page with no pending hand-off
   and ``callback_rejected`` is logged (``strict=True`` answers 400 instead);
2. if the user is already signed in (``session[user_key]`` is set), asks the
   optional ``authorize(session, remote_origin)`` hook (False: 403), stores a
   single-use ticket for the session and answers **303** to
   ``callback?token=T``;
3. otherwise remembers ``{callback, state}`` in the session (a few at once,
   keyed by state, so several tabs work) and lets the app show its form.

When the app then signs the user in (sets ``session[user_key]``), the
middleware sees the change on the way out, **rotates the session id** (no
fixation), persists, and -- if a hand-off is pending -- replaces the app's
response with that 303. The login form should post back to the same URL
(``<form method=post>`` without ``action`` does) so that, with several tabs
open, each tab returns to its own page.

    app.wsgi_app = IdpAuthMiddleware(
        app.wsgi_app, store=RedisStore.from_url(url), key=sync_key,
        app_url="https://id.example", known_remote_hosts=["shop.example", "blog.example"],
    )
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from .core import tickets
from .core.options import SameSite, check_options
from .core.reply import Reply
from .crypto import AllowList, SyncKey, is_valid_state, seal_token
from .crypto.allowlist import DEFAULT_CALLBACK_PATH
from .errors import CallbackRejected, ConfigurationError, StoreUnavailable
from .middleware import SessionMiddleware
from .session import Session
from .store.base import SessionStore
from .web import query_params, reply_body, send_reply, wants_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["IdpAuthMiddleware"]

log = logging.getLogger("sessionshare")

#: Session key of the pending hand-offs: state -> [callback URL, origin, time].
PENDING_KEY = "sessionshare.pending"
MAX_PENDING = 5
PENDING_TTL = 10 * 60

Authorize = Callable[[Session, str], bool]


@dataclass(frozen=True)
class _Handoff:
    callback: str  # canonical, allow-listed
    origin: str  # the token's audience
    state: str


class IdpAuthMiddleware(SessionMiddleware):
    """Signs users in once and hands their session to allow-listed remote apps.

    Every argument after ``app`` is keyword-only and checked at construction:
    a bad one raises :class:`~sessionshare.ConfigurationError` naming it. The
    list below is generated (``python -m sessionshare options --docstring idp``)
    from :data:`sessionshare.core.options.OPTIONS`, and a test keeps it, the
    signature and that declaration equal.

    :param app: The WSGI application to wrap: the IdP app with the login form.
    :param store: The shared session store (``RedisStore``, ``MemoryStore``, any
        ``SessionStore``); as a variable: redis://host:port/db, rediss://..., or memory://
        (one process only). Required. From the environment: ``SESSIONSHARE_STORE_URL``.
    :param key: Shared secret(s), newest first, from ``python -m sessionshare keygen``.
        Required. From the environment: ``SESSIONSHARE_SYNC_KEY``.
    :param app_url: This app's public origin, e.g. https://shop.example. Required. From the
        environment: ``SESSIONSHARE_APP_URL``.
    :param known_remote_hosts: Allow-list of the remote apps: host, host:port, *.domain or
        origin, comma separated. Required. From the environment:
        ``SESSIONSHARE_KNOWN_REMOTE_HOSTS``.
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
    :param login_path: The IdP path remotes send browsers to. Default ``"/login"``. From the
        environment: ``SESSIONSHARE_LOGIN_PATH``.
    :param callback_path: The remote path that receives the token (the IdP accepts callbacks
        to allow-listed hosts at this path). Default ``"/_sessionshare/callback"``. From the
        environment: ``SESSIONSHARE_CALLBACK_PATH``.
    :param logout_path: POST here to sign out everywhere. Default
        ``"/_sessionshare/logout"``. From the environment: ``SESSIONSHARE_LOGOUT_PATH``.
    :param logout_redirect: Where the browser goes after signing out: a local path or an
        http(s) URL. Default ``"/"``.
    :param authorize: ``authorize(session, remote_origin) -> bool``; False answers 403.
        Default ``None``.
    :param strict: Answer 400 to a callback off the allow-list instead of showing the login
        page. Default ``False``.
    :param clock: The time source (tests inject one). Default ``time.time``.
    """

    _role = "idp"

    def __init__(
        self,
        app: WSGIApplication,
        *,
        store: SessionStore,
        key: SyncKey | str,
        app_url: str,
        known_remote_hosts: AllowList | Iterable[str] | str,
        user_key: str = "user",
        token_ttl: int = 60,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 8 * 60 * 60,
        cookie_name: str = "sessionshare",
        cookie_secure: bool = True,
        cookie_samesite: SameSite = "Lax",
        cookie_domain: str | None = None,
        key_prefix: str = "sessionshare:",
        login_path: str = "/login",
        callback_path: str = DEFAULT_CALLBACK_PATH,
        logout_path: str = "/_sessionshare/logout",
        logout_redirect: str = "/",
        authorize: Authorize | None = None,
        strict: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Every argument by name, checked against the declaration at once, so one
        # error lists every mistake.
        check_options("idp", locals())
        super().__init__(
            app, store=store, key=key, app_url=app_url, user_key=user_key,
            token_ttl=token_ttl, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
            cookie_name=cookie_name, cookie_secure=cookie_secure,
            cookie_samesite=cookie_samesite, cookie_domain=cookie_domain,
            key_prefix=key_prefix, logout_path=logout_path, logout_redirect=logout_redirect,
            clock=clock,
        )
        if isinstance(known_remote_hosts, AllowList):
            self.allow_list = known_remote_hosts
        else:
            self.allow_list = AllowList(known_remote_hosts, callback_path=callback_path)
        if not len(self.allow_list):
            raise ConfigurationError(
                "known_remote_hosts is empty: list the remote apps "
                "(SESSIONSHARE_KNOWN_REMOTE_HOSTS=shop.example,blog.example)"
            )
        self.login_path = login_path
        self.authorize = authorize
        self.strict = strict

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        try:
            if path == self.logout_path:
                return self.logout(environ, start_response)
            session = self.manager.open(environ)
            user = self.user_of(session)  # free without a cookie; one round trip with one
            if path == self.login_path:
                try:
                    handoff = self._requested_handoff(environ)
                except CallbackRejected as exc:
                    log.warning("callback_rejected reason=%s", exc.reason)
                    if self.strict:
                        refusal = Reply.error(
                            400, exc.reason, "This sign-in link is not valid for any known site.",
                            as_json=wants_json(environ),
                        )
                        return send_reply(environ, start_response, refusal)
                    handoff = None
                if handoff is not None:
                    if user is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                        return self._complete(environ, start_response, session, handoff)
                    self._remember(session, handoff)
            self.publish_user(environ, user)
            finish = partial(self._finish, environ, session, user is not None)
            return self.manager.run(self.app, environ, start_response, session, finish=finish)
        except StoreUnavailable as exc:
            return self.store_unavailable(environ, start_response, exc)

    # -- step 3: a remote asks for a sign-in --------------------------------
    def _requested_handoff(self, environ: WSGIEnvironment) -> _Handoff | None:
        params = query_params(environ)
        if params is None:
            raise CallbackRejected("malformed", "unparsable query string")
        callbacks, states = params.get("callback"), params.get("state")
        if callbacks is None and states is None:
            return None  # a plain visit to the login page
        if callbacks is None or states is None or len(callbacks) != 1 or len(states) != 1:
            raise CallbackRejected("malformed", "callback and state must each appear once")
        if not is_valid_state(states[0]):
            raise CallbackRejected("bad_state", "state must match [A-Za-z0-9_-]{16,128}")
        allowed = self.allow_list.check_callback(callbacks[0])
        return _Handoff(allowed.url, allowed.origin, states[0])

    def _remember(self, session: Session, handoff: _Handoff) -> None:
        pending = dict(session.get(PENDING_KEY) or {})
        pending[handoff.state] = [handoff.callback, handoff.origin, int(self.clock())]
        if len(pending) > MAX_PENDING:
            oldest = sorted(pending, key=lambda s: pending[s][2])[: len(pending) - MAX_PENDING]
            for state in oldest:
                del pending[state]
        session[PENDING_KEY] = pending

    def _take_pending(
        self, environ: WSGIEnvironment, session: Session, signed_in_now: bool
    ) -> _Handoff | None:
        pending = session.get(PENDING_KEY)
        if not isinstance(pending, dict) or not pending:
            return None
        params = query_params(environ) or {}
        states = params.get("state", [])
        if len(states) == 1 and states[0] in pending:
            chosen = states[0]  # the tab that posted the form
        elif signed_in_now:
            chosen = max(pending, key=lambda s: pending[s][2])
        else:
            return None
        entry = pending.pop(chosen)
        if pending:
            session[PENDING_KEY] = pending
        else:
            del session[PENDING_KEY]
        # The app can write this key too: trust nothing in it without checking again.
        try:
            callback, _, created = entry
            if float(created) + PENDING_TTL < self.clock():
                return None
            allowed = self.allow_list.check_callback(callback)
        except (TypeError, ValueError, CallbackRejected):
            return None
        return _Handoff(allowed.url, allowed.origin, chosen)

    # -- step 4: the app signed the user in ---------------------------------
    def _finish(
        self,
        environ: WSGIEnvironment,
        session: Session,
        was_signed_in: bool,
        status: str,
        headers: list[tuple[str, str]],
    ) -> tuple[str, list[tuple[str, str]], list[bytes] | None]:
        signed_in = session.loaded and self.user_of(session) is not None
        if signed_in and (not was_signed_in or session.invalidated):
            # Session fixation: whatever id the browser had before sign-in dies here.
            session.regenerate()
            session.mark_authenticated(self.clock())
            log.info("login origin=%s", self.origin)
        handoff = self._take_pending(environ, session, not was_signed_in) if signed_in else None
        cookies = self.manager.persist(session)
        if handoff is None or self.manager.current_id(session) is None:
            return status, [*headers, *cookies], None
        if self.authorize is not None and not self.authorize(session, handoff.origin):
            reply = self._refused(environ, handoff).with_headers(cookies)
        else:
            # The app's own cookies (its CSRF or flash cookie, say) were meant for this
            # browser too: they ride on the 303 that replaces the app's answer.
            own_cookies = [(k, v) for k, v in headers if k.lower() == "set-cookie"]
            location = self._mint(session, handoff)
            reply = Reply.redirect(location, headers=[*own_cookies, *cookies])
        # The manager's finish hook takes (status, headers, replacement body).
        return reply.status_line, list(reply.headers), reply_body(environ, reply)

    def _refused(self, environ: WSGIEnvironment, handoff: _Handoff) -> Reply:
        """403 for a user the ``authorize`` hook keeps out of this remote: no redirect."""
        log.warning("handoff_refused reason=not_authorized audience=%s", handoff.origin)
        return Reply.error(
            403, "not_authorized", "Your account may not use this site.",
            as_json=wants_json(environ),
        )

    # -- the redirect back --------------------------------------------------
    def _complete(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        session: Session,
        handoff: _Handoff,
    ) -> Iterable[bytes]:
        if self.authorize is not None and not self.authorize(session, handoff.origin):
            return send_reply(environ, start_response, self._refused(environ, handoff))
        location = self._mint(session, handoff)
        reply = Reply.redirect(location, headers=self.manager.persist(session))
        return send_reply(environ, start_response, reply)

    def _mint(self, session: Session, handoff: _Handoff) -> str:
        sid = self.manager.current_id(session)
        assert sid is not None, "only a stored, signed-in session is handed off"
        ticket = self.manager.steps(
            tickets.issue(self.manager.key_prefix, sid, token_ttl=self.token_ttl)
        )
        token = seal_token(
            self.key, ticket, audience=handoff.origin, issuer=self.origin,
            state=handoff.state, now=self.clock(),
        )
        log.info("ticket_issued audience=%s", handoff.origin)
        return f"{handoff.callback}?token={token}"

