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
from typing import Any, Generic, TypeVar

from .base import OPERATIONS, AsyncSessionStore, SessionStore, forwarding

__all__ = ["COMMANDS", "AsyncObservedStore", "ObservedStore", "Watch", "observed"]

#: ``watch(command)``: a context manager around one store command.
Watch = Callable[[str], AbstractContextManager[object]]

#: The store commands that are watched (``close`` is not: it talks to no server).
COMMANDS = OPERATIONS

S = TypeVar("S", SessionStore, AsyncSessionStore)


def _watched(command: str) -> Any:
    def call(self: ObservedStore, *args: Any, **kwargs: Any) -> Any:
        with self.watch(command):
            return getattr(self.store, command)(*args, **kwargs)

    call.__doc__ = f"The wrapped store's ``{command}``, inside ``watch({command!r})``."
    return call


def _awaited(command: str) -> Any:
    async def call(self: AsyncObservedStore, *args: Any, **kwargs: Any) -> Any:
        with self.watch(command):
            return await getattr(self.store, command)(*args, **kwargs)

    call.__doc__ = f"The wrapped store's ``{command}``, awaited inside ``watch({command!r})``."
    return call


class _Observed(Generic[S]):
    def __init__(self, store: S, watch: Watch) -> None:
        self.store: S = store
        self.watch = watch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    def __getattr__(self, name: str) -> Any:
        # What a store offers beyond the contract (RedisStore.client, the index scan an
        # operator's count uses) is the wrapped store's, unwatched.
        if name.startswith("__") or name in ("store", "watch"):
            raise AttributeError(name)
        return getattr(self.store, name)


@forwarding(_watched)
class ObservedStore(_Observed[SessionStore]):
    """A :class:`~sessionshare.store.base.SessionStore` that runs each command in ``watch``.

    :param store: the store to wrap (its records, its connections).
    :param watch: called with the command's name; the context manager it returns
        is entered around the call (an exception from the store passes through it).
    """

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()


@forwarding(_awaited)
class AsyncObservedStore(_Observed[AsyncSessionStore]):
    """:class:`ObservedStore` for an asyncio store: each command awaited inside ``watch``."""

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.store.close()


def observed(store: SessionStore | AsyncSessionStore, watch: Watch) -> Any:
    """``store`` wrapped in the twin that fits it: asyncio or thread."""
    if inspect.iscoroutinefunction(getattr(store, "load", None)):
        return AsyncObservedStore(store, watch)  # type: ignore[arg-type]
    return ObservedStore(store, watch)  # type: ignore[arg-type]
