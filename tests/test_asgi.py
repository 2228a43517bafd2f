"""What only the ASGI shell has: eager reads, ``send`` interception, websockets, lifespan.

The protocol itself -- hand-off, rejections, logout, the security corpus --
is tested where it is decided, on the core's sides driven by hand
(tests/coreflow.py), and each of its flows runs end to end under both shells
in tests/test_handoff.py, tests/test_core_*.py and tests/security/ (the
``shell`` fixture). Here, in process through httpx's
``ASGITransport`` and Starlette's ``TestClient``, on MemoryStore and real Redis:

- the session is read before the app runs when this app's cookie is there
  (one store round trip for an authenticated request, as counted on Redis),
  never without one;
- the session is persisted before ``http.response.start`` reaches the server;
  changes while the body streams before its last message;
- the IdP's 303 replaces the app's answer and drops the rest of its messages;
- a websocket on a protected path is refused with 1008 without a signed-in
  session, served with one; a store outage closes it with 1013; lifespan
  passes through;
- a blocking call on the event loop fails loudly;
- thread stores are refused at construction, and ``from_env`` builds asyncio stores.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgibridge import WsgiToAsgi, await_on_loop
from conftest import FakeClock, genuine_cookie
from flow import (
    BLOG,
    IDP,
    LOGIN,
    SHOP,
    Browser,
    Deployment,
    asgi_idp_app,
    asgi_remote_app,
    async_twin,
)
from noblock import BlockingCall
from servers import RedisServer, async_counting_client
from starlette.requests import Request as StarletteRequest

from sessionshare import (
    AsyncRedisStore,
    ConfigurationError,
    MemoryStore,
    RedisStore,
    Session,
    SessionStore,
    SyncKey,
    asgi,
)
from sessionshare.asgi.scope import request_of
from sessionshare.store.amemory import AsyncMemoryStore


def _cookie_header(browser: Browser, host: str) -> str:
    return "; ".join(f"{k}={v}" for k, v in browser.apps[host].cookies.items())


def _get(app: Any, path: str, **headers: str) -> httpx.Response:
    """One request through httpx, on the loop the deployments' stores belong to."""

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=SHOP) as client:
            return await client.get(path, headers=headers)

    return await_on_loop(main())


