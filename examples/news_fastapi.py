"""A remote app on FastAPI: the news site. Every page needs a sign-in.

``/`` greets the user the IdP signed in and shows the shared cart (the shop
fills it); ``/api/me`` answers the same as JSON. The ASGI
``RemoteSessionMiddleware`` gives FastAPI the shared session as
``request.session`` and the user through the ``current_user`` dependency
(sessionshare.contrib.starlette); ``/api/headlines/read`` writes to the
shared session like any Starlette app would. ``/live`` is a websocket that
greets the signed-in user: a page of this site may open it; a page of any
other origin -- a sibling subdomain, another port -- is refused before the
socket is accepted (the ``websocket_origins`` option lists more origins).

    app = create_app(store=MemoryStore(), key=..., app_url="http://news.localhost:8003",
                     idp_url="http://idp.localhost:8000/login", cookie_secure=False)
    # uvicorn.run(app, port=8003); without arguments: the SESSIONSHARE_* variables
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse

from sessionshare.asgi import RemoteSessionMiddleware
from sessionshare.contrib.starlette import current_user

#: The signed-in user, or a 401 (the middleware protects every path here, so always a user).
User = Annotated[Any, Depends(current_user)]
HEADLINES = ("Teapots are back", "Kettles, reviewed", "The mug of the year")


def _cart(request: Request) -> list[Any]:
    cart = request.session.get("cart", [])
    return cart if isinstance(cart, list) else []


def news_app() -> FastAPI:
    """The FastAPI app alone (no middleware)."""
    app = FastAPI(title="News", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: User) -> str:
        cart = ", ".join(map(str, _cart(request))) or "empty"
        items = "".join(f"<li>{escape(h)}</li>" for h in HEADLINES)
        return (
            "<!doctype html><title>News</title><h1>News</h1>"
            f"<p>Signed in as <b id=user>{escape(str(user))}</b>. "
            f"Cart: <span id=cart>{escape(cart)}</span></p><ul>{items}</ul>"
            "<form method=post action=/_sessionshare/logout>"
            "<button id=logout>Sign out</button></form>"
        )

    @app.get("/api/me")
    def me(request: Request, user: User) -> dict[str, Any]:
        return {"user": user, "cart": _cart(request), "read": request.session.get("read", 0)}

    @app.post("/api/headlines/read")
    def read(request: Request, user: User) -> dict[str, int]:
        request.session["read"] = int(request.session.get("read", 0)) + 1
        return {"read": request.session["read"]}

    @app.websocket("/live")
    async def live(websocket: WebSocket, user: User) -> None:
        await websocket.accept()
        await websocket.send_json({"user": user, "headlines": list(HEADLINES)})
        await websocket.close()

    return app


def create_app(*, wrap_app: Callable[[Any], Any] | None = None, **options: Any) -> Any:
    """The news site; ``options`` go to RemoteSessionMiddleware (none: SESSIONSHARE_* variables).

    ``wrap_app`` wraps the FastAPI app inside the middleware, where the shared
    session is visible.
    """
    app: Any = news_app()
    if wrap_app is not None:
        app = wrap_app(app)
    if options:
        return RemoteSessionMiddleware(app, **options)
    return RemoteSessionMiddleware.from_env(app)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=8003)
