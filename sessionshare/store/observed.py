"""A store that reports each call it makes: the seam for metrics and traces.

:class:`ObservedStore` (and :class:`AsyncObservedStore`, for an asyncio
store) wraps any store and runs each command inside ``watch(command)``, a
context manager the caller supplies -- a latency timer, a tracing span. It
is a store like any other, so the middlewares take it where they take the
store, and nothing in the protocol or the shells knows it is there: an app
that does not wrap its store pays nothing at all.

    watched = ObservedStore(RedisStore.from_url(url), lambda command: timer(command))
    IdpAuthMiddleware(app, store=watched, ...)

``watch`` is given the command's name only (``load``, ``save``, ...), never
its arguments: they are store keys, tickets and session data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from .base import AsyncSessionStore, SessionStore

__all__ = ["COMMANDS", "AsyncObservedStore", "ObservedStore", "Watch", "observed"]

#: ``watch(command)``: a context manager around one store command.
Watch = Callable[[str], AbstractContextManager[object]]

#: The store commands that are watched (``close`` is not: it talks to no server).
COMMANDS = (
    "load", "save", "mark", "move", "delete", "claim_state", "take_ticket",
    "store_identity", "peek", "index_put", "index_read", "index_drop", "ping",
)


def _watched(command: str) -> Any:
    def call(self: ObservedStore, *args: Any, **kwargs: Any) -> Any:
        with self.watch(command):
            return getattr(self.store, command)(*args, **kwargs)

    call.__name__ = call.__qualname__ = command
    call.__doc__ = f"The wrapped store's ``{command}``, inside ``watch({command!r})``."
    return call


def _awaited(command: str) -> Any:
    async def call(self: AsyncObservedStore, *args: Any, **kwargs: Any) -> Any:
        with self.watch(command):
            return await getattr(self.store, command)(*args, **kwargs)

    call.__name__ = call.__qualname__ = command
    call.__doc__ = f"The wrapped store's ``{command}``, awaited inside ``watch({command!r})``."
    return call


class ObservedStore:
    """A :class:`~sessionshare.store.base.SessionStore` that runs each command in ``watch``.

    :param store: the store to wrap (its records, its connections).
    :param watch: called with the command's name; the context manager it returns
        is entered around the call (an exception from the store passes through it).
    """

    def __init__(self, store: SessionStore, watch: Watch) -> None:
        self.store = store
        self.watch = watch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    load = _watched("load")
    save = _watched("save")
    mark = _watched("mark")
    move = _watched("move")
    delete = _watched("delete")
    claim_state = _watched("claim_state")
    take_ticket = _watched("take_ticket")
    store_identity = _watched("store_identity")
    peek = _watched("peek")
    index_put = _watched("index_put")
    index_read = _watched("index_read")
    index_drop = _watched("index_drop")
    ping = _watched("ping")

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()

    def __getattr__(self, name: str) -> Any:
        # What a store offers beyond the contract (RedisStore.client, the index scan an
        # operator's count uses) is the wrapped store's, unwatched.
        if name.startswith("__") or name in ("store", "watch"):
            raise AttributeError(name)
        return getattr(self.store, name)


class AsyncObservedStore:
    """:class:`ObservedStore` for an asyncio store: each command awaited inside ``watch``."""

    def __init__(self, store: AsyncSessionStore, watch: Watch) -> None:
        self.store = store
        self.watch = watch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    load = _awaited("load")
    save = _awaited("save")
    mark = _awaited("mark")
    move = _awaited("move")
    delete = _awaited("delete")
    claim_state = _awaited("claim_state")
    take_ticket = _awaited("take_ticket")
    store_identity = _awaited("store_identity")
    peek = _awaited("peek")
    index_put = _awaited("index_put")
    index_read = _awaited("index_read")
    index_drop = _awaited("index_drop")
    ping = _awaited("ping")

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.store.close()


def observed(store: SessionStore | AsyncSessionStore, watch: Watch) -> Any:
    """``store`` wrapped in the twin that fits it: asyncio or thread."""
    if inspect.iscoroutinefunction(getattr(store, "load", None)):
        return AsyncObservedStore(store, watch)  # type: ignore[arg-type]
    return ObservedStore(store, watch)  # type: ignore[arg-type]