class CountingStore(AsyncMemoryStore):
    """An AsyncMemoryStore that records each call (each is one round trip on Redis)."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.calls: list[str] = []

    async def load(self, key: str, idle_ttl: int) -> Any:
        self.calls.append("load")
        return await super().load(key, idle_ttl)

    async def save(self, key: str, **kwargs: Any) -> bool:
        self.calls.append("save")
        return await super().save(key, **kwargs)


# -- reading: eagerly, and only with a cookie ------------------------------------------------


def test_the_session_is_read_once_with_a_cookie_and_never_without(clock: FakeClock) -> None:
    memory = MemoryStore(clock=clock)
    counting = CountingStore(memory)
    dep = Deployment(memory, clock, shell="asgi", async_store=counting)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    cookie = _cookie_header(browser, "shop.test")

    counting.calls.clear()
    page = _get(dep.shop, "/orders", cookie=cookie, accept="text/html")
    assert page.status_code == 200 and page.json()["user"] == "alice"
    assert counting.calls == ["load"]  # an authenticated read: one round trip, no write back
    assert page.headers["vary"] == "Cookie"

    counting.calls.clear()
    public = _get(dep.shop, "/public", cookie=cookie)
    assert counting.calls == ["load"]  # a cookie is read before the app runs, on any path...
    assert public.json()["user"] == "alice"  # ...so a public path knows the user too

    counting.calls.clear()
    assert _get(dep.shop, "/public").status_code == 200
    assert _get(dep.shop, "/orders").status_code == 401
    assert counting.calls == []  # no cookie: nothing to read, nothing read


def test_an_authenticated_asgi_request_is_one_redis_round_trip(redis_url: str,
                                                               clock: FakeClock) -> None:
    client, counts = async_counting_client(redis_url)
    store = AsyncRedisStore(client)
    assert store.uses_fast_path
    dep = Deployment(RedisStore.from_url(redis_url), clock, shell="asgi", async_store=store)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    login_url = browser.start_login(BLOG + "/x")  # no store access: no cookie at the blog
    before = counts["round_trips"]
    from_idp = browser.get(login_url)
    back = browser.get(from_idp.location)
    assert back.status_int == 303
    handoff = counts["round_trips"] - before
    assert handoff <= 4  # the WSGI bound (tests/test_handoff.py), on the asyncio store
    before = counts["round_trips"]
    assert browser.get(BLOG + back.location).json["user"] == "alice"
    assert counts["round_trips"] - before == 1
    before = counts["round_trips"]
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert counts["round_trips"] - before == 1
    print(f"asgi round trips: hand-off {handoff}, authenticated read 1")
    await_on_loop(store.close())


# -- writing: before the status line, late changes by the core's rule ------------------------


def _sign_in(dep: Deployment) -> tuple[str, str]:
    """Sign in at the shop: its ``Cookie`` header, and the store key of the session."""
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    return _cookie_header(browser, "shop.test"), browser.store_key("shop.test")


def test_the_write_is_stored_before_the_status_line_goes_out(
    store: SessionStore, clock: FakeClock
) -> None:
    dep = Deployment(store, clock, shell="asgi")
    cookie, key = _sign_in(dep)
    seen_at_start: list[Any] = []

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # What another app would read now: the write must already be there.
                seen_at_start.append(await dep.shop.store.load(key, 60))

        scope = {"type": "http", "method": "GET", "path": "/write", "root_path": "",
                 "query_string": b"cart=teapot", "headers": [(b"cookie", cookie.encode())]}
        await dep.shop(scope, receive, send)

    await_on_loop(main())
    assert seen_at_start and seen_at_start[0].fields["cart"] == '"teapot"'


def test_changes_while_the_body_streams_are_stored_before_its_end(clock: FakeClock) -> None:
    memory = MemoryStore(clock=clock)

    async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] != "/stream":
            await asgi_remote_app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one ", "more_body": True})
        scope["session"]["cart"] = ["late"]  # the headers are out: a late change
        await send({"type": "http.response.body", "body": b"two"})

    dep = Deployment(memory, clock, shell="asgi", remote=streaming)
    cookie, key = _sign_in(dep)
    response = _get(dep.shop, "/stream", cookie=cookie)
    assert response.text == "one two"
    record = memory.sessions()[key]
    assert record.fields["cart"] == '["late"]'


def test_the_idps_303_replaces_the_answer_and_drops_the_rest(clock: FakeClock) -> None:
    memory = MemoryStore(clock=clock)
    sent_after: list[str] = []

    async def idp(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "POST":
            scope["session"]["user"] = "alice"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"set-cookie", b"csrf=1; Path=/")]})
            for chunk in (b"a", b"b"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent_after.append(chunk.decode())
            await send({"type": "http.response.body", "body": b"end"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"login form"})

    dep = Deployment(memory, clock, shell="asgi", idp=idp)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    assert browser.get(login_url).text == "login form"
    answer = browser.post(login_url, {"username": "alice"})
    assert answer.status_int == 303 and answer.location.startswith(SHOP + "/_sessionshare/")
    assert answer.body == b""  # not a byte of the app's body
    assert "csrf=1; Path=/" in answer.headers.getall("Set-Cookie")  # its own cookie rides along
    assert sent_after == ["a", "b"]  # the app ran to its end; its messages went nowhere


def test_a_store_outage_is_503_with_retry_after(clock: FakeClock) -> None:
    with RedisServer() as server:
        store = AsyncRedisStore.from_url(server.url, socket_timeout=0.5)
        middleware = asgi.RemoteSessionMiddleware(
            asgi_remote_app, store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
            cookie_secure=False, clock=clock, protect=["/orders"],
        )
        server.stop()
        response = _get(middleware, "/orders", cookie=genuine_cookie(middleware),
                        accept="application/json")
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
        assert response.json()["error"] == "store_unavailable"
        anonymous = _get(middleware, "/public")  # no cookie, public: no store needed
        assert anonymous.status_code == 200
        server.start()
        assert _get(middleware, "/orders", cookie=genuine_cookie(middleware),
                    accept="application/json").status_code == 401  # it recovered by itself
        await_on_loop(store.close())


def test_head_replies_have_no_body_and_bad_input_is_4xx(clock: FakeClock) -> None:
    dep = Deployment(MemoryStore(clock=clock), clock, shell="asgi")

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=dep.shop)
        async with httpx.AsyncClient(transport=transport, base_url=SHOP) as client:
            return [
                await client.head("/orders", headers={"accept": "text/html"}),
                await client.get("/_sessionshare/callback?token=%ff%fe"),
                await client.get("/_sessionshare/callback?token=a&token=b"),
                await client.get("/orders", headers={"cookie": "sessionshare=\x7f;;=;"}),
            ]

    head, bad_token, two_tokens, garbage = await_on_loop(main())
    assert head.status_code == 302 and head.content == b""
    assert 400 <= bad_token.status_code < 500 and 400 <= two_tokens.status_code < 500
    assert garbage.status_code == 401


# -- no blocking call on the event loop ------------------------------------------------------


def test_a_blocking_call_on_the_loop_fails_loudly(redis_url: str, clock: FakeClock) -> None:
    """The control for every ASGI test through tests/asgibridge.py: its loop is guarded.

    A store that hides redis-py's blocking client behind coroutines passes the
    construction check, so only the guard can catch it -- and it does, as a
    failed request, not a slow one.
    """
    thread_store = RedisStore.from_url(redis_url)

    class Disguised(AsyncMemoryStore):
        async def load(self, key: str, idle_ttl: int) -> Any:
            return thread_store.load(key, idle_ttl)  # blocks the loop on a socket

    memory = MemoryStore(clock=clock)
    dep = Deployment(memory, clock, shell="asgi", async_store=Disguised(memory))
    cookie = genuine_cookie(dep.shop)
    with pytest.raises(BlockingCall, match="would block the event loop"):
        WsgiToAsgi(dep.shop)({"REQUEST_METHOD": "GET", "PATH_INFO": "/orders",
                              "HTTP_COOKIE": cookie}, lambda *a: None)
    thread_store.close()


# -- stores and configuration ------------------------------------------------------------------


def _remote(store: Any) -> asgi.RemoteSessionMiddleware:
    return asgi.RemoteSessionMiddleware(asgi_remote_app, store=store, key=SyncKey.generate(),
                                        app_url=SHOP, idp_url=LOGIN, cookie_secure=False)


def test_a_thread_store_is_refused_and_memory_is_awaited(redis_url: str) -> None:
    thread_store = RedisStore.from_url(redis_url)
    with pytest.raises(ConfigurationError, match="block the event loop.*AsyncRedisStore"):
        _remote(thread_store)
    thread_store.close()
    assert isinstance(_remote(MemoryStore()).store, AsyncMemoryStore)
    from sessionshare import RemoteSessionMiddleware

    with pytest.raises(ConfigurationError, match="asyncio store, for the ASGI middlewares"):
        RemoteSessionMiddleware(lambda e, s: [], store=AsyncRedisStore.from_url(redis_url),
                                key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
                                cookie_secure=False)


def test_from_env_builds_asyncio_stores(redis_url: str) -> None:
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": redis_url,
           "SESSIONSHARE_APP_URL": "https://news.example",
           "SESSIONSHARE_IDP_URL": "https://id.example/login", "SESSIONSHARE_IDLE_TIMEOUT": "600"}
    remote = asgi.RemoteSessionMiddleware.from_env(asgi_remote_app, env)
    assert isinstance(remote.store, AsyncRedisStore) and remote.lifecycle.idle_timeout == 600
    idp = asgi.IdpAuthMiddleware.from_env(asgi_remote_app, {
        **env, "SESSIONSHARE_APP_URL": "https://id.example", "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "news.example"})
    assert isinstance(idp.store, AsyncMemoryStore)
    with pytest.raises(ConfigurationError, match="SESSIONSHARE_IDLE_TIMEOUT"):
        asgi.RemoteSessionMiddleware.from_env(
            asgi_remote_app, {**env, "SESSIONSHARE_IDLE_TIMEOUT": "-1"})


# -- websockets and lifespan ---------------------------------------------------------------------


def _websocket(app: Any, path: str, cookie: str | None = None, origin: str | None = SHOP
               ) -> list[dict[str, Any]]:
    """Open a websocket to ``app`` as a server would, from a page of ``origin`` (a browser
    always sends it; None: a client that sends none); the messages it sent back."""
    headers = [(b"cookie", cookie.encode())] if cookie else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "websocket", "path": path, "root_path": "", "query_string": b"",
             "headers": headers, "scheme": "ws", "subprotocols": []}
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        inbox.put_nowait({"type": "websocket.connect"})

        async def receive() -> dict[str, Any]:
            return await inbox.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "websocket.close":
                inbox.put_nowait({"type": "websocket.disconnect", "code": message["code"]})

        await asyncio.wait_for(app(scope, receive, send), 5)

    await_on_loop(main())
    return sent


def _ws_app() -> Callable[..., Any]:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.scope["sessionshare.user"],
                                   "keys": sorted(websocket.session)})
        websocket.session["seen"] = True  # a late change: kept, no cookie needed
        await websocket.close()

    return Starlette(routes=[WebSocketRoute("/orders/live", echo),
                             WebSocketRoute("/public/live", echo)])


def _sent_json(messages: list[dict[str, Any]]) -> Any:
    assert messages[0] == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    return json.loads(messages[1]["text"])


def test_websockets_need_a_signed_in_session_on_protected_paths(clock: FakeClock) -> None:
    memory = MemoryStore(clock=clock)
    dep = Deployment(memory, clock, shell="asgi", remote=_ws_app())
    cookie, key = _sign_in(dep)
    refused = _websocket(dep.shop, "/orders/live")
    # Closed before it was accepted: the server answers the handshake 403.
    assert refused == [{"type": "websocket.close", "code": 1008, "reason": "not_authenticated"}]
    assert asgi.WS_REFUSED == 1008
    # A cookie of no live session is refused the same way, never served anonymously.
    assert _websocket(dep.shop, "/orders/live", genuine_cookie(dep.shop))[0]["code"] == 1008
    assert _sent_json(_websocket(dep.shop, "/orders/live", cookie)) == {
        "user": "alice", "keys": ["user"]}
    assert memory.sessions()[key].fields["seen"] == "true"
    assert _sent_json(_websocket(dep.shop, "/public/live")) == {"user": None, "keys": []}


def _with_sockets(http_app: Any) -> Any:
    """``http_app``, with :func:`_ws_app`'s sockets."""
    sockets = _ws_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await (sockets if scope["type"] == "websocket" else http_app)(scope, receive, send)

    return app


