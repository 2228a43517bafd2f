"""The WSGI shell: the protocol of :mod:`sessionshare.core` around any WSGI app.

:class:`IdpAuthMiddleware` and :class:`RemoteSessionMiddleware` are
re-exported from the package top level too (``from sessionshare import
RemoteSessionMiddleware``). The modules:

- ``base.py`` -- the one per-request loop both middlewares share;
- ``idp.py`` / ``remote.py`` -- the two middlewares: documented, typed
  constructors that build their side of the protocol;
- ``manager.py`` -- the session around WSGI: lazy load, persist before the
  status line and again on close;
- ``environ.py`` -- the environ turned into a request, a reply sent back.
"""

from __future__ import annotations

from .base import SessionMiddleware as SessionMiddleware
from .idp import IdpAuthMiddleware as IdpAuthMiddleware
from .remote import RemoteSessionMiddleware as RemoteSessionMiddleware

__all__ = ["IdpAuthMiddleware", "RemoteSessionMiddleware", "SessionMiddleware"]
