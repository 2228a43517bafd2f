"""Issue 22, findings 1 and 6: how a request's facts are read at the edge of the protocol.

- **The path.** A mount point (WSGI ``SCRIPT_NAME``, ASGI ``root_path``) comes
  off the path only at a segment boundary; a path that does not start with
  ``/`` is refused with 400 ``bad_path``; ``protect`` and ``max_auth_age``
  prefixes are whole segments. gunicorn (``SCRIPT_NAME=/shop``) hands a request
  for ``/shopping/orders`` over as ``PATH_INFO="ping/orders"``, uvicorn
  (``--root-path /shop``) a raw target ``ping/orders`` as the path
  ``/shopping/orders``: neither may reach a page anonymously that the app
  routes to a protected prefix.
- **Websockets under WSGI.** flask-sock (simple-websocket) and the like serve
  websockets from a WSGI app: the handshake is a GET with ``Upgrade:
  websocket``, and it gets what an ASGI handshake gets -- the session and user
  only for a page of the app's own origin (or ``websocket_origins``).
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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import websocket
from asgibridge import await_on_loop
from conftest import FakeClock
from flask import Flask, request
from flask_sock import Sock
from flow import IDP, LOGIN, SHOP, Browser, Deployment, asgi_idp_app, idp_app
from werkzeug.serving import make_server

from sessionshare import IdpAuthMiddleware, RemoteSessionMiddleware, SessionStore

from .deploy import Events


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


def _as_server_hands_it(path: str) -> str:
    """``path`` as a WSGI server puts it in ``PATH_INFO``: its UTF-8 bytes read as latin-1."""
    return path.encode("utf-8").decode("latin-1")


def test_a_prefix_outside_ascii_protects_its_path(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Servers hand the path over as UTF-8 bytes read as latin-1 (PEP 3333; the ASGI shell
    # does the same), so "/konto-ü" arrives as "/konto-Ã¼": a prefix written as text
    # matched no request at all, and the page it named was served to nobody.
    dep = Deployment(store, clock, shell=shell,
                     remote_options={"protect": ["/orders", "/konto-ü", "/café/"],
                                     "max_auth_age": {"/konto-ü": 60}})
    for path in ("/konto-ü", "/konto-ü/daten", "/café", "/café/x"):
        status, body = _call(dep.wsgi(dep.shop), _as_server_hands_it(path))
        assert (status, body.get("error")) == (401, "not_authenticated"), path
    assert _call(dep.wsgi(dep.shop), _as_server_hands_it("/konto-über"))[0] == 200  # public
    # The step-up prefix too: signed in ten minutes ago, /konto-ü wants a minute.
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    clock.advance(600)
    status, body = _call(dep.wsgi(dep.shop), _as_server_hands_it("/konto-ü"),
                         cookie=_cookie_header(browser, "shop.test"))
    assert (status, body.get("error")) == (401, "reauthentication_required"), body


def test_a_trailing_newline_does_not_take_a_path_out_of_its_prefix(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # A request for /admin%0A reaches the /admin view of routers that match a route with
    # "^/admin$" (a "$" matches before a final newline): Starlette and Pyramid among them.
    # "/admin\n" is none of /admin, /admin/..., so protect=["/admin"] let it through.
    dep = Deployment(store, clock, shell=shell,
                     remote_options={"protect": ["/admin"], "max_auth_age": {"/admin": 60}})
    for path in ("/admin\n", "//admin\n", "/x/../admin\n"):
        status, body = _call(dep.wsgi(dep.shop), path)
        assert (status, body.get("error")) == (401, "not_authenticated"), path
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/admin")
    clock.advance(600)
    status, body = _call(dep.wsgi(dep.shop), "/admin\n",
                         cookie=_cookie_header(browser, "shop.test"))
    assert (status, body.get("error")) == (401, "reauthentication_required"), body


# -- finding 2 under WSGI: websockets of flask-sock and the like ----------------------------


def _socket_app(**middleware: Any) -> Flask:
    """A Flask app whose websockets (flask-sock) report the user and the session they see,
    and write to that session; inside ``middleware``."""
    app = Flask("sockets")
    sock = Sock(app)

    def live(ws: Any) -> None:
        session = request.environ["sessionshare.session"]
        ws.send(json.dumps({"user": request.environ.get("REMOTE_USER"), "keys": sorted(session)}))
        session["seen"] = "yes"  # never the user's session, from another origin

    for path in ("/orders/live", "/public/live"):
        sock.route(path, endpoint=path)(live)

    app.wsgi_app = middleware.pop("side")(app.wsgi_app, **middleware)  # type: ignore[method-assign]
    return app


@contextmanager
def _served(app: Flask) -> Iterator[str]:
    """``app`` on a real werkzeug server (threaded, as flask-sock needs): its ws:// base."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _open(url: str, cookie: str, origin: str | None) -> Any:
    """What the socket sends first, or the status its handshake was refused with."""
    try:
        ws = websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=10,
                                         origin=origin, suppress_origin=origin is None)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    try:
        return json.loads(ws.recv())
    finally:
        ws.close()


SIBLING = "http://evil.shop.test"  # same-site as shop.test: the Lax cookie goes along