SIBLING = "http://evil.shop.test"  # same-site as shop.test: a Lax cookie goes along


def test_a_websocket_from_another_origin_gets_no_session_and_no_user(
    store: SessionStore, clock: FakeClock
) -> None:
    # Cross-site websocket hijacking: a page of a sibling subdomain opens a socket to the
    # shop with the user's cookie (same-site: SameSite=Lax lets it go along).
    dep = Deployment(store, clock, shell="asgi", remote=_ws_app(),
                     idp=_with_sockets(asgi_idp_app))
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    cookie, key = _cookie_header(browser, "shop.test"), browser.store_key("shop.test")
    idp_cookie = _cookie_header(browser, "id.test")
    for origin in (SIBLING, "http://shop.test:8080", "null", None):
        # A protected path: closed before it is accepted (the server answers 403).
        assert _websocket(dep.shop, "/orders/live", cookie, origin=origin) == [
            {"type": "websocket.close", "code": 1008, "reason": "cross_origin"}], origin
        # Anywhere else: served, but with no user and an empty session of its own...
        assert _sent_json(_websocket(dep.shop, "/public/live", cookie, origin=origin)) == {
            "user": None, "keys": []}, origin
        assert _sent_json(_websocket(dep.idp, "/public/live", idp_cookie, origin=origin)) == {
            "user": None, "keys": []}, origin
    # ...whose writes never reach the user's session.
    record = store.load(key, 60)
    assert record is not None and "seen" not in record.fields
    # The app's own pages still get the user, at the shop and at the IdP.
    assert _sent_json(_websocket(dep.shop, "/orders/live", cookie, origin=SHOP)) == {
        "user": "alice", "keys": ["user"]}
    assert _sent_json(_websocket(dep.idp, "/public/live", idp_cookie, origin=IDP))["user"] == (
        "alice")


