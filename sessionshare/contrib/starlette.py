"""Starlette and FastAPI: the shared session's user as ``request.user``, or as a dependency.

The ASGI middlewares (:mod:`sessionshare.asgi`) already give every request
the shared session at ``scope["session"]`` -- Starlette's ``request.session``,
a ``dict`` as Starlette's is (``JSONResponse({"session": request.session})``,
``|=``, ``popitem()``; emptied, it ends and its cookie goes), so code that
uses it (Authlib's Starlette client keeps its OAuth state there) keeps
working -- and the signed-in user at ``scope["sessionshare.user"]``.
This module adds the two ways Starlette and FastAPI apps ask for a user:

- :class:`SharedSessionBackend`, an ``AuthenticationBackend`` for Starlette's
  ``AuthenticationMiddleware``: ``request.user`` is a :class:`SharedUser`
  (``is_authenticated``, ``display_name``) and ``request.auth.scopes`` holds
  ``"authenticated"`` -- so ``@requires("authenticated")`` works;
- :func:`current_user`, a FastAPI dependency returning the user, or answering
  **401** (a websocket: closed with 1008) when nobody is signed in here. It is
  for paths the middleware does not protect, where signing in is optional
  (an API's ``/me``); a protected path never reaches the app without a user.

    from fastapi import Depends, FastAPI
    from sessionshare.contrib.starlette import current_user

    app = FastAPI()

    @app.get("/me")
    def me(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user}

    app.add_middleware(RemoteSessionMiddleware, ...)  # sessionshare.asgi

The middleware goes outside (added last with ``add_middleware``, listed first
in ``middleware=[...]``): it must run first. Both refuse a request that did not
pass through it (a ``RuntimeError`` saying so) rather than treat a signed-in
user as anonymous. Starlette's own ``SessionMiddleware`` must not be stacked
with it -- both own ``scope["session"]``.
"""

from __future__ import annotations

from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

from ..asgi.base import SCOPE_USER, WS_REFUSED
from ..core.side import Side

__all__ = ["SharedSessionBackend", "SharedUser", "current_user"]


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
