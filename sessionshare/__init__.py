"""sessionshare: one login, one server-side session, many WSGI and ASGI apps on different domains.

An identity-provider app wrapped in :class:`IdpAuthMiddleware` signs users
in; every remote app wrapped in :class:`RemoteSessionMiddleware` adopts the
same server-side session through a short redirect hop carrying a sealed,
single-use token. Apps keep ordinary cookie sessions and read the shared
session at ``environ["sessionshare.session"]`` and the user at
``environ["REMOTE_USER"]``. :mod:`sessionshare.asgi` has the same two
middlewares for ASGI apps (FastAPI, Starlette), over ``AsyncRedisStore``.

    from sessionshare import RemoteSessionMiddleware, RedisStore
    app.wsgi_app = RemoteSessionMiddleware(
        app.wsgi_app, store=RedisStore.from_url("redis://127.0.0.1:6379/0"),
        key=os.environ["SESSIONSHARE_SYNC_KEY"],
        app_url="https://shop.example", idp_url="https://id.example/login",
    )
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .admin import AsyncSessionAdmin as AsyncSessionAdmin
from .admin import SessionAdmin as SessionAdmin
from .core.session import Session as Session
from .crypto import AllowList as AllowList
from .crypto import SyncKey as SyncKey
from .errors import CallbackRejected as CallbackRejected
from .errors import ConfigurationError as ConfigurationError
from .errors import SessionEnded as SessionEnded
from .errors import SessionShareError as SessionShareError
from .errors import SessionTooLarge as SessionTooLarge
from .errors import StoreUnavailable as StoreUnavailable
from .errors import TokenRejected as TokenRejected
from .store import MemoryStore as MemoryStore
from .store import SessionStore as SessionStore
from .wsgi.idp import IdpAuthMiddleware as IdpAuthMiddleware
from .wsgi.remote import RemoteSessionMiddleware as RemoteSessionMiddleware

if TYPE_CHECKING:
    from .store.asyncredis import AsyncRedisStore as AsyncRedisStore
    from .store.redis import RedisStore as RedisStore

__all__ = [
    "AllowList",
    "AsyncRedisStore",
    "AsyncSessionAdmin",
    "CallbackRejected",
    "ConfigurationError",
    "IdpAuthMiddleware",
    "MemoryStore",
    "RedisStore",
    "RemoteSessionMiddleware",
    "Session",
    "SessionAdmin",
    "SessionEnded",
    "SessionShareError",
    "SessionTooLarge",
    "SessionStore",
    "StoreUnavailable",
    "SyncKey",
    "TokenRejected",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Through sessionshare.store, on first use (PEP 562): redis-py is for the apps that use it.
    if name in ("RedisStore", "AsyncRedisStore"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
