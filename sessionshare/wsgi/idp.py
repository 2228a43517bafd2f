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

from typing import TYPE_CHECKING

from ..core.idp import IdpSide
from ..core.options import IdpOptions
from .base import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from typing_extensions import Unpack

__all__ = ["IdpAuthMiddleware"]


class IdpAuthMiddleware(SessionMiddleware):
    """Signs users in once and hands their session to allow-listed remote apps.

    :param app: The WSGI application to wrap: the IdP app with the login form.
    """

    side_class = IdpSide
    side: IdpSide

    def __init__(self, app: WSGIApplication, **options: Unpack[IdpOptions]) -> None:
        self._build(app, options)
