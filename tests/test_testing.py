"""sessionshare.testing: a test client signed in for one test, through the real write path.

The examples' own views are tested this way: the Pyramid shop, the WSGI blog
and the Flask IdP, each with the client its framework's tests use, and the
FastAPI news site (ASGI) with httpx and Starlette's ``TestClient``, on memory
and real Redis. A client that did not sign in is still sent to the IdP: the
helper switches nothing off.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import webtest
from flow import BLOG, IDP, LOGIN, SHOP, asgi_idp_app, idp_app, remote_app

import sessionshare.testing
from sessionshare import (
    AsyncRedisStore,
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SessionAdmin,
    SessionStore,
    SyncKey,
    asgi,
)
from sessionshare.store.observed import ObservedStore
from sessionshare.testing import (
    sign_in,
    sign_in_async,
    signed_in_cookie,
    signed_in_cookie_async,
)

NEWS = "http://news.test"

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _common(store: SessionStore, clock: Callable[[], float]) -> dict[str, Any]:
    return {"store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock}


def test_the_pyramid_shop_shows_the_signed_in_users_cart(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    shop = _example("shop_pyramid").create_app(app_url=SHOP, idp_url=LOGIN,
                                               **_common(store, clock))
    signed_out = webtest.TestApp(shop)
    assert signed_out.get("/orders", headers={"Accept": "text/html"}, status=302)
    client = webtest.TestApp(shop)
    sign_in(client, shop, "alice", allow_shared_store=True, cart=["teapot"])
    page = client.get("/orders")
    assert page.status_int == 200
    assert page.html.find(id="user").text == "alice"
    assert page.html.find(id="cart").text == "teapot"


def test_the_wsgi_blog_counts_visits_in_the_shared_session(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **_common(store, clock))
    client = webtest.TestApp(blog)
    sign_in(client, blog, {"id": 7, "name": "Al"}, allow_shared_store=True, blog_visits=41)
    page = client.get("/")
    assert '"name": "Al"' in page.html.find(id="user").text
    assert "visit number 42" in page.text


def test_the_wsgi_blogs_about_page_is_public_and_greets_a_signed_in_user(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **_common(store, clock))
    guest = webtest.TestApp(blog)
    page = guest.get("/about", headers={"Accept": "text/html"})  # passive is off: no bounce
    assert page.status_int == 200 and page.html.find(id="sign-in")["href"] == "/"
    assert guest.get("/", headers={"Accept": "text/html"}, status=302)  # the rest: protected
    # With passive on, the public page knows a signed-in user (the demo's setting).
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, passive=True,
                                            **_common(store, clock))
    client = webtest.TestApp(blog)
    sign_in(client, blog, "alice", allow_shared_store=True)
    page = client.get("/about", headers={"Accept": "text/html"})
    assert page.html.find(id="user").text == "alice" and page.html.find(id="sign-in") is None


def test_the_flask_idp_knows_the_user_through_flasks_test_client(
    store: SessionStore, clock: Callable[[], float], sessionshare_sign_in: Callable[..., None]
) -> None:
    idp = _example("idp_flask").create_app(app_url=IDP, known_remote_hosts=[SHOP],
                                           **_common(store, clock))
    client = idp.test_client()
    assert b"alice" not in client.get("/").data
    sessionshare_sign_in(client, idp.wsgi_app, "alice", allow_shared_store=True)  # the same
    assert b"alice" in client.get("/").data


def test_a_remote_session_made_for_one_app_is_not_valid_at_another(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # The helper makes a real session: this app's own cookie value, joined by this app.
    common = _common(store, clock)
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **common)
    shop = _example("shop_pyramid").create_app(app_url=SHOP, idp_url=LOGIN, **common)
    name, value = signed_in_cookie(blog, "alice", allow_shared_store=True)
    client = webtest.TestApp(shop)
    client.set_cookie(name, value)
    assert client.get("/orders", headers={"Accept": "text/html"}).status_int == 302


def test_anything_but_the_middleware_or_a_known_client_is_refused_clearly(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **_common(store, clock))
    with pytest.raises(ConfigurationError, match="middleware"):
        signed_in_cookie(object(), "alice")
    with pytest.raises(TypeError, match="signed_in_cookie"):
        sign_in(object(), blog, "alice")


# -- ASGI: the FastAPI news site, through httpx and Starlette's TestClient -------------


def _news(store: Any, clock: Callable[[], float]) -> Any:
    return _example("news_fastapi").create_app(app_url=NEWS, idp_url=LOGIN,
                                               **_common(store, clock))


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_the_fastapi_news_site_knows_the_signed_in_user_through_httpx(
    kind: str, request: pytest.FixtureRequest, clock: Callable[[], float],
    sessionshare_sign_in_async: Callable[..., Any],
) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""

    async def main() -> None:
        store: Any = AsyncRedisStore.from_url(url) if url else MemoryStore(clock=clock)
        news = _news(store, clock)
        transport = httpx.ASGITransport(app=news)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=NEWS) as signed_out:
                assert (await signed_out.get("/api/me")).status_code == 401
            async with httpx.AsyncClient(transport=transport, base_url=NEWS) as client:
                # The fixture is this module's function (the worktree's, not an installed one).
                assert sessionshare_sign_in_async is sign_in_async
                await sessionshare_sign_in_async(client, news, "alice", cart=["teapot"],
                                                 allow_shared_store=True)
                me = (await client.get("/api/me")).json()
                assert me == {"user": "alice", "cart": ["teapot"], "read": 0}
                assert (await client.post("/api/headlines/read")).json() == {"read": 1}
                assert (await client.get("/api/me")).json()["read"] == 1  # written, and kept
                page = await client.get("/", headers={"Accept": "text/html"})
                assert page.status_code == 200 and "<b id=user>alice</b>" in page.text
                # Set for the app's host: the logout's Set-Cookie removes it from the jar.
                out = await client.post("/_sessionshare/logout", headers={"Origin": NEWS})
                assert out.status_code == 303 and not client.cookies.jar
                assert (await client.get("/api/me")).status_code == 401
        finally:
            if url:
                await store.close()

    asyncio.run(main())


def test_the_plain_function_serves_an_asgi_app_over_a_memory_store(
    clock: Callable[[], float]
) -> None:
    news = _news(MemoryStore(clock=clock), clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=news), base_url=NEWS)
    sign_in(client, news, {"id": 7}, cart=[1, 2])  # no event loop needed: memory never waits

    async def main() -> dict[str, Any]:
        async with client:
            return (await client.get("/api/me")).json()  # type: ignore[no-any-return]

    assert asyncio.run(main()) == {"user": {"id": 7}, "cart": [1, 2], "read": 0}


def test_starlettes_test_client_is_signed_in_too(clock: Callable[[], float]) -> None:
    with warnings.catch_warnings():
        # Starlette 1.10 asks for httpx2 instead of httpx, once, as the module loads.
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    news = _news(MemoryStore(clock=clock), clock)
    with TestClient(news, base_url=NEWS) as client:
        assert client.get("/api/me").status_code == 401
        sign_in(client, news, "alice")
        assert client.get("/api/me").json()["user"] == "alice"


def test_the_asgi_idp_knows_the_signed_in_user(clock: Callable[[], float]) -> None:
    idp = asgi.IdpAuthMiddleware(asgi_idp_app, app_url=IDP, known_remote_hosts=[SHOP],
                                 **_common(MemoryStore(clock=clock), clock))

    async def main() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=idp)
        async with httpx.AsyncClient(transport=transport, base_url=IDP) as client:
            before = (await client.get("/")).text
            await sign_in_async(client, idp, "alice")
            return before, (await client.get("/")).text

    assert asyncio.run(main()) == ("idp home user=None", "idp home user=alice")


def test_an_asgi_session_made_for_one_app_is_not_valid_at_another(
    clock: Callable[[], float]
) -> None:
    common = _common(MemoryStore(clock=clock), clock)
    news = _example("news_fastapi").create_app(app_url=NEWS, idp_url=LOGIN, **common)
    other = _example("news_fastapi").create_app(app_url=SHOP, idp_url=LOGIN, **common)
    name, value = signed_in_cookie(news, "alice")

    async def main() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other),
                                     base_url=SHOP, cookies={name: value}) as client:
            return (await client.get("/api/me")).status_code

    assert asyncio.run(main()) == 401


def test_an_asyncio_store_is_refused_by_the_plain_function_with_the_way_out(
    redis_url: str, clock: Callable[[], float]
) -> None:
    async def main() -> tuple[str, str]:
        store = AsyncRedisStore.from_url(redis_url)
        try:
            news = _news(store, clock)
            with pytest.raises(ConfigurationError, match="signed_in_cookie_async"):
                signed_in_cookie(news, "alice")
            return await signed_in_cookie_async(news, "alice", allow_shared_store=True)
        finally:
            await store.close()

    name, _ = asyncio.run(main())
    assert name == "sessionshare"


def test_an_unknown_client_is_refused_before_anything_is_stored(
    clock: Callable[[], float]
) -> None:
    store = MemoryStore(clock=clock)
    news = _news(store, clock)
    with pytest.raises(TypeError, match="signed_in_cookie"):
        asyncio.run(sign_in_async(object(), news, "alice"))
    with pytest.raises(ConfigurationError, match="middleware"):
        asyncio.run(signed_in_cookie_async(object(), "alice"))
    assert not store.sessions()


def test_a_helpers_session_is_indexed_like_a_real_sign_in(clock: Callable[[], float]) -> None:
    # Issue 23, finding 8: sessions the helpers made skipped the user's index: 'sessions
    # list' did not show them, 'revoke --all' ended none, max_sessions_per_user ignored them.
    store = MemoryStore(clock=clock)
    common = _common(store, clock)
    idp = IdpAuthMiddleware(idp_app, app_url=IDP, known_remote_hosts=[BLOG],
                            max_sessions_per_user=1, **common)
    blog = RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN, **common)
    admin = SessionAdmin(store, common["key"], clock=clock)
    at_blog = webtest.TestApp(blog, extra_environ={"HTTP_HOST": "blog.test"})
    sign_in(at_blog, blog, "alice")
    (info,) = admin.sessions("alice")
    assert info.user_agent == sessionshare.testing.USER_AGENT and info.apps == (BLOG,)
    at_idp = webtest.TestApp(idp, extra_environ={"HTTP_HOST": "id.test"})
    sign_in(at_idp, idp, "alice")  # past the IdP's cap of one: the oldest ends
    assert at_blog.get("/x", headers={"Accept": "text/html"}).status_int == 302
    assert len(admin.sessions("alice")) == 1
    assert admin.revoke_all("alice") == 1
    assert at_idp.get("/").text == "idp home user=None"


def test_a_store_apps_may_share_is_refused_unless_the_test_says_so(
    redis_url: str, clock: Callable[[], float]
) -> None:
    # ...and they wrote into any store, production Redis included.
    store = RedisStore.from_url(redis_url)
    try:
        blog = RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN,
                                       **_common(store, clock))
        client = webtest.TestApp(blog, extra_environ={"HTTP_HOST": "blog.test"})
        with pytest.raises(ConfigurationError, match="allow_shared_store=True"):
            sign_in(client, blog, "alice")
        with pytest.raises(ConfigurationError, match="use MemoryStore"):
            signed_in_cookie(blog, "alice")
        assert store.client.dbsize() == 0  # nothing was written
        sign_in(client, blog, "alice", allow_shared_store=True)  # a test Redis, said so
        assert client.get("/x").json["user"] == "alice"
        # A MemoryStore wrapped for metrics is still a memory store.
        watched = ObservedStore(MemoryStore(clock=clock), lambda command: _null())
        other = RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN,
                                        **_common(watched, clock))  # type: ignore[arg-type]
        signed_in_cookie(other, "alice")
    finally:
        store.close()

    async def in_an_async_test() -> None:
        async_store = AsyncRedisStore.from_url(redis_url)
        try:
            news = _news(async_store, clock)
            with pytest.raises(ConfigurationError, match="allow_shared_store=True"):
                await signed_in_cookie_async(news, "alice")
        finally:
            await async_store.close()

    asyncio.run(in_an_async_test())


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def test_the_fixtures_are_this_packages_functions(
    sessionshare_sign_in: Any, sessionshare_sign_in_async: Any
) -> None:
    assert sessionshare_sign_in is sessionshare.testing.sign_in
    assert sessionshare_sign_in_async is sessionshare.testing.sign_in_async
    assert Path(sessionshare.testing.__file__).parent.parent == EXAMPLES.parent