def test_websocket_origins_lists_the_other_origins_whose_pages_may_open_sockets(
    store: SessionStore, clock: FakeClock
) -> None:
    dep = Deployment(store, clock, shell="asgi", remote=_ws_app(),
                     remote_options={"websocket_origins": ["https://app.shop.test"]})
    cookie, _ = _sign_in(dep)
    assert _sent_json(_websocket(dep.shop, "/orders/live", cookie,
                                 origin="https://app.shop.test"))["user"] == "alice"
    assert _websocket(dep.shop, "/orders/live", cookie, origin=SIBLING)[0]["code"] == 1008
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": "memory://",
           "SESSIONSHARE_APP_URL": "https://news.example",
           "SESSIONSHARE_IDP_URL": "https://id.example/login",
           "SESSIONSHARE_WEBSOCKET_ORIGINS": "https://live.news.example, https://news.example:8443"}
    remote = asgi.RemoteSessionMiddleware.from_env(asgi_remote_app, env)
    assert remote.side.websocket_origins == frozenset(
        {"https://news.example", "https://live.news.example", "https://news.example:8443"})


def test_a_websocket_during_an_outage_closes_with_1013(clock: FakeClock) -> None:
    with RedisServer() as server:
        store = AsyncRedisStore.from_url(server.url, socket_timeout=0.5)
        middleware = asgi.RemoteSessionMiddleware(
            _ws_app(), store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
            cookie_secure=False, clock=clock,
        )
        server.stop()
        closed = _websocket(middleware, "/orders/live", genuine_cookie(middleware))
        assert closed == [{"type": "websocket.close", "code": 1013, "reason": "store_unavailable"}]
        await_on_loop(store.close())
        assert asgi.WS_UNAVAILABLE == 1013


