"""``MemoryStore`` for asyncio: the same records, awaited.

An ASGI app must not make a blocking call on its event loop, so the ASGI
middlewares only take stores whose methods are coroutines. The in-process
:class:`~sessionshare.store.memory.MemoryStore` never waits on anything but
its own lock, held for a dict operation, so it can be awaited as it is:
:class:`AsyncMemoryStore` wraps one and shares its records -- a WSGI app and
an ASGI app in one process (the demo) share sessions through it.

    store = MemoryStore()
    wsgi_app = RemoteSessionMiddleware(flask_app.wsgi_app, store=store, ...)
    asgi_app = sessionshare.asgi.RemoteSessionMiddleware(fastapi_app, store=store, ...)
    # the ASGI middleware wraps the same store in an AsyncMemoryStore itself
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .base import SessionRecord
from .memory import MemoryStore

__all__ = ["AsyncMemoryStore"]


class AsyncMemoryStore:
    """The :class:`~sessionshare.store.base.AsyncSessionStore` face of a ``MemoryStore``.

    :param store: the records to share; a new ``MemoryStore`` when omitted.
    """

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = MemoryStore() if store is None else store

    def __repr__(self) -> str:
        return f"AsyncMemoryStore({self.store!r})"

    async def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        return self.store.load(key, idle_ttl)

    async def save(
        self,
        key: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str] = (),
        meta: Mapping[str, int] | None = None,
        ttl: int,
        create: bool = False,
    ) -> bool:
        return self.store.save(
            key, changed=changed, deleted=deleted, meta=meta, ttl=ttl, create=create
        )

    async def mark(
        self,
        key: str,
        meta: Mapping[str, int],
        idle_ttl: int,
        once: str | None = None,
        once_ttl: int = 0,
    ) -> SessionRecord | None:
        return self.store.mark(key, meta, idle_ttl, once, once_ttl)

    async def delete(self, key: str) -> None:
        self.store.delete(key)

    async def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        return self.store.take_ticket(key, nonce)

    async def ping(self) -> None:
        self.store.ping()

    async def close(self) -> None:
        self.store.close()

    def __getattr__(self, name: str) -> Any:
        # A store method added to the contract later (MemoryStore gets it first) is
        # awaited the same way, so this twin never lags behind the thread store.
        method = getattr(self.store, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)

        async def awaited(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return awaited
