"""The ASGI shell: the protocol of :mod:`sessionshare.core` around any ASGI 3 app.

FastAPI, Starlette, Quart, Litestar or a bare ASGI callable: the same
middlewares as :mod:`sessionshare.wsgi`, taking the same arguments, over an
asyncio store (``AsyncRedisStore``, or ``MemoryStore``), so a WSGI app and an
ASGI app share one login and one session. ``base.py`` is the one shell class
both middlewares are (the session read before the app runs, then the side's
``on_request``, ``on_response`` before ``http.response.start`` and
``on_close`` before the last body message); ``idp.py`` and ``remote.py`` are
the two middlewares; ``scope.py`` turns the scope into a request and sends a
reply back.

    app = RemoteSessionMiddleware(app, store=AsyncRedisStore.from_url(url), key=key,
                                  app_url="https://news.example",
                                  idp_url="https://id.example/login")
"""

from __future__ import annotations

from .base import SCOPE_SESSION as SCOPE_SESSION
from .base import SCOPE_USER as SCOPE_USER
from .base import WS_REFUSED as WS_REFUSED
from .base import WS_UNAVAILABLE as WS_UNAVAILABLE
from .base import SessionMiddleware as SessionMiddleware
from .idp import IdpAuthMiddleware as IdpAuthMiddleware
from .remote import RemoteSessionMiddleware as RemoteSessionMiddleware

__all__ = [
    "SCOPE_SESSION",
    "SCOPE_USER",
    "WS_REFUSED",
    "WS_UNAVAILABLE",
    "IdpAuthMiddleware",
    "RemoteSessionMiddleware",
    "SessionMiddleware",
]
