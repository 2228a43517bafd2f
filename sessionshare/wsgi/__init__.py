"""The WSGI shell: the protocol of :mod:`sessionshare.core` around any WSGI app.

:class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware` are
re-exported from the package top level too (``from sessionshare import
RemoteSessionMiddleware``). The modules:

- ``base.py`` -- the one shell class both middlewares are: it calls its
  side's ``on_request``, ``on_response`` (before the status line reaches the
  server) and ``on_close`` (when the body closes) in order;
- ``idp.py`` / ``remote.py`` -- the two middlewares: documented, typed
  constructors that build their side of the protocol, nothing per request;
- ``environ.py`` -- the environ turned into a request, a reply sent back.
"""

from __future__ import annotations

from .base import SessionMiddleware as SessionMiddleware
from .idp import IdpAuthMiddleware as IdpAuthMiddleware
from .remote import RemoteSessionMiddleware as RemoteSessionMiddleware

__all__ = ["IdpAuthMiddleware", "RemoteSessionMiddleware", "SessionMiddleware"]