def test_a_wsgi_websocket_from_another_origin_gets_no_session_and_no_user(
    store: SessionStore, clock: FakeClock
) -> None:
    # Cross-site websocket hijacking through a WSGI app: flask-sock's handshake is a GET
    # that the WSGI middlewares served like any request, with the user and the session
    # whatever its Origin -- the very attack the ASGI shell already stopped.
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    shop_cookie, idp_cookie = (_cookie_header(browser, host) for host in ("shop.test", "id.test"))
    key = browser.store_key("shop.test")
    common = {"store": store, "key": dep.key, "cookie_secure": False, "clock": clock}
    shop = _socket_app(side=RemoteSessionMiddleware, app_url=SHOP, idp_url=LOGIN,
                       protect=["/orders"], **common)
    idp = _socket_app(side=IdpAuthMiddleware, app_url=IDP, known_remote_hosts=[SHOP], **common)
    with _served(shop) as shop_ws, _served(idp) as idp_ws:
        for origin in (SIBLING, "http://shop.test:8080", "null", IDP, None):
            # A protected path: refused before the socket opens (the JSON 403 cross_origin).
            assert _open(shop_ws + "/orders/live", shop_cookie, origin) == 403, origin
            # Anywhere else: served, with no user and an empty session of its own.
            assert _open(shop_ws + "/public/live", shop_cookie, origin) == {
                "user": None, "keys": []}, origin
            assert _open(idp_ws + "/public/live", idp_cookie, origin if origin != IDP else None
                         ) == {"user": None, "keys": []}, origin
        # Their writes never reached the user's session.
        record = store.load(key, 60)
        assert record is not None and "seen" not in record.fields
        # The app's own pages get the user, at the shop and at the IdP.
        assert _open(shop_ws + "/orders/live", shop_cookie, SHOP) == {
            "user": "alice", "keys": ["user"]}
        assert _open(idp_ws + "/public/live", idp_cookie, IDP)["user"] == "alice"
        # And what they write is kept (no cookie needed: the session exists already).
        record = store.load(key, 60)
        assert record is not None and record.fields.get("seen") == '"yes"'


def test_a_wsgi_websocket_option_lists_the_other_origins(
    store: SessionStore, clock: FakeClock
) -> None:
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    shop = _socket_app(side=RemoteSessionMiddleware, app_url=SHOP, idp_url=LOGIN,
                       protect=["/orders"], store=store, key=dep.key, cookie_secure=False,
                       clock=clock, websocket_origins=["http://app.shop.test"])
    with _served(shop) as shop_ws:
        cookie = _cookie_header(browser, "shop.test")
        assert _open(shop_ws + "/orders/live", cookie, "http://app.shop.test")["user"] == "alice"
        assert _open(shop_ws + "/orders/live", cookie, SIBLING) == 403


def _signing_in_over_a_websocket(shell: str) -> Any:
    """The IdP app of ``shell``: its pages as usual, and a websocket whose app assigns
    the user key -- a sign-in no cookie can follow (the handshake's answer reaches no
    page)."""
    if shell == "asgi":
        async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                await asgi_idp_app(scope, receive, send)
                return
            await receive()  # websocket.connect
            scope["session"]["user"] = "mallory"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

        return asgi_app

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_UPGRADE") != "websocket":
            return idp_app(environ, start_response)
        environ["sessionshare.session"]["user"] = "mallory"
        start_response("101 Switching Protocols", [("Upgrade", "websocket")])
        return []

    return wsgi_app


def _handshake(dep: Deployment, path: str, cookie: str, origin: str) -> None:
    """Open (and at once close) a websocket to the deployment's IdP, as a server would."""
    if dep.shell == "asgi":
        scope = {"type": "websocket", "path": path, "root_path": "", "query_string": b"",
                 "headers": [(b"cookie", cookie.encode()), (b"origin", origin.encode())],
                 "scheme": "ws", "subprotocols": []}
        inbox = [{"type": "websocket.connect"}, {"type": "websocket.disconnect"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            return None

        await_on_loop(dep.idp(scope, receive, send))
        return
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "",
               "QUERY_STRING": "", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
               "HTTP_COOKIE": cookie, "HTTP_ORIGIN": origin, "wsgi.input": io.BytesIO()}
    body = dep.idp(environ, lambda status, headers, exc_info=None: None)
    list(body)
    if hasattr(body, "close"):
        body.close()


def test_a_sign_in_over_a_websocket_handshake_is_not_recorded(
    store: SessionStore, clock: FakeClock, shell: str, events: Events
) -> None:
    # The handshake's answer carries no cookie to a page, so its changes are late ones:
    # a sign-in there would stay under the pre-login id, which another browser may hold
    # (a planted cookie: session fixation). Both shells run the IdP's on_close for it;
    # the WSGI shell used to store the user under the old id.
    dep = Deployment(store, clock, shell=shell, idp=_signing_in_over_a_websocket(shell))
    browser = Browser(dep)
    browser.get(browser.start_login(SHOP + "/orders"))  # the form: an anonymous session
    key = browser.store_key("id.test")
    events.clear()
    _handshake(dep, "/live", _cookie_header(browser, "id.test"), IDP)
    record = store.load(key, 60)
    assert record is not None and "user" not in record.fields and "a" not in record.meta
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert [m for m in events.messages if m.startswith("late_change_refused ")] == [
        m for m in events.messages if "reason=sign_in" in m]
    assert events.count("late_change_refused") == 1


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
