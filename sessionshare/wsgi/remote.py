"""A remote app's WSGI middleware: :class:`RemoteSessionMiddleware`.

Wrap any app that should share the IdP's login. Unknown visitors to a
protected path are sent to the IdP (browsers) or answered 401 (API calls),
and the IdP's token is checked and redeemed at the callback path -- all
decided in :mod:`sessionshare.core.remote`. This class only builds that side
from its arguments and runs it through the WSGI shell
(:mod:`sessionshare.wsgi.base`).

    app.wsgi_app = RemoteSessionMiddleware(
        app.wsgi_app, store=RedisStore.from_url(url), key=sync_key,
        app_url="https://shop.example", idp_url="https://id.example/login",
        protect=["/account/", "/orders"],
    )
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.options import RemoteOptions
from ..core.remote import RemoteSide
from .base import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from typing_extensions import Unpack

__all__ = ["RemoteSessionMiddleware"]


class RemoteSessionMiddleware(SessionMiddleware):
    """Adopts the IdP's shared session for this app, through a one-time token.

    :param app: The WSGI application to wrap.
    """

    side_class = RemoteSide
    side: RemoteSide

    def __init__(self, app: WSGIApplication, **options: Unpack[RemoteOptions]) -> None:
        self._build(app, options)
