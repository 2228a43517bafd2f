"""Session stores: the :class:`SessionStore` protocol and its two backends.

``MemoryStore`` lives in one process (tests, the demo); ``RedisStore`` is the
shared default. Import cost stays low: redis-py is imported only when
``RedisStore`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import SessionRecord as SessionRecord
from .base import SessionStore as SessionStore
from .memory import MemoryStore as MemoryStore

if TYPE_CHECKING:
    from .redis import RedisStore as RedisStore

__all__ = ["MemoryStore", "RedisStore", "SessionRecord", "SessionStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
