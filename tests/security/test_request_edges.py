"""Issue 22, findings 1 and 6: how a request's facts are read at the edge of the protocol.

- **The path.** A mount point (WSGI ``SCRIPT_NAME``, ASGI ``root_path``) comes
  off the path only at a segment boundary; a path that does not start with
  ``/`` is refused with 400 ``bad_path``; ``protect`` and ``max_auth_age``
  prefixes are whole segments. gunicorn (``SCRIPT_NAME=/shop``) hands a request
  for ``/shopping/orders`` over as ``PATH_INFO="ping/orders"``, uvicorn
  (``--root-path /shop``) a raw target ``ping/orders`` as the path
  ``/shopping/orders``: neither may reach a page anonymously that the app
  routes to a protected prefix.
- **REMOTE_USER.** The WSGI middlewares set ``REMOTE_USER`` for a signed-in
  user; one that a server or proxy put in the environ is taken out before the
  app runs, so frameworks that trust it (Django's ``RemoteUserMiddleware``,
  Pyramid's ``RemoteUserSecurityPolicy``) see only the middleware's user.

Each runs under both shells (the ASGI one through tests/asgibridge.py, whose
scope carries ``SCRIPT_NAME`` as ``root_path`` and the path with it, as
uvicorn builds it) on MemoryStore and real Redis. Test names are the ones
SECURITY.md's threat table cites.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from conftest import FakeClock
from flow import IDP, SHOP, Browser, Deployment

from sessionshare import SessionStore


def _call(app: Any, path: str, script_name: str = "", cookie: str = "",
          **environ: str) -> tuple[int, Any]:
    """One request as a server hands it over: the status and the decoded JSON body."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": script_name, "PATH_INFO": path,
        "QUERY_STRING": "", "SERVER_NAME": "shop.test", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "shop.test",
        "HTTP_ACCEPT": "application/json", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        **environ,
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    status: list[str] = []
    body = app(env, lambda line, headers, exc_info=None: status.append(line))
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return int(status[0].split()[0]), json.loads(data)


def _cookie_header(browser: Browser, host: str) -> str:
    return "; ".join(f"{k}={v}" for k, v in browser.apps[host].cookies.items())


# -- finding 1: the path ---------------------------------------------------------------------


def test_a_mount_point_ending_mid_segment_never_unprotects_a_path(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # SCRIPT_NAME=/shop and PATH_INFO="ping/orders" is what gunicorn makes of a request for
    # /shopping/orders; the bridge turns it into uvicorn's scope for --root-path /shop and
    # the raw target "ping/orders" (path /shopping/orders). Taking "/shop" off that path
    # left "ping/orders", which protect=["/shopping"] did not match: served to nobody.
    dep = Deployment(store, clock, shell=shell, remote_options={"protect": ["/shopping"]})
    status, body = _call(dep.wsgi(dep.shop), "ping/orders", script_name="/shop")
    if shell == "wsgi":
        # A PATH_INFO without its leading slash: the router would read it as /ping/orders.
        assert (status, body["error"]) == (400, "bad_path")
    else:
        # The path the app routes (Starlette's rule) is /shopping/orders: protected.
        assert (status, body["error"]) == (401, "not_authenticated")
    # The mount point itself, and a path under it, are what they always were.
    assert _call(dep.wsgi(dep.shop), "/shopping/orders", script_name="/shop")[0] == 401
    assert _call(dep.wsgi(dep.shop), "", script_name="/shop")[0] == 200  # public


def test_a_step_up_prefix_is_not_skipped_through_the_mount_point(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Signed in ten minutes ago, /shopping asks for a sign-in at most a minute old: the
    # mid-segment mount point must not serve it as a public page that greets the user.
    dep = Deployment(store, clock, shell=shell,
                     remote_options={"protect": ["/shopping"], "max_auth_age": {"/shopping": 60}})
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/shopping/orders")
    cookie = _cookie_header(browser, "shop.test")
    assert _call(dep.wsgi(dep.shop), "/shopping/orders", cookie=cookie)[1]["user"] == "alice"
    clock.advance(600)
    status, body = _call(dep.wsgi(dep.shop), "ping/orders", script_name="/shop", cookie=cookie)
    expected = (400, "bad_path") if shell == "wsgi" else (401, "reauthentication_required")
    assert (status, body.get("error")) == expected, body


def test_a_path_without_its_leading_slash_is_refused_with_400(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    for app, host in ((dep.shop, "shop.test"), (dep.idp, "id.test"), (dep.blog, "blog.test")):
        for path in ("orders", "ping/orders", "*", "login"):
            status, body = _call(dep.wsgi(app), path, cookie=_cookie_header(browser, host))
            assert (status, body["error"]) == (400, "bad_path"), (host, path)
    # Nothing of the session changed: the next request is served as before.
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert "alice" in browser.get(IDP + "/").text


# -- finding 6: a REMOTE_USER the middleware did not set -----------------------------------


def test_a_remote_user_set_by_the_server_is_not_passed_on(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Behind a server or proxy that sets REMOTE_USER (or with a header mapped to it), an
    # anonymous visitor was that user for every framework that trusts REMOTE_USER.
    dep = Deployment(store, clock, shell=shell)
    planted = {"REMOTE_USER": "admin"}
    # flow's apps echo REMOTE_USER (the ASGI ones scope["sessionshare.user"]).
    for app in (dep.shop, dep.blog):
        status, body = _call(dep.wsgi(app), "/public", **planted)
        assert body.get("user") is None, body
    assert "user=None" in _idp_home(dep, planted)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    status, body = _call(dep.wsgi(dep.shop), "/orders", cookie=_cookie_header(browser,
                                                                             "shop.test"),
                         **planted)
    assert (status, body["user"]) == (200, "alice")  # the middleware's user, not the server's


def _idp_home(dep: Deployment, environ: dict[str, str]) -> str:
    status: list[str] = []
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "id.test", "SERVER_PORT": "80", "HTTP_HOST": "id.test",
           "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
           **environ}
    body = dep.wsgi(dep.idp)(env, lambda line, headers, exc_info=None: status.append(line))
    text = b"".join(body).decode()
    if hasattr(body, "close"):
        body.close()
    assert status[0].startswith("200"), status
    return text
