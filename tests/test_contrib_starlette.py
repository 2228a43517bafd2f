"""Starlette and FastAPI on the shared session: ``request.session``, ``request.user``,
``@requires``, and the ``current_user`` dependency -- on MemoryStore and real Redis,
through the deployment of tests/flow.py (ASGI shell) and httpx in process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from asgibridge import await_on_loop
from conftest import FakeClock
from fastapi import Depends, FastAPI, Request
from flow import LOGIN, SHOP, Browser, Deployment
from servers import free_port
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionshare import (
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SessionStore,
    SyncKey,
    asgi,
)
from sessionshare.contrib.starlette import SharedSessionBackend, SharedUser, current_user

User = Annotated[Any, Depends(current_user)]
REPO = Path(__file__).resolve().parent.parent


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


def dict_session_app() -> Starlette:
    """Views that use request.session the way Starlette's own tests do: as a dict."""

    async def show(request: Any) -> JSONResponse:
        return JSONResponse({"session": request.session})

    async def merge(request: Any) -> JSONResponse:
        session = request.session
        session |= {"b": [2], "c": "3"}
        return JSONResponse({"session": request.session, "last": session.popitem()})

    async def empty(request: Any) -> JSONResponse:
        request.session.clear()
        return JSONResponse({"session": request.session})

    return Starlette(routes=[Route("/orders", show), Route("/merge", merge),
                             Route("/empty", empty)])


def test_request_session_is_the_dict_starlette_hands_out(store: SessionStore,
                                                        clock: FakeClock) -> None:
    dep = Deployment(store, clock, shell="asgi", remote=dict_session_app())
    cookie = _signed_in(dep)
    assert _get(dep.shop, "/orders", cookie).json() == {"session": {"user": "alice"}}
    merged = _get(dep.shop, "/merge", cookie).json()
    assert merged == {"session": {"user": "alice", "b": [2]}, "last": ["c", "3"]}
    assert _get(dep.shop, "/orders", cookie).json() == {"session": {"user": "alice", "b": [2]}}
    # Emptied, it ends -- for every app, as a sign-out -- and its cookie is deleted.
    emptied = _get(dep.shop, "/empty", cookie)
    assert emptied.json() == {"session": {}}
    assert "Max-Age=0" in emptied.headers["set-cookie"]
    assert _get(dep.shop, "/orders", cookie).status_code == 401  # signed out: sign in again


@pytest.mark.parametrize("value", ["alice", {"id": 7, "name": "Al"}])
def test_shared_user_text_is_remote_users(value: Any) -> None:
    user = SharedUser(value)
    assert user.is_authenticated and user.value == value
    assert user.display_name == (value if isinstance(value, str) else '{"id": 7, "name": "Al"}')


# -- the first hour: the wrong middleware, a thread store, the wrong order ---------------------
def _options(**overrides: Any) -> dict[str, Any]:
    return {"store": MemoryStore(), "key": SyncKey.generate(), "app_url": SHOP,
            "idp_url": LOGIN, "cookie_secure": False, **overrides}


