"""The IdP's ASGI middleware: :class:`IdpAuthMiddleware`.

The WSGI :class:`sessionshare.IdpAuthMiddleware` (its decisions are
:mod:`sessionshare.core.idp`'s) run through the ASGI shell
(:mod:`sessionshare.asgi.base`): the very arguments, with an asyncio store.

    app.add_middleware(  # FastAPI / Starlette; or IdpAuthMiddleware(app, ...) for any ASGI app
        IdpAuthMiddleware, store=AsyncRedisStore.from_url(url), key=sync_key,
        app_url="https://id.example", known_remote_hosts=["shop.example", "blog.example"],
    )
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.idp import IdpSide
from ..core.options import AsyncIdpOptions
from .base import SessionMiddleware
from .scope import ASGIApp

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["IdpAuthMiddleware"]


class IdpAuthMiddleware(SessionMiddleware):
    """Signs users in once and hands their session to allow-listed remote apps.

    :param app: The ASGI application to wrap: the IdP app with the login form.
    """

    side_class = IdpSide
    side: IdpSide

    def __init__(self, app: ASGIApp, **options: Unpack[AsyncIdpOptions]) -> None:
        self._build(app, options)
