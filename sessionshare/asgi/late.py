"""A middleware built inside a running event loop: a refused configuration fails the start.

Starlette and FastAPI build their middleware stack at the first ASGI call (the
lifespan startup). A :class:`~sessionshare.ConfigurationError` raised there
leaves the lifespan call before any message, which uvicorn takes for
"lifespan unsupported": the app starts anyway and every request fails. So a
construction refused *inside a running loop* returns a
:class:`RefusedConfiguration`, which fails the lifespan startup with the error
(uvicorn logs it and exits) and raises it on any call; outside one (built at
import, the usual way) the error is raised at once.

    app = FastAPI()
    app.add_middleware(RemoteSessionMiddleware, store=RedisStore.from_url(url), ...)
    # uvicorn: "store: RedisStore would block the event loop ..." and
    # "Application startup failed. Exiting."
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..errors import ConfigurationError
from .scope import Receive, Scope, Send

__all__ = ["BuiltLate", "RefusedConfiguration"]


class RefusedConfiguration:
    """Stands in for a middleware whose configuration was refused inside a running loop.

    :param name: the middleware class's name, for the message.
    :param error: the refusal, raised on every call.
    """

    def __init__(self, name: str, error: ConfigurationError) -> None:
        self.name = name
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await send({"type": "lifespan.startup.failed",
                            "message": f"sessionshare.asgi.{self.name}: {self.error}"})
        raise self.error


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class BuiltLate(type):
    """The metaclass of the ASGI middlewares (see the module docstring)."""

    @property
    def __signature__(cls) -> inspect.Signature:
        # The constructor's own (help(), the API reference), not __call__'s catch-all.
        init = inspect.signature(cls.__init__)  # type: ignore[misc]
        return init.replace(parameters=list(init.parameters.values())[1:],
                            return_annotation=inspect.Signature.empty)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ConfigurationError as exc:
            if not _in_running_loop():
                raise
            return RefusedConfiguration(cls.__name__, exc)
