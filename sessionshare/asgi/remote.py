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

from typing import TYPE_CHECKING

from ..core.options import AsyncRemoteOptions
from ..core.remote import RemoteSide
from .base import SessionMiddleware
from .scope import ASGIApp

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["RemoteSessionMiddleware"]


class RemoteSessionMiddleware(SessionMiddleware):
    """Adopts the IdP's shared session for this app, through a one-time token.

    :param app: The ASGI application to wrap.
    """

    side_class = RemoteSide
    side: RemoteSide

    def __init__(self, app: ASGIApp, **options: Unpack[AsyncRemoteOptions]) -> None:
        self._build(app, options)
