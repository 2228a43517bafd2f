"""A deployment in a test: one IdP and two remote apps (bare WSGI or ASGI) over one store.

``Deployment`` builds the three middlewares of one shell: ``shell="wsgi"``
(the default) around the bare WSGI apps below, ``shell="asgi"`` the ASGI
middlewares around their ASGI twins, served to WebTest through
tests/asgibridge.py (one event loop, guarded against blocking calls). The
same store fixture serves both: an ASGI deployment over a ``RedisStore``
talks to the same Redis through an ``AsyncRedisStore``. ``Browser`` is one
browser: a WebTest app per origin, each with its own cookie jar (as a
browser keeps cookies per site), and ``get``/``post`` that route an absolute
URL to the right app. A second ``Browser`` over the same deployment is
another person's browser (the login-CSRF victim, say).

    dep = Deployment(store, clock, shell="asgi")
    browser = Browser(dep)
    page = browser.sign_in_at(SHOP + "/orders?page=2")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import webtest
from asgibridge import WsgiToAsgi, await_on_loop
from bare_apps import (
    BLOG,
    CALLBACK,  # noqa: F401 -- re-exported: the tests take it from here
    HTML,
    IDP,
    LOGIN,
    PASSWORDS,
    SHOP,
    asgi_idp_app,
    asgi_remote_app,
    idp_app,
    remote_app,
)
from redis.cluster import RedisCluster

from sessionshare import (
    AsyncRedisStore,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SessionStore,
    SyncKey,
    asgi,
)

#: ASGI stores the deployments of the running test opened (closed after it).
OPEN_ASYNC_STORES: list[AsyncRedisStore] = []


def close_async_stores() -> None:
    while OPEN_ASYNC_STORES:
        store = OPEN_ASYNC_STORES.pop()
        await_on_loop(store.close())
        if hasattr(store.client, "aclose") and not hasattr(store.client, "connection_pool"):
            await_on_loop(store.client.aclose())  # a cluster client: its nodes' sockets too


def async_twin(store: SessionStore) -> Any:
    """The store an ASGI app uses to share ``store``'s sessions."""
    if isinstance(store, MemoryStore):
        return store  # the ASGI middleware awaits it through an AsyncMemoryStore
    assert isinstance(store, RedisStore), store
    if isinstance(store.client, RedisCluster):
        # The same cluster through redis.asyncio's cluster client (tests/reliability).
        from redis.asyncio.cluster import ClusterNode
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        nodes = [ClusterNode(node.host, node.port) for node in store.client.get_nodes()]
        twin = AsyncRedisStore(AsyncRedisCluster(startup_nodes=nodes, socket_timeout=5))
        OPEN_ASYNC_STORES.append(twin)
        return twin
    kwargs = store.client.connection_pool.connection_kwargs
    host, port, db = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379), kwargs.get("db", 0)
    twin = AsyncRedisStore.from_url(
        f"redis://{host}:{port}/{db}",
        socket_timeout=kwargs.get("socket_timeout") or 5,
    )
    OPEN_ASYNC_STORES.append(twin)
    return twin


