"""Session stores: the :class:`SessionStore` protocol and its backends.

``MemoryStore`` lives in one process (tests, the demo); ``RedisStore`` is the
shared default, and ``AsyncRedisStore`` its asyncio twin (same keys, same
scripts) for ASGI apps. Import cost stays low: redis-py is imported only when
a Redis store is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import AsyncSessionStore as AsyncSessionStore
from .base import SessionRecord as SessionRecord
from .base import SessionStore as SessionStore
from .memory import MemoryStore as MemoryStore

if TYPE_CHECKING:
    from .asyncredis import AsyncRedisStore as AsyncRedisStore
    from .redis import RedisStore as RedisStore

__all__ = [
    "AsyncRedisStore", "AsyncSessionStore", "MemoryStore", "RedisStore", "SessionRecord",
    "SessionStore",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    if name == "AsyncRedisStore":
        from .asyncredis import AsyncRedisStore

        return AsyncRedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
