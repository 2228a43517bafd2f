"""A remote app's ASGI middleware: :class:`RemoteSessionMiddleware`.

The WSGI :class:`sessionshare.RemoteSessionMiddleware` (its decisions are
:mod:`sessionshare.core.remote`'s) run through the ASGI shell
(:mod:`sessionshare.asgi.base`): the very arguments, with an asyncio store.
The app reads the session at ``scope["session"]`` (Starlette's
``request.session``) and the user at ``scope["sessionshare.user"]``.

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