class Deployment:
    """Three middlewares sharing one store and one sync key."""

    #: The middlewares' classes, by shell.
    SHELLS: dict[str, tuple[Any, Any]] = {
        "wsgi": (IdpAuthMiddleware, RemoteSessionMiddleware),
        "asgi": (asgi.IdpAuthMiddleware, asgi.RemoteSessionMiddleware),
    }

    def __init__(
        self,
        store: SessionStore,
        clock: Callable[[], float],
        *,
        key: str | None = None,
        idp_options: dict[str, Any] | None = None,
        remote_options: dict[str, Any] | None = None,
        idp: Callable[..., Any] | None = None,
        remote: Callable[..., Any] | None = None,
        shell: str = "wsgi",
        async_store: Any = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.shell = shell
        self.key = key or SyncKey.generate()
        if shell == "asgi":
            idp, remote = idp or asgi_idp_app, remote or asgi_remote_app
            # The ASGI apps' own store (default: one over the same records or Redis).
            shared: Any = async_twin(store) if async_store is None else async_store
        else:
            idp, remote = idp or idp_app, remote or remote_app
            shared = store
        common: dict[str, Any] = {
            "store": shared, "key": self.key, "cookie_secure": False, "clock": clock,
        }
        IdpAuthMiddleware, RemoteSessionMiddleware = self.SHELLS[shell]  # noqa: N806
        self.idp = IdpAuthMiddleware(
            idp, app_url=IDP,
            **{**common, "known_remote_hosts": [SHOP, BLOG], **(idp_options or {})},
        )
        self.shop = RemoteSessionMiddleware(
            remote, app_url=SHOP, idp_url=LOGIN,
            **{"protect": ["/orders", "/read", "/write"], **common, **(remote_options or {})},
        )
        self.blog = RemoteSessionMiddleware(
            remote, app_url=BLOG, idp_url=LOGIN, **{**common, **(remote_options or {})}
        )

    def wsgi(self, middleware: Any) -> Any:
        """``middleware`` as a WSGI app (an ASGI one through the bridge)."""
        return WsgiToAsgi(middleware) if self.shell == "asgi" else middleware


class Browser:
    """One browser: a cookie jar per origin, absolute URLs routed to the right app."""

    def __init__(self, deployment: Deployment) -> None:
        # Any object with idp/shop/blog WSGI apps will do (a Flask deployment, say).
        wsgi = getattr(deployment, "wsgi", lambda middleware: middleware)
        self.middlewares = {"id.test": deployment.idp, "shop.test": deployment.shop,
                            "blog.test": deployment.blog}
        self.apps = {
            host: webtest.TestApp(wsgi(middleware), extra_environ={"HTTP_HOST": host})
            for host, middleware in (("id.test", deployment.idp), ("shop.test", deployment.shop),
                                     ("blog.test", deployment.blog))
        }

    def route(self, url: str) -> tuple[webtest.TestApp, str]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.apps[parts.hostname or ""], path

    def get(self, url: str, **kwargs: Any) -> webtest.TestResponse:
        app, path = self.route(url)
        kwargs.setdefault("headers", HTML)
        kwargs.setdefault("status", "*")
        return app.get(path, **kwargs)

    def post(self, url: str, params: Any = "", **kwargs: Any) -> webtest.TestResponse:
        app, path = self.route(url)
        kwargs.setdefault("headers", HTML)
        kwargs.setdefault("status", "*")
        return app.post(path, params, **kwargs)

    def cookie(self, host: str, name: str = "sessionshare") -> str | None:
        jar = self.apps[host].cookies
        return jar.get(name)

    def session_id(self, host: str) -> str | None:
        """The shared session id the app at ``host`` reads from its own cookie, if any."""
        value = self.cookie(host)
        if value is None:
            return None
        lifecycle = self.middlewares[host].side.lifecycle
        return lifecycle.session_id_in(f"{lifecycle.cookie.name}={value}")  # type: ignore[no-any-return]

    def store_key(self, host: str) -> str:
        """The store key of the session this browser holds at ``host``."""
        sid = self.session_id(host)
        assert sid is not None, f"no genuine session cookie at {host}"
        return self.middlewares[host].side.lifecycle.session_key(sid)  # type: ignore[no-any-return]

    def start_login(self, remote_url: str) -> str:
        """Visit a protected page signed out; the IdP login URL it redirects to."""
        response = self.get(remote_url)
        assert response.status_int == 302, response
        assert response.location.startswith(LOGIN + "?")
        return str(response.location)

    def sign_in(self, login_url: str, user: str = "alice") -> webtest.TestResponse:
        """Open the IdP login page and post the form back to the same URL."""
        page = self.get(login_url)
        assert page.status_int == 200 and "login form" in page.text, page
        return self.post(login_url, {"username": user, "password": PASSWORDS[user]})

    def token_url_for(self, remote_url: str, user: str = "alice") -> str:
        """Run the flow up to the IdP's redirect back: the callback URL with its token."""
        login_url = self.start_login(remote_url)
        response = self.get(login_url)  # signed in at the IdP already: straight back
        if response.status_int == 200:  # the login form: fill it in
            response = self.post(login_url, {"username": user, "password": PASSWORDS[user]})
        assert response.status_int == 303, response
        return str(response.location)

    def sign_in_at(self, remote_url: str, user: str = "alice") -> webtest.TestResponse:
        """The whole flow; the page finally shown at the remote."""
        back = self.get(self.token_url_for(remote_url, user))
        assert back.status_int == 303, back
        return self.get(urlsplit(remote_url).scheme + "://" + urlsplit(remote_url).netloc
                        + back.location)


def reason_of(response: webtest.TestResponse) -> str:
    """The reason code of a sessionshare error page or JSON body."""
    if response.content_type == "application/json":
        return str(response.json["error"])
    marker = "Reason: <code>"
    start = response.text.index(marker) + len(marker)
    return response.text[start : response.text.index("</code>", start)]
