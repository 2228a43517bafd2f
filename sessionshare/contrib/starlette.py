"""Starlette and FastAPI: Starlette's ``SessionMiddleware`` swapped for the shared session,
and its user as ``request.user`` or as a dependency.

The ASGI middlewares (:mod:`sessionshare.asgi`) already give every request
the shared session at ``scope["session"]`` -- Starlette's ``request.session``,
a ``dict`` as Starlette's is, so code that uses it (Authlib's Starlette client
keeps its OAuth state there) keeps working -- and the signed-in user at
``scope["sessionshare.user"]``. This module adds:

- :class:`SessionMiddleware`, the remote middleware under the name and
  signature of Starlette's own: an app that used Starlette's swaps one import
  and adds sessionshare's settings;
- :class:`SharedSessionBackend`, for Starlette's ``AuthenticationMiddleware``:
  ``request.user`` is a :class:`SharedUser`, so ``@requires("authenticated")``
  works;
- :func:`current_user`, a FastAPI dependency returning the user, or answering
  **401** (a websocket: closed with 1008) when nobody is signed in here: for
  the paths the middleware does not protect, where signing in is optional.

    # was: from starlette.middleware.sessions import SessionMiddleware
    from sessionshare.contrib.starlette import SessionMiddleware, current_user

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="...", max_age=3600,  # Starlette's
                       store=store, key=sync_key, app_url="https://news.example",
                       idp_url="https://id.example/login", protect=["/account/"])

    @app.get("/me")
    def me(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user}

The middleware goes outside (added last with ``add_middleware``, listed first
in ``middleware=[...]``): it must run first. The backend and the dependency
refuse a request that did not pass through it (a ``RuntimeError`` saying so)
rather than treat a signed-in user as anonymous. Starlette's own
``SessionMiddleware`` must not be stacked with it: both own ``scope["session"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.datastructures import Secret
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

from ..asgi.base import SCOPE_USER, WS_REFUSED
from ..asgi.remote import RemoteSessionMiddleware
from ..asgi.scope import ASGIApp
from ..core.options import AsyncRemoteOptions
from ..core.side import Side
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["STARLETTE_SPELLING", "SessionMiddleware", "SharedSessionBackend", "SharedUser",
           "current_user", "starlette_cookie_options"]

#: How Starlette writes its session cookie's attribute names (``path=/; httponly;
#: samesite=``, ``Max-Age`` as the RFC does): the spelling the drop-in asks of the core.
STARLETTE_SPELLING: Mapping[str, str] = {
    "Expires": "expires", "Domain": "domain", "Path": "path", "Secure": "secure",
    "HttpOnly": "httponly", "SameSite": "samesite", "Partitioned": "partitioned",
}
#: Starlette's parameter -> the sessionshare option it becomes (either name, never both).
_STARLETTE_NAMES = {"session_cookie": "cookie_name", "max_age": "cookie_max_age",
                    "path": "cookie_path", "same_site": "cookie_samesite",
                    "https_only": "cookie_secure", "domain": "cookie_domain",
                    "partitioned": "cookie_partitioned"}


def starlette_cookie_options(
    *,
    session_cookie: str,
    max_age: int | None,
    path: str,
    same_site: str,
    https_only: bool,
    domain: str | None,
    partitioned: bool,
    app_url: object,
) -> dict[str, Any]:
    """Starlette's cookie parameters as sessionshare's options (see :class:`SessionMiddleware`).

    ``max_age`` counts from the last change (``cookie_refresh=False``): Starlette
    re-sends its cookie only when the session changed. A ``same_site`` Starlette
    does not take is a :class:`~sessionshare.ConfigurationError` naming it.
    """
    if not isinstance(same_site, str) or same_site.lower() not in ("lax", "strict", "none"):
        raise ConfigurationError(
            f"same_site must be 'lax', 'strict' or 'none' (Starlette's spelling), not "
            f"{same_site!r}")
    https = isinstance(app_url, str) and app_url.lower().startswith("https:")
    return {"cookie_name": session_cookie, "cookie_max_age": max_age, "cookie_refresh": False,
            "cookie_path": path, "cookie_samesite": same_site.lower().capitalize(),
            "cookie_secure": bool(https_only) or https, "cookie_domain": domain,
            "cookie_partitioned": partitioned, "cookie_spelling": STARLETTE_SPELLING}


class SessionMiddleware(RemoteSessionMiddleware):
    """Starlette's ``SessionMiddleware``, its signature and defaults, over the shared session.

    An :class:`sessionshare.asgi.RemoteSessionMiddleware` (``store``, ``key``,
    ``app_url`` and ``idp_url`` are required, ``protect`` is ``True`` unless given)
    whose session cookie is described by Starlette's parameters, with Starlette's
    defaults, and written as Starlette writes it (``path=/; httponly; samesite=Lax``).

    :param app: The ASGI application to wrap.
    :param secret_key: Taken so that swapping the import is the only change, and
        not used: the cookie holds a random session id, not signed data; what
        crosses apps is signed with ``key``, the deployment's shared key.
    :param session_cookie: The cookie's name (``cookie_name``).
    :param max_age: Seconds the cookie lasts from the session's last change
        (``cookie_max_age``; 0 or less: already expired); ``None``: a
        browser-session cookie. The shared session's own idle and absolute
        limits still end it sooner for every app.
    :param path: The cookie's path (``cookie_path``).
    :param same_site: ``"lax"``, ``"strict"`` or ``"none"`` (``cookie_samesite``).
    :param https_only: A ``Secure`` cookie (``cookie_secure``); on an https
        ``app_url`` the cookie is ``Secure`` whatever this says: the shared
        session's credential never travels in clear.
    :param domain: The cookie's domain (``cookie_domain``).
    :param partitioned: A ``Partitioned`` cookie (``cookie_partitioned``).

    sessionshare's own names for these (``cookie_name``, ``cookie_max_age``...)
    are refused here, so that one setting never has two values; the options
    Starlette has no parameter for (``cookie_httponly``, ``cookie_refresh``,
    ``cookie_spelling``) may be given.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Secret | None = None,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # Starlette's default: two weeks
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        **options: Unpack[AsyncRemoteOptions],
    ) -> None:
        twice = sorted(f"{theirs} (not {ours})" for theirs, ours in _STARLETTE_NAMES.items()
                       if ours in options)
        if twice:
            raise ConfigurationError(
                "SessionMiddleware takes Starlette's names for the session cookie: pass "
                + ", ".join(twice))
        cookie = starlette_cookie_options(
            session_cookie=session_cookie, max_age=max_age, path=path, same_site=same_site,
            https_only=https_only, domain=domain, partitioned=partitioned,
            app_url=options.get("app_url"))
        self._build(app, {**cookie, **options})


