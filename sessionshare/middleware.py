"""What the IdP and remote middlewares have in common.

Both wrap a WSGI app around one shared session: they build a
:class:`~sessionshare.manager.SessionManager` from the same cookie and
timeout options, publish the session and ``REMOTE_USER``, answer a store
outage with 503 (failing closed), and sign the user out everywhere on a POST
to the logout path. Only their own protocol steps live in ``idp.py`` and
``remote.py``.

Single logout is a POST on purpose: with ``SameSite=Lax`` cookies a
cross-site POST carries no session cookie, so a third-party page cannot log
the user out; a GET of the logout path only shows a page with the button.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .core.options import Role, SameSite, read_environ
from .core.reply import Reply
from .crypto import SyncKey, canonical_origin
from .errors import ConfigurationError, StoreUnavailable
from .manager import SessionManager
from .session import Session
from .store.base import SessionStore
from .web import CookieSpec, safe_return_path, send_reply, wants_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SessionMiddleware"]

log = logging.getLogger("sessionshare")
_M = TypeVar("_M", bound="SessionMiddleware")


class SessionMiddleware:
    """Base of :class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware`.

    The subclasses document every argument and check them all against
    :data:`sessionshare.core.options.OPTIONS` before calling this, so a bad
    configuration is reported whole, once, naming each option.
    """

    _role: ClassVar[Role]

    def __init__(
        self,
        app: WSGIApplication,
        *,
        store: SessionStore,
        key: SyncKey | str,
        app_url: str,
        user_key: str = "user",
        token_ttl: int = 60,
        logout_path: str = "/_sessionshare/logout",
        logout_redirect: str = "/",
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 8 * 60 * 60,
        cookie_name: str = "sessionshare",
        cookie_secure: bool = True,
        cookie_samesite: SameSite = "Lax",
        cookie_domain: str | None = None,
        key_prefix: str = "sessionshare:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.key = SyncKey.parse(key) if isinstance(key, str) else key
        self.origin = canonical_origin(app_url)
        self.user_key = user_key
        self.token_ttl = int(token_ttl)
        self.logout_path = logout_path
        if safe_return_path(logout_redirect, default="") != logout_redirect:
            canonical_origin(logout_redirect, setting="logout_redirect")
        self.logout_redirect = logout_redirect
        self.clock = clock
        self.manager = SessionManager(
            store,
            cookie=CookieSpec(
                cookie_name, secure=cookie_secure, samesite=cookie_samesite, domain=cookie_domain
            ),
            idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout,
            key_prefix=key_prefix,
            clock=clock,
        )
        log.info(
            "sessionshare %s started origin=%s key_fingerprint=%s",
            self._role, self.origin, self.key.fingerprint,
        )

    @classmethod
    def from_env(
        cls: type[_M],
        app: WSGIApplication,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> _M:
        """Build from ``SESSIONSHARE_*`` variables (``os.environ`` unless ``environ``).

        Keyword ``overrides`` are constructor arguments that win over the
        variables. One :class:`ConfigurationError` names every variable to fix;
        the variables are listed in :mod:`sessionshare.core.options`.
        """
        values, problems = read_environ(cls._role, environ, overrides)
        if problems:
            raise ConfigurationError("; ".join(problems))
        return cls(app, **values, **overrides)

    # -- shared steps ------------------------------------------------------
    def user_of(self, session: Session) -> Any:
        """The signed-in user, or None (loads the session: one round trip)."""
        return session.get(self.user_key)

    def publish_user(self, environ: WSGIEnvironment, user: Any) -> None:
        """Set ``REMOTE_USER``, the WSGI convention frameworks already read."""
        if user is not None:
            environ["REMOTE_USER"] = user if isinstance(user, str) else json.dumps(user)

    def store_unavailable(
        self, environ: WSGIEnvironment, start_response: StartResponse, exc: StoreUnavailable
    ) -> Iterable[bytes]:
        # Fail closed: never serve the app without knowing who the user is.
        # repr() and a cap: the path is the client's text, which must not forge log lines.
        path = str(environ.get("PATH_INFO", ""))[:200]
        log.error("store_unavailable error=%s path=%r", exc, path)
        reply = Reply.store_unavailable(as_json=wants_json(environ))
        return send_reply(environ, start_response, reply)

    def logout(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """POST: end the shared session everywhere. GET/HEAD: a page with the button."""
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD"):
            return send_reply(environ, start_response, Reply.logout_form(self.logout_path))
        if method != "POST":
            refusal = Reply.error(
                405, "bad_method", "Sign out with a POST.",
                as_json=wants_json(environ), headers=[("Allow", "GET, HEAD, POST")],
            )
            return send_reply(environ, start_response, refusal)
        session = self.manager.open(environ)
        had_session = session.had_cookie
        session.invalidate()
        headers = self.manager.persist(session)
        if had_session:
            log.info("logout origin=%s", self.origin)
        return send_reply(
            environ, start_response, Reply.redirect(self.logout_redirect, headers=headers)
        )
