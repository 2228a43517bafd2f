"""A remote app's ASGI middleware: :class:`RemoteSessionMiddleware`.

Wrap any app that should share the IdP's login. Unknown visitors to a
protected path are sent to the IdP (browsers) or answered 401 (API calls),
and the IdP's token is checked and redeemed at the callback path -- all
decided in :mod:`sessionshare.core.remote`. This class only builds that
side from its arguments and runs it through the ASGI shell
(:mod:`sessionshare.asgi.base`); it takes the very arguments of the WSGI
:class:`sessionshare.RemoteSessionMiddleware`, with an asyncio store.
The app reads the session at ``scope["session"]`` (Starlette's
``request.session``) and the user at ``scope["sessionshare.user"]``.

    from fastapi import FastAPI
    from sessionshare import AsyncRedisStore
    from sessionshare.asgi import RemoteSessionMiddleware

    app = FastAPI()
    app.add_middleware(
        RemoteSessionMiddleware, store=AsyncRedisStore.from_url(url), key=sync_key,
        app_url="https://news.example", idp_url="https://id.example/login",
        protect=["/account/"],
    )
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ..core.events import EventHook
from ..core.options import SameSite, check_options
from ..core.remote import Protect, RemoteSide
from ..core.tickets import CLOCK_LEEWAY
from ..crypto import SyncKey
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..store.base import AsyncSessionStore
from ..store.memory import MemoryStore
from .base import SessionMiddleware
from .scope import ASGIApp

__all__ = ["RemoteSessionMiddleware"]


class RemoteSessionMiddleware(SessionMiddleware):
    """Adopts the IdP's shared session for this app, through a one-time token.

    Every argument after ``app`` is keyword-only and checked at construction:
    a bad one raises :class:`~sessionshare.ConfigurationError` naming it. The
    list below is generated (``python -m sessionshare options --docstring remote --shell asgi``)
    from :data:`sessionshare.core.options.OPTIONS`, and a test keeps it, the
    signature and that declaration equal.

    :param app: The ASGI application to wrap.
    :param store: The shared session store (``AsyncRedisStore``, ``MemoryStore``, any
        ``AsyncSessionStore``: never one that blocks the event loop); as a variable:
        ``redis://host:port/db``, ``rediss://...``, or ``memory://`` (one process only).
        Required. From the environment: ``SESSIONSHARE_STORE_URL``.
    :param key: Shared secret(s), newest first, from ``python -m sessionshare keygen``.
        Required. From the environment: ``SESSIONSHARE_SYNC_KEY``.
    :param app_url: This app's public origin, e.g. ``https://shop.example``. Required. From
        the environment: ``SESSIONSHARE_APP_URL``.
    :param idp_url: The IdP's full login URL, e.g. ``https://id.example/login``. Required.
        From the environment: ``SESSIONSHARE_IDP_URL``.
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
    :param callback_path: The remote path that receives the token (the IdP accepts callbacks
        to allow-listed hosts at this path). Default ``"/_sessionshare/callback"``. From the
        environment: ``SESSIONSHARE_CALLBACK_PATH``.
    :param logout_path: POST here to sign out everywhere. Default
        ``"/_sessionshare/logout"``. From the environment: ``SESSIONSHARE_LOGOUT_PATH``.
    :param logout_redirect: Where the browser goes after signing out: a local path or an
        http(s) URL. Default ``"/"``.
    :param protect: Which paths need a sign-in: ``True`` (all), ``False``, a list of path
        prefixes, or ``predicate(scope) -> bool``. Default ``True``.
    :param passive: Passive sign-in check on public pages (``True``, or path prefixes): a
        browser with no session is sent through the IdP once, with no login form, and comes
        back signed in or told it is not. Default ``False``.
    :param passive_ttl: Seconds a browser found not signed in by the passive check is not
        checked again. Default ``300``. From the environment: ``SESSIONSHARE_PASSIVE_TTL``.
    :param max_auth_age: Step-up: seconds since the sign-in past which a protected path
        sends the user to the IdP to enter the password again (a number for every protected
        path, or path prefix -> seconds; the longest prefix wins); unset: any sign-in will
        do. Default ``None``.
    :param state_ttl: Seconds a started sign-in may take (at most a day: the IdP guards the
        sign-in's state that long). Default ``600``.
    :param state_cookie_name: Prefix of the per-login state cookies. Default
        ``"sessionshare_state"``.
    :param token_leeway: Seconds of clock skew tolerated on a token. Default ``5.0``.
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

    _role = "remote"

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: AsyncSessionStore | MemoryStore,
        key: SyncKey | str,
        app_url: str,
        idp_url: str,
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
        callback_path: str = DEFAULT_CALLBACK_PATH,
        logout_path: str = "/_sessionshare/logout",
        logout_redirect: str = "/",
        protect: Protect = True,
        passive: bool | Sequence[str] = False,
        passive_ttl: int = 5 * 60,
        max_auth_age: int | Mapping[str, int] | None = None,
        state_ttl: int = 10 * 60,
        state_cookie_name: str = "sessionshare_state",
        token_leeway: float = float(CLOCK_LEEWAY),
        websocket_origins: Sequence[str] = (),
        on_event: EventHook | None = None,
        quiet_startup: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Every argument by name, checked against the declaration at once, so one
        # error lists every mistake (idp_url, paths and lifetimes included).
        check_options("remote", locals(), shell="asgi")
        side = RemoteSide(
            key=key, app_url=app_url, idp_url=idp_url, user_key=user_key,
            token_ttl=token_ttl, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
            max_remember=max_remember,
            cookie_name=cookie_name, cookie_secure=cookie_secure, allow_insecure=allow_insecure,
            cookie_samesite=cookie_samesite, cookie_domain=cookie_domain,
            key_prefix=key_prefix, max_session_bytes=max_session_bytes,
            callback_path=callback_path, logout_path=logout_path,
            logout_redirect=logout_redirect, protect=protect, passive=passive,
            passive_ttl=passive_ttl, max_auth_age=max_auth_age, state_ttl=state_ttl,
            state_cookie_name=state_cookie_name, token_leeway=token_leeway,
            websocket_origins=websocket_origins,
            on_event=on_event, quiet_startup=quiet_startup, clock=clock,
        )
        super().__init__(app, store=store, side=side)
        self.side: RemoteSide = side