class SharedUser(SimpleUser):
    """A user signed in through the shared session.

    ``username`` (and ``display_name``) is the user as text -- ``REMOTE_USER``'s
    form: the stored value itself when it is a string, else its JSON -- and
    :attr:`value` the value ``session[user_key]`` holds (a dict, say).
    """

    def __init__(self, value: Any) -> None:
        super().__init__(Side.remote_user(value) or "")
        #: What ``session[user_key]`` holds.
        self.value = value


class SharedSessionBackend(AuthenticationBackend):
    """``request.user`` from the shared session, for Starlette's ``AuthenticationMiddleware``.

    :param scopes: the credentials' scopes for a signed-in user.
    """

    def __init__(self, scopes: tuple[str, ...] = ("authenticated",)) -> None:
        self.scopes = list(scopes)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SharedUser] | None:
        user = _user_in(conn.scope, "SharedSessionBackend (AuthenticationMiddleware)")
        if user is None:
            return None  # Starlette makes it an UnauthenticatedUser
        return AuthCredentials(self.scopes), SharedUser(user)


def current_user(connection: HTTPConnection) -> Any:
    """FastAPI dependency: the signed-in user (``session[user_key]``), else 401.

    The user is the stored value (a string for most apps). Over a websocket
    the refusal is a close with code 1008, as the middleware's own.
    """
    user = _user_in(connection.scope, "current_user")
    if user is not None:
        return user
    if connection.scope["type"] == "websocket":
        raise WebSocketException(code=WS_REFUSED, reason="not_authenticated")
    raise HTTPException(
        status_code=401, detail="not_authenticated: sign in first",
        headers={"Cache-Control": "no-store"},
    )


def _user_in(scope: Any, reader: str) -> Any:
    """The user the middleware published, or None; a request it never saw is refused:
    answering it as anonymous would give a signed-in user a silent 401 or 403."""
    if SCOPE_USER not in scope:
        raise RuntimeError(
            f"{reader} found no sessionshare middleware in front of it: "
            "sessionshare.asgi.RemoteSessionMiddleware (or IdpAuthMiddleware) must run "
            "first -- add it last with add_middleware, or list it first in "
            "middleware=[...], before AuthenticationMiddleware"
        )
    return scope[SCOPE_USER]
