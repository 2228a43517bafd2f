"""A deployment in a test: one IdP and two remote apps (bare WSGI) over one store.

``Deployment`` builds the three middlewares; ``Browser`` is one browser: a
WebTest app per origin, each with its own cookie jar (as a browser keeps
cookies per site), and ``get``/``post`` that route an absolute URL to the
right app. A second ``Browser`` over the same deployment is another person's
browser (the login-CSRF victim, say).

    dep = Deployment(store, clock)
    browser = Browser(dep)
    page = browser.sign_in_at(SHOP + "/orders?page=2")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import webtest

from sessionshare import IdpAuthMiddleware, RemoteSessionMiddleware, SessionStore, SyncKey

IDP = "http://id.test"
SHOP = "http://shop.test"
BLOG = "http://blog.test"
LOGIN = IDP + "/login"
CALLBACK = "/_sessionshare/callback"
HTML = {"Accept": "text/html"}
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def idp_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A minimal IdP: a login form that checks a password table."""
    session = environ["sessionshare.session"]
    if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/login":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        name = form.get("username", [""])[0]
        if PASSWORDS.get(name) == form.get("password", [""])[0]:
            session["user"] = name
            # 200, not a redirect: any Location a test sees came from the middleware.
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"signed in as {name}".encode()]
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<p>wrong password</p><form method=post>login form</form>"]
    if environ["PATH_INFO"] == "/login":
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<form method=post>login form</form>"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"idp home user={environ.get('REMOTE_USER')}".encode()]


def remote_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A remote app: echoes the user and request; ``/write?k=v`` writes the session."""
    session = environ["sessionshare.session"]
    path = environ["PATH_INFO"]
    if path == "/write":
        for name, values in parse_qs(environ.get("QUERY_STRING", "")).items():
            session[name] = values[0]
    body = {
        "user": environ.get("REMOTE_USER"),
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
    }
    if path == "/read":
        body["session"] = dict(session)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class Deployment:
    """Three middlewares sharing one store and one sync key."""

    def __init__(
        self,
        store: SessionStore,
        clock: Callable[[], float],
        *,
        key: str | None = None,
        idp_options: dict[str, Any] | None = None,
        remote_options: dict[str, Any] | None = None,
        idp: Callable[..., Iterable[bytes]] = idp_app,
        remote: Callable[..., Iterable[bytes]] = remote_app,
    ) -> None:
        self.store = store
        self.clock = clock
        self.key = key or SyncKey.generate()
        common: dict[str, Any] = {
            "store": store, "key": self.key, "cookie_secure": False, "clock": clock,
        }
        self.idp = IdpAuthMiddleware(
            idp, app_url=IDP,
            **{**common, "known_remote_hosts": [SHOP, BLOG], **(idp_options or {})},
        )
        self.shop = RemoteSessionMiddleware(
            remote, app_url=SHOP, idp_url=LOGIN, protect=["/orders", "/read", "/write"],
            **{**common, **(remote_options or {})},
        )
        self.blog = RemoteSessionMiddleware(
            remote, app_url=BLOG, idp_url=LOGIN, **{**common, **(remote_options or {})}
        )


class Browser:
    """One browser: a cookie jar per origin, absolute URLs routed to the right app."""

    def __init__(self, deployment: Deployment) -> None:
        self.apps = {
            "id.test": webtest.TestApp(deployment.idp, extra_environ={"HTTP_HOST": "id.test"}),
            "shop.test": webtest.TestApp(deployment.shop, extra_environ={"HTTP_HOST": "shop.test"}),
            "blog.test": webtest.TestApp(deployment.blog, extra_environ={"HTTP_HOST": "blog.test"}),
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
        lifecycle = self.apps[host].app.side.lifecycle
        return lifecycle.session_id_in(f"{lifecycle.cookie.name}={value}")  # type: ignore[no-any-return]

    def store_key(self, host: str) -> str:
        """The store key of the session this browser holds at ``host``."""
        sid = self.session_id(host)
        assert sid is not None, f"no genuine session cookie at {host}"
        return self.apps[host].app.side.lifecycle.session_key(sid)  # type: ignore[no-any-return]

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
