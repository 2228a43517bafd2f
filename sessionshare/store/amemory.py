"""``MemoryStore`` for asyncio: the same records, awaited.

The in-process :class:`~sessionshare.store.memory.MemoryStore` never waits on
anything but its own lock, held for a dict operation, so it can be awaited as
it is: :class:`AsyncMemoryStore` wraps one and shares its records (a WSGI app
and an ASGI app in one process share sessions through it).

    store = MemoryStore()  # the ASGI middleware wraps it in an AsyncMemoryStore itself
    wsgi_app = RemoteSessionMiddleware(flask_app.wsgi_app, store=store, ...)
    asgi_app = sessionshare.asgi.RemoteSessionMiddleware(fastapi_app, store=store, ...)
"""

from __future__ import annotations

from typing import Any

from .base import OPERATIONS, forwarding
from .memory import MemoryStore

__all__ = ["AsyncMemoryStore"]


def _at_once(command: str) -> Any:
    async def call(self: AsyncMemoryStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.store, command)(*args, **kwargs)

    call.__doc__ = f"The memory store's ``{command}``, as a coroutine."
    return call


@forwarding(_at_once, (*OPERATIONS, "close"))
class AsyncMemoryStore:
    """The :class:`~sessionshare.store.base.AsyncSessionStore` face of a ``MemoryStore``.

    :param store: the records to share; a new ``MemoryStore`` when omitted.
    """

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = MemoryStore() if store is None else store

    def __repr__(self) -> str:
        return f"AsyncMemoryStore({self.store!r})"

    def __getattr__(self, name: str) -> Any:
        # A memory store method beyond the contract (the inspection helpers, the index
        # scan an operator's count uses) is awaited the same way.
        method = getattr(self.store, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)
        return _at_once(name).__get__(self)
