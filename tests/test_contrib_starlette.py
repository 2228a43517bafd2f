"""Starlette and FastAPI on the shared session: ``request.session``, ``request.user``,
``@requires``, and the ``current_user`` dependency -- on MemoryStore and real Redis,
through the deployment of tests/flow.py (ASGI shell) and httpx in process.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from asgibridge import await_on_loop
from conftest import FakeClock
from fastapi import Depends, FastAPI, Request
from flow import SHOP, Browser, Deployment
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionshare import SessionStore
from sessionshare.contrib.starlette import SharedSessionBackend, SharedUser, current_user

User = Annotated[Any, Depends(current_user)]


def starlette_app() -> Starlette:
    @requires("authenticated", status_code=401)
    async def orders(request: Any) -> JSONResponse:
        request.session["cart"] = [*request.session.get("cart", []), "mug"]
        user = request.user
        assert isinstance(user, SharedUser)
        return JSONResponse({"user": user.display_name, "value": user.value,
                             "cart": request.session["cart"]})

    async def public(request: Any) -> JSONResponse:
        return JSONResponse({"authenticated": request.user.is_authenticated,
                             "scopes": request.auth.scopes})

    return Starlette(
        routes=[Route("/orders", orders), Route("/public", public)],
        middleware=[Middleware(AuthenticationMiddleware, backend=SharedSessionBackend())],
    )


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    def me(request: Request, user: User) -> dict[str, Any]:
        return {"user": user, "cart": request.session.get("cart", [])}

    return app


def _get(app: Any, path: str, cookie: str = "") -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=SHOP) as client:
            return await client.get(path, headers={"cookie": cookie} if cookie else {})

    return await_on_loop(main())


def _signed_in(dep: Deployment) -> str:
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    return "; ".join(f"{k}={v}" for k, v in browser.apps["shop.test"].cookies.items())


def test_starlette_request_user_and_session(store: SessionStore, clock: FakeClock) -> None:
    dep = Deployment(store, clock, shell="asgi", remote=starlette_app())
    cookie = _signed_in(dep)
    page = _get(dep.shop, "/orders", cookie)  # signing in ended on /orders: one mug already
    assert page.json() == {"user": "alice", "value": "alice", "cart": ["mug", "mug"]}
    assert _get(dep.shop, "/orders", cookie).json()["cart"] == ["mug"] * 3  # stored
    assert _get(dep.shop, "/public", cookie).json() == {
        "authenticated": True, "scopes": ["authenticated"]}
    assert _get(dep.shop, "/public").json() == {"authenticated": False, "scopes": []}


def test_fastapi_dependency_returns_the_user_or_401(store: SessionStore, clock: FakeClock) -> None:
    dep = Deployment(store, clock, shell="asgi", remote=fastapi_app(),
                     remote_options={"protect": ["/orders"]})
    cookie = _signed_in(dep)
    # /me is public here: signing in is optional, the dependency decides.
    assert _get(dep.shop, "/me", cookie).json() == {"user": "alice", "cart": []}
    refused = _get(dep.shop, "/me")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "not_authenticated: sign in first"}
    assert refused.headers["cache-control"] == "no-store"


def test_the_dependency_sees_the_user_on_a_protected_path(clock: FakeClock,
                                                          store: SessionStore) -> None:
    dep = Deployment(store, clock, shell="asgi", remote=fastapi_app(),
                     remote_options={"protect": ["/me"]})
    browser = Browser(dep)
    page = browser.sign_in_at(SHOP + "/me")
    assert page.json == {"user": "alice", "cart": []}


@pytest.mark.parametrize("value", ["alice", {"id": 7, "name": "Al"}])
def test_shared_user_text_is_remote_users(value: Any) -> None:
    user = SharedUser(value)
    assert user.is_authenticated and user.value == value
    assert user.display_name == (value if isinstance(value, str) else '{"id": 7, "name": "Al"}')