def _lifespan_start(app: Any) -> list[dict[str, Any]]:
    """Run an ASGI app's lifespan start as a server does: what it sent, and what it raised."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                      receive, send)
        except ConfigurationError as exc:
            sent.append({"type": "raised", "message": str(exc)})

    await_on_loop(main())
    return sent


def test_the_wsgi_middleware_handed_to_fastapi_says_to_use_sessionshare_asgi() -> None:
    """`from sessionshare import RemoteSessionMiddleware` + `add_middleware`: the first
    request failed with "takes 3 positional arguments but 4 were given"."""
    app = fastapi_app()
    app.add_middleware(RemoteSessionMiddleware, **_options())
    (raised,) = _lifespan_start(app)  # Starlette builds its middleware now
    assert raised["type"] == "raised"
    message = raised["message"]
    assert "WSGI middleware" in message and "sessionshare.asgi.RemoteSessionMiddleware" in message
    # Told at construction, whoever builds it: an ASGI app is not a WSGI app.
    with pytest.raises(ConfigurationError, match="sessionshare.asgi.IdpAuthMiddleware"):
        IdpAuthMiddleware(fastapi_app(), store=MemoryStore(), key=SyncKey.generate(),
                          app_url=SHOP, known_remote_hosts=["blog.test"], cookie_secure=False)


def test_a_thread_store_fails_the_lifespan_startup_not_the_first_request(redis_url: str) -> None:
    """Starlette builds its middleware at the first ASGI call, inside the server's loop:
    a ConfigurationError raised there was taken by uvicorn for "lifespan unsupported",
    and the app started anyway to fail every request."""
    thread_store = RedisStore.from_url(redis_url)
    app = fastapi_app()
    app.add_middleware(asgi.RemoteSessionMiddleware, **_options(store=thread_store))
    sent = _lifespan_start(app)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "would block the event loop" in sent[0]["message"]
    assert "AsyncRedisStore" in sent[0]["message"]
    assert sent[-1]["type"] == "raised"  # and raised, as Starlette's own failed startup does
    # The control: the right store starts.
    good = fastapi_app()
    good.add_middleware(asgi.RemoteSessionMiddleware, **_options())
    assert _lifespan_start(good)[0]["type"] == "lifespan.startup.complete"
    # Built outside a running loop (at import, the usual way), it raises at once, as always.
    with pytest.raises(ConfigurationError, match="would block the event loop"):
        asgi.RemoteSessionMiddleware(fastapi_app(), **_options(store=thread_store))
    thread_store.close()


def test_uvicorn_stops_at_startup_on_a_thread_store(tmp_path: Any, redis_url: str) -> None:
    (tmp_path / "thread_store_app.py").write_text(textwrap.dedent(f"""
        from fastapi import FastAPI
        from sessionshare import RedisStore, SyncKey
        from sessionshare.asgi import RemoteSessionMiddleware

        app = FastAPI()
        app.add_middleware(RemoteSessionMiddleware, store=RedisStore.from_url({redis_url!r}),
                           key=SyncKey.generate(), app_url="http://news.localhost:8003",
                           idp_url="http://idp.localhost:8000/login", cookie_secure=False)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "thread_store_app:app", "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0, done.stderr
    assert "would block the event loop" in done.stderr
    assert "Application startup failed" in done.stderr
    assert "Application startup complete" not in done.stderr


def test_authentication_middleware_before_the_session_is_refused_not_anonymous() -> None:
    """Listed before the session (outside it), the backend found no session: a signed-in
    user silently got 403."""
    inner = starlette_app()
    wrong = Starlette(
        routes=inner.routes,
        middleware=[Middleware(AuthenticationMiddleware, backend=SharedSessionBackend()),
                    Middleware(asgi.RemoteSessionMiddleware, **_options(protect=False))],
    )
    with pytest.raises(RuntimeError) as refused:
        _get(wrong, "/public")
    message = str(refused.value)
    assert "no sessionshare middleware" in message and "AuthenticationMiddleware" in message
    assert "first" in message  # the order to write: the session middleware first
    missing = fastapi_app()  # no middleware at all: the dependency says so too
    with pytest.raises(RuntimeError, match="no sessionshare middleware"):
        _get(missing, "/me")
    # The control: the right order serves a guest (no session yet) as anonymous.
    right = Starlette(
        routes=inner.routes,
        middleware=[Middleware(asgi.RemoteSessionMiddleware, **_options(protect=False)),
                    Middleware(AuthenticationMiddleware, backend=SharedSessionBackend())],
    )
    assert _get(right, "/public").json() == {"authenticated": False, "scopes": []}


