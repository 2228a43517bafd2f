"""ASGI plumbing around the app's answer: the side's ``on_response`` before
``http.response.start`` goes on, its ``on_close`` before the last body message.

The twin of ``wsgi/response.py``. An ASGI app answers through ``send``, so
:class:`Exchange` hands the app its own ``send``: the first
``http.response.start`` waits for the session to be persisted (the next
request, often the redirect that follows a login, must see the write) and
gets the headers the core answers with; the final body message waits for the
late persist of what changed while the body streamed. What to write, which
cookie to send, whether the IdP replaces the answer: decided in the core's
side, which this module only runs on the asyncio store.

    exchange = Exchange(side, store, send, request, session, passed)
    await app(scope, receive, exchange.send)
    await exchange.finish()
"""

from __future__ import annotations

from ..core.reply import Reply
from ..core.request import Request
from ..core.session import Session
from ..core.side import PassThrough, Side
from ..core.steps import run_async
from ..errors import StoreUnavailable
from ..store.base import AsyncSessionStore
from .scope import Message, Send, encode_headers, header_text, send_reply

__all__ = ["Exchange", "close_late"]

_FINAL_BODY = ("http.response.body", "http.response.pathsend")


class Exchange:
    """One HTTP request's way out through ASGI: the ``send`` the app gets."""

    __slots__ = ("passed", "replaced", "request", "server_send", "session", "side",
                 "started", "store")

    def __init__(
        self,
        side: Side,
        store: AsyncSessionStore,
        send: Send,
        request: Request,
        session: Session,
        passed: PassThrough,
    ) -> None:
        self.side = side
        self.store = store
        self.server_send = send
        self.request = request
        self.session = session
        self.passed = passed
        self.started = False
        #: The side's Reply went out in place of the app's answer: the rest goes nowhere.
        self.replaced = False

    async def send(self, message: Message) -> None:
        """The ``send`` the app calls: persist before the answer starts and before it ends."""
        if self.replaced:
            return
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.started = True
            side = self.side
            try:
                app_headers = (header_text(message.get("headers") or ())
                               if side.reads_app_headers else [])
                answer = side.on_response(self.request, self.session, self.passed, app_headers)
                if not isinstance(answer, (Reply, list)):
                    answer = await run_async(answer, self.store)  # the store work it asked
            except StoreUnavailable as exc:
                answer = side.unavailable(self.request, exc)
            if isinstance(answer, Reply):
                self.replaced = True
                await send_reply(self.server_send, answer, head=self.request.method == "HEAD")
                return
            if answer:
                message = {
                    **message,
                    "headers": [*(message.get("headers") or ()), *encode_headers(answer)],
                }
        elif kind in _FINAL_BODY and self.started and not message.get("more_body", False):
            # The last of the body: what changed while it streamed is stored before
            # the client can see the response end (and ask for the next page).
            await close_late(self.side, self.store, self.session)
        await self.server_send(message)

    async def finish(self) -> None:
        """The app returned: a change made after its body (a background task) is stored."""
        if self.started and not self.replaced:
            await close_late(self.side, self.store, self.session)


async def close_late(side: Side, store: AsyncSessionStore, session: Session) -> None:
    """The side's ``on_close``, run on ``store`` (a late store failure is the side's to
    report: nothing can answer any more)."""
    closing = side.on_close(session)
    if not isinstance(closing, list):
        await run_async(closing, store)
