"""A guard that makes any blocking call on an event loop's thread fail loudly.

``no_blocking_calls_on(thread)`` patches the blocking socket calls and
``time.sleep``: made on ``thread`` they raise :class:`BlockingCall` (asyncio's
own sockets are non-blocking and pass). tests/test_store_async.py proves it
catches the thread store; tests/asgibridge.py runs every ASGI request of the
parametrized suites under it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["BlockingCall", "no_blocking_calls_on"]


class BlockingCall(AssertionError):
    pass


@contextlib.contextmanager
def no_blocking_calls_on(thread: threading.Thread) -> Iterator[None]:
    """Any blocking socket call or ``time.sleep`` on ``thread`` raises BlockingCall."""
    patched: list[tuple[Any, str, Any]] = []

    def guard(owner: Any, name: str, is_blocking: Callable[..., bool]) -> None:
        original = getattr(owner, name)

        def checked(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is thread and is_blocking(*args):
                if isinstance(args[0], socket.socket):
                    args[0].close()  # the caller never gets to close it
                raise BlockingCall(f"{name} would block the event loop")
            return original(*args, **kwargs)

        setattr(owner, name, checked)
        patched.append((owner, name, original))

    def blocking_socket(sock: socket.socket, *_: Any) -> bool:
        return sock.gettimeout() != 0.0  # asyncio's own sockets are non-blocking

    for name in ("recv", "recv_into", "send", "sendall", "connect"):
        guard(socket.socket, name, blocking_socket)
    guard(time, "sleep", lambda *_: True)
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