def test_lifespan_passes_through_untouched() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan" and "session" not in scope
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    middleware = asgi.RemoteSessionMiddleware(
        app, store=MemoryStore(), key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
        cookie_secure=False,
    )
    replies: list[str] = []

    async def main() -> None:
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            replies.append(message["type"])

        await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    await_on_loop(main())
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert replies == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_the_scope_is_copied_not_changed(clock: FakeClock) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = asgi.RemoteSessionMiddleware(app, store=MemoryStore(), key=SyncKey.generate(),
                                              app_url=SHOP, idp_url=LOGIN, cookie_secure=False,
                                              protect=False)
    scope = {"type": "http", "method": "GET", "path": "/x", "root_path": "", "query_string": b"",
             "headers": []}

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            pass

        await middleware(scope, receive, send)

    await_on_loop(main())
    assert "session" not in scope and seen["sessionshare.user"] is None
    assert isinstance(seen["session"], Session)


# -- the path the app routes: root_path off at a segment boundary only -----------------------


@pytest.mark.parametrize(
    ("root", "path", "seen"),
    [("/shop", "/shop/orders", "/orders"), ("/shop", "/shop", ""), ("/shop", "/shop/", "/"),
     ("/shop", "/orders", "/orders"), ("", "/orders", "/orders"),
     # Not at a boundary: the server did not put the root on (a proxy took it off), or a
     # raw target "ping/orders" came after it -- Starlette routes the path as it is.
     ("/shop", "/shopping/orders", "/shopping/orders"), ("/shop", "/shop.html", "/shop.html"),
     ("", "ping/orders", "ping/orders")],
)
def test_root_path_comes_off_only_at_a_segment_boundary(root: str, path: str, seen: str) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": root, "headers": []}
    request = request_of(scope)
    assert request.path == seen and request.root == root


def test_repeated_headers_read_as_wsgi_servers_join_them() -> None:
    # Cookie headers are one jar (HTTP/2 splits them); any other repeated header is joined
    # with ", " as WSGI servers do, so two Origin headers match no single origin in either
    # shell (the last one alone used to be read under ASGI).
    scope = {"type": "websocket", "path": "/live", "root_path": "", "headers": [
        (b"cookie", b"a=1"), (b"cookie", b"b=2"),
        (b"origin", b"https://evil.example"), (b"origin", b"https://shop.example"),
    ]}
    request = request_of(scope)
    assert request.cookies == "a=1; b=2"
    assert request.origin == "https://evil.example, https://shop.example"
    assert not request.origin_is(frozenset({"https://shop.example"}))
    single = request_of({**scope, "headers": [(b"origin", b"https://shop.example")]})
    assert single.origin_is(frozenset({"https://shop.example"}))  # the control


