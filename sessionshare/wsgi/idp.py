"""The IdP's WSGI middleware: :class:`IdpAuthMiddleware`.

Wrap the IdP app (the one with the login form). Remote apps send unknown
visitors to its login path; what happens then -- the allow-list, the
``authorize`` hook, the 303 back with a token, the pending hand-off and the
session id rotated at sign-in -- is decided in :mod:`sessionshare.core.idp`.
This class only builds that side from its arguments and runs it through the
WSGI shell (:mod:`sessionshare.wsgi.base`).

    app.wsgi_app = IdpAuthMiddleware(
        app.wsgi_app, store=RedisStore.from_url(url), key=sync_key,
        app_url="https://id.example", known_remote_hosts=["shop.example", "blog.example"],
    )
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..core.events import EventHook
from ..core.idp import Authorize, IdpSide
from ..core.options import SameSite, check_options
from ..crypto import AllowList, SyncKey
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..store.base import SessionStore
from .base import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["IdpAuthMiddleware"]


class IdpAuthMiddleware(SessionMiddleware):
    """Signs users in once and hands their session to allow-listed remote apps.

    Every argument after ``app`` is keyword-only and checked at construction:
    a bad one raises :class:`~sessionshare.ConfigurationError` naming it. The
    list below is generated (``python -m sessionshare options --docstring idp``)
    from :data:`sessionshare.core.options.OPTIONS`, and a test keeps it, the
    signature and that declaration equal.

    :param app: The WSGI application to wrap: the IdP app with the login form.
    :param store: The shared session store (``RedisStore``, ``MemoryStore``, any
        ``SessionStore``); as a variable: ``redis://host:port/db``, ``rediss://...``, or
        ``memory://`` (one process only). Required. From the environment:
        ``SESSIONSHARE_STORE_URL``.
    :param key: Shared secret(s), newest first, from ``python -m sessionshare keygen``.
        Required. From the environment: ``SESSIONSHARE_SYNC_KEY``.
    :param app_url: This app's public origin, e.g. ``https://shop.example``. Required. From
        the environment: ``SESSIONSHARE_APP_URL``.
    :param known_remote_hosts: Allow-list of the remote apps: host, host:port, ``*.domain``
        or origin, comma separated. Required. From the environment:
        ``SESSIONSHARE_KNOWN_REMOTE_HOSTS``.
    :param user_key: Session key naming the signed-in user: a non-empty string (or a
        non-zero number, a non-empty list or object); ``""``, ``0``, ``false``, ``true`` or
        ``null`` mean signed out. Default ``"user"``. From the environment:
        ``SESSIONSHARE_USER_KEY``.
    :param token_ttl: Seconds a hand-off token stays valid. Default ``60``. From the
        environment: ``SESSIONSHARE_TOKEN_TTL``.
    :param idle_timeout: Seconds of inactivity before the session ends (sliding). Default
        ``1800``. From the environment: ``SESSIONSHARE_IDLE_TIMEOUT``.
    :param absolute_timeout: Seconds after the latest sign-in (or creation, if never signed
        in) when the session ends regardless. Default ``28800``. From the environment:
        ``SESSIONSHARE_ABSOLUTE_TIMEOUT``.
    :param max_remember: Longest remembered sign-in (``Session.remember()``), in seconds,
        this app honours past its own ``idle_timeout`` and ``absolute_timeout``; unset: a
        remote enforces the stricter of its own limits and the session's, remembered or not,
        and the IdP honours what its own ``remember()`` grants. Default ``None``. From the
        environment: ``SESSIONSHARE_MAX_REMEMBER``.
    :param cookie_name: Session cookie name; unset: ``__Host-sessionshare`` on an https app
        without ``cookie_domain`` (no sibling subdomain can set or shadow it), else
        ``sessionshare``. Default ``None``. From the environment:
        ``SESSIONSHARE_COOKIE_NAME``.
    :param cookie_secure: Secure cookie flag; off only for a local http demo. Default
        ``True``. From the environment: ``SESSIONSHARE_COOKIE_SECURE``.
    :param allow_insecure: On an https ``app_url``, accept settings that send the session in
        clear: ``cookie_secure=False``, at the IdP ``http://`` allow-list entries, and
        ``http://`` ``websocket_origins`` (refused otherwise; a test bed only). Default
        ``False``. From the environment: ``SESSIONSHARE_ALLOW_INSECURE``.
    :param cookie_samesite: SameSite cookie attribute: Lax, Strict or None. Default
        ``"Lax"``. From the environment: ``SESSIONSHARE_COOKIE_SAMESITE``.
    :param cookie_domain: Domain attribute of the session cookie (off: no sibling subdomain
        sees it). Default ``None``.
    :param key_prefix: Prefix of every store key. Default ``"sessionshare:"``. From the
        environment: ``SESSIONSHARE_KEY_PREFIX``.
    :param max_session_bytes: Largest shared session, in bytes of key names and JSON text; a
        write past it raises ``SessionTooLarge`` and stores nothing. Default ``65536``. From
        the environment: ``SESSIONSHARE_MAX_SESSION_BYTES``.
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
    :param max_sessions_per_user: Most live shared sessions one user may hold; a sign-in
        past it ends the user's oldest sessions everywhere (unset: no limit). Default
        ``None``. From the environment: ``SESSIONSHARE_MAX_SESSIONS_PER_USER``.
    :param strict: Answer 400 to a callback off the allow-list instead of showing the login
        page. Default ``False``.
    :param websocket_origins: Origins besides ``app_url`` whose pages may open websockets
        with the session (e.g. ``https://app.shop.example``, comma separated); a handshake
        from any other origin, or with no ``Origin``, gets no session and no user, and is
        refused on a protected path. Default ``()``. From the environment:
        ``SESSIONSHARE_WEBSOCKET_ORIGINS``.
    :param on_event: ``on_event(name, fields)``, called for each event (``login``,
        ``ticket_issued``, ``ticket_redeemed``, ``token_rejected`` and every other rejection
        with its ``reason``, ``logout``, ``session_expired``, ``store_unavailable``, ...;
        docs/logging.md lists them) with a small dict that never holds a session id, cookie,
        ticket, token or key; an exception it raises is logged and the request goes on.
        Default ``None``.
    :param quiet_startup: Log the start-up line (role, origin, key fingerprint) at INFO; by
        default it is a WARNING, once per process, so that servers' default logging shows
        it. Default ``False``. From the environment: ``SESSIONSHARE_QUIET_STARTUP``.
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
        max_remember: int | None = None,
        cookie_name: str | None = None,
        cookie_secure: bool = True,
        allow_insecure: bool = False,
        cookie_samesite: SameSite = "Lax",
        cookie_domain: str | None = None,
        key_prefix: str = "sessionshare:",
        max_session_bytes: int = 64 * 1024,
        login_path: str = "/login",
        callback_path: str = DEFAULT_CALLBACK_PATH,
        logout_path: str = "/_sessionshare/logout",
        logout_redirect: str = "/",
        authorize: Authorize | None = None,
        max_sessions_per_user: int | None = None,
        strict: bool = False,
        websocket_origins: Sequence[str] = (),
        on_event: EventHook | None = None,
        quiet_startup: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(known_remote_hosts, Iterator):
            # Read a one-shot iterator once, here, so the checks (an https IdP refuses
            # http entries) and the allow-list see the same entries.
            known_remote_hosts = tuple(known_remote_hosts)
        # Every argument by name, checked against the declaration at once, so one
        # error lists every mistake.
        check_options("idp", locals())
        side = IdpSide(
            key=key, app_url=app_url, known_remote_hosts=known_remote_hosts,
            user_key=user_key, token_ttl=token_ttl, idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout,
            max_remember=max_remember, cookie_name=cookie_name,
            cookie_secure=cookie_secure, allow_insecure=allow_insecure,
            cookie_samesite=cookie_samesite, cookie_domain=cookie_domain, key_prefix=key_prefix,
            max_session_bytes=max_session_bytes, login_path=login_path,
            callback_path=callback_path, logout_path=logout_path,
            logout_redirect=logout_redirect, authorize=authorize, strict=strict,
            max_sessions_per_user=max_sessions_per_user,
            websocket_origins=websocket_origins,
            on_event=on_event, quiet_startup=quiet_startup, clock=clock,
        )
        super().__init__(app, store=store, side=side)
        self.side: IdpSide = side