# -- the drop-in for Starlette's SessionMiddleware ----------------------------------------------
STARLETTE_DEFAULTS: dict[str, Any] = {
    "session_cookie": "session", "max_age": 14 * 24 * 3600, "path": "/", "same_site": "lax",
    "https_only": False, "domain": None, "partitioned": False}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"cookie_name": "session", "cookie_max_age": 14 * 24 * 3600, "cookie_path": "/",
              "cookie_samesite": "Lax", "cookie_secure": False, "cookie_domain": None,
              "cookie_partitioned": False, "cookie_refresh": False}),
        ({"session_cookie": "s", "max_age": None, "path": "/app", "same_site": "strict",
          "domain": ".example.com", "partitioned": True, "https_only": True},
         {"cookie_name": "s", "cookie_max_age": None, "cookie_path": "/app",
          "cookie_samesite": "Strict", "cookie_domain": ".example.com",
          "cookie_partitioned": True, "cookie_secure": True}),
        ({"max_age": 0, "same_site": "none"}, {"cookie_max_age": 0, "cookie_samesite": "None"}),
        # An https app's cookie is Secure whatever https_only says: the core sends the
        # shared session's credential in clear nowhere.
        ({"app_url": "https://news.example"}, {"cookie_secure": True}),
        ({"app_url": "HTTPS://news.example", "https_only": False}, {"cookie_secure": True}),
    ],
    ids=["starlettes-defaults", "each-parameter", "zero-none", "https-app", "https-any-case"],
)
def test_starlettes_parameters_become_sessionshares_options(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    from sessionshare.contrib.starlette import STARLETTE_SPELLING, starlette_cookie_options

    asked = {**STARLETTE_DEFAULTS, "app_url": SHOP, **given}
    options = starlette_cookie_options(**asked)
    assert {name: options[name] for name in expected} == expected
    assert options["cookie_spelling"] == STARLETTE_SPELLING


def test_an_unknown_same_site_is_refused_in_starlettes_words() -> None:
    from sessionshare.contrib.starlette import starlette_cookie_options

    for wrong in ("sometimes", None, ""):
        with pytest.raises(ConfigurationError, match="same_site must be 'lax', 'strict' or "):
            starlette_cookie_options(**{**STARLETTE_DEFAULTS, "app_url": SHOP,
                                        "same_site": wrong})
    # The control: Starlette writes what it is given, so "Lax" works there and here.
    assert starlette_cookie_options(**{**STARLETTE_DEFAULTS, "app_url": SHOP,
                                       "same_site": "Lax"})["cookie_samesite"] == "Lax"


def test_the_drop_in_refuses_sessionshares_name_for_a_starlette_parameter() -> None:
    from sessionshare.contrib.starlette import SessionMiddleware

    with pytest.raises(ConfigurationError) as twice:
        SessionMiddleware(dict_session_app(), **_options(cookie_name="sid", cookie_max_age=60))
    assert str(twice.value) == ("SessionMiddleware takes Starlette's names for the session "
                                "cookie: pass https_only (not cookie_secure), max_age (not "
                                "cookie_max_age), session_cookie (not cookie_name)")
    # The control: Starlette's names, and the options Starlette has none for, are taken.
    built = SessionMiddleware(dict_session_app(), "unused", session_cookie="sid", max_age=60,
                              store=MemoryStore(), key=SyncKey.generate(), app_url=SHOP,
                              idp_url=LOGIN, cookie_refresh=True)
    assert isinstance(built, asgi.RemoteSessionMiddleware)
    assert built.lifecycle.cookie.name == "sid"


def _drop_in(dep: Deployment, **starlette: Any) -> Any:
    """The deployment's shop served by the drop-in instead (same store, key and clock)."""
    from sessionshare.contrib.starlette import SessionMiddleware

    return SessionMiddleware(dict_session_app(), "unused", **starlette, store=dep.shop.store,
                             key=dep.key, app_url=SHOP, idp_url=LOGIN, protect=["/orders"],
                             clock=dep.clock)


def test_the_drop_in_writes_starlettes_cookie_in_the_middlewares_own_answers(
    store: SessionStore, clock: FakeClock
) -> None:
    # The hand-off's callback and the sign-out answer without the app: the spelling and
    # the attributes Starlette's parameters ask for hold there too, not only on the app's
    # answers.
    dep = Deployment(store, clock, shell="asgi")
    dep.shop = _drop_in(dep, max_age=3600, path="/", domain="shop.test")
    browser = Browser(dep)
    callback = browser.get(browser.token_url_for(SHOP + "/orders"))
    assert callback.status_int == 303
    (set_cookie,) = [value for value in callback.headers.getall("Set-Cookie")
                     if value.startswith("session=")]
    assert re.fullmatch(
        r"session=[^;]+; expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; "
        r"Max-Age=3600; path=/; domain=shop\.test; httponly; samesite=Lax", set_cookie
    ), set_cookie
    assert browser.get(SHOP + "/orders").json == {"session": {"user": "alice"}}
    out = browser.post(SHOP + "/_sessionshare/logout")
    cleared = [value for value in out.headers.getall("Set-Cookie")
               if value.startswith("session=")]
    assert cleared == ["session=; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; path=/; "
                       "domain=shop.test; httponly; samesite=Lax"]


def test_the_drop_in_takes_every_parameter_of_the_installed_starlettes_with_its_default() -> None:
    """Swapping the import is the only change: each parameter of the installed Starlette's
    ``SessionMiddleware`` is one of the drop-in's, by name and default, in the same order
    (``secret_key`` aside: required there, taken and unused here)."""
    import inspect

    from starlette.middleware.sessions import SessionMiddleware as Theirs

    from sessionshare.contrib.starlette import SessionMiddleware as Ours

    theirs = inspect.signature(Theirs.__init__).parameters
    ours = inspect.signature(Ours.__init__).parameters
    names = [name for name in theirs if name not in ("self", "secret_key")]
    assert [name for name in ours if name in names] == names, "a parameter is missing"
    for name in names:
        assert ours[name].default == theirs[name].default, name
        assert ours[name].kind == theirs[name].kind, name
    assert ours["secret_key"].default is None  # documented: not used