def test_every_header_lands_in_its_own_field() -> None:
    # request_of passes its values by position (the cheaper call on every request): a
    # value in the wrong place -- an Origin read as Sec-Fetch-Site, say -- fails here.
    fields = {"method": "PATCH", "path": "/p", "query": "q=1", "cookies": "c=1",
              "accept": "a/b", "fetch_mode": "cors", "root": "/r",
              "origin": "https://o.example", "fetch_site": "same-site", "purpose": "prefetch",
              "user_agent": "UA/1", "host": "h.example"}
    scope = {"type": "http", "method": "PATCH", "path": "/r/p", "root_path": "/r",
             "query_string": b"q=1", "headers": [
                 (b"cookie", b"c=1"), (b"accept", b"a/b"), (b"sec-fetch-mode", b"cors"),
                 (b"origin", b"https://o.example"), (b"sec-fetch-site", b"same-site"),
                 (b"sec-purpose", b"prefetch"), (b"user-agent", b"UA/1"),
                 (b"host", b"h.example")]}
    request = request_of(scope)
    assert {name: getattr(request, name) for name in fields} == fields
    assert request.native is scope


def test_fastapi_root_path_behind_a_prefix_stripping_proxy_keeps_its_paths_protected(
    store: SessionStore, clock: FakeClock
) -> None:
    # FastAPI(root_path="/shop") behind a proxy that takes /shop off: the app gets
    # /shopping/orders with root_path /shop, and routes /shopping/orders. Taking "/shop"
    # off that left "ping/orders", which protect=["/shopping"] did not match.
    from fastapi import FastAPI

    with warnings.catch_warnings():
        # FastAPI 0.12x+ deprecates the argument (the server's root path is preferred), and
        # deployments still pass it: it must stay safe.
        warnings.filterwarnings("ignore", message=".*root_path.*")
        app = FastAPI(root_path="/shop")

    @app.get("/shopping/orders")
    def orders(request: StarletteRequest) -> dict[str, Any]:
        return {"user": request.scope["sessionshare.user"]}

    app.add_middleware(
        asgi.RemoteSessionMiddleware, store=async_twin(store), key=SyncKey.generate(),
        app_url=SHOP, idp_url=LOGIN, cookie_secure=False, clock=clock, protect=["/shopping"],
        max_auth_age={"/shopping": 60},
    )
    anonymous = _get(app, "/shopping/orders")
    assert anonymous.status_code == 401, anonymous.text  # never served to nobody
    assert anonymous.json()["error"] == "not_authenticated"
    page = _get(app, "/shopping/orders", accept="text/html")
    assert page.status_code == 302 and page.headers["location"].startswith(LOGIN + "?")


def test_starlette_serves_a_path_with_a_final_newline_as_its_route_so_it_is_protected(
    store: SessionStore, clock: FakeClock
) -> None:
    # Starlette matches a route with "^/admin$", and "$" matches before a final newline:
    # GET /admin%0A is the /admin view. The prefix check must see it as /admin too.
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def admin(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"page": "admin", "user": request.scope["sessionshare.user"]})

    app = asgi.RemoteSessionMiddleware(
        Starlette(routes=[Route("/admin", admin)]), store=async_twin(store),
        key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN, cookie_secure=False, clock=clock,
        protect=["/admin"],
    )
    for path in ("/admin", "/admin%0A", "/admin%0a"):
        refused = _get(app, path)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["error"] == "not_authenticated"
    assert _get(app, "/admin%0D").status_code == 404  # no route: the control


@pytest.mark.parametrize("role", ["idp", "remote"])
def test_a_user_in_the_scope_that_the_middleware_did_not_set_is_not_passed_on(
    clock: FakeClock, role: str
) -> None:
    # A server, or an outer middleware, that put its own user in the scope: the app sees
    # the middleware's (nobody here), for HTTP and websockets alike.
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["sessionshare.user"])
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    common: dict[str, Any] = {"store": MemoryStore(), "key": SyncKey.generate(),
                              "cookie_secure": False, "clock": clock}
    middleware: Any = (
        asgi.IdpAuthMiddleware(app, app_url=SHOP, known_remote_hosts=[BLOG], **common)
        if role == "idp" else
        asgi.RemoteSessionMiddleware(app, app_url=SHOP, idp_url=LOGIN, protect=False, **common)
    )

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            pass

        await middleware({"type": "http", "method": "GET", "path": "/x", "root_path": "",
                          "query_string": b"", "headers": [], "sessionshare.user": "admin"},
                         receive, send)

    await_on_loop(main())
    _websocket(middleware, "/x")
    assert seen == [None, None]
