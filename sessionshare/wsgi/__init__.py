"""The WSGI shell: the protocol of :mod:`sessionshare.core` around any WSGI app.

``base.py`` is the one shell class both middlewares are: it calls its side's
``on_request``, ``on_response`` (before the status line reaches the server)
and ``on_close`` (when the body closes) in order. ``idp.py`` and ``remote.py``
are the two middlewares (also at the package top level): typed constructors
that build their side, nothing per request. ``environ.py`` turns the environ
into a request and sends a reply back.
"""

from __future__ import annotations

from .base import SessionMiddleware as SessionMiddleware
from .idp import IdpAuthMiddleware as IdpAuthMiddleware
from .remote import RemoteSessionMiddleware as RemoteSessionMiddleware

__all__ = ["IdpAuthMiddleware", "RemoteSessionMiddleware", "SessionMiddleware"]
