"""``sessionshare.contrib.flask``: Flask apps on both sides of the hand-off.

A Flask IdP and two Flask remotes, each behind its middleware with
``SharedSessionInterface`` installed, use nothing but ``flask.session``,
``flash()`` / ``get_flashed_messages()`` and a session-kept CSRF token --
and every write on one side is what the other side reads. Runs against
MemoryStore and real Redis (the ``store`` fixture), under WebTest.
"""

from __future__ import annotations

import hmac
import re
import secrets
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import genuine_cookie
from flask import Flask, abort, flash, get_flashed_messages, jsonify, request, session
from flow import BLOG, IDP, LOGIN, PASSWORDS, SHOP, Browser

from sessionshare import (
    IdpAuthMiddleware,
    MemoryStore,
    RemoteSessionMiddleware,
    Session,
    SessionStore,
    StoreUnavailable,
    SyncKey,
)
from sessionshare.contrib.flask import FlaskSharedSession, SharedSessionInterface


def csrf_token() -> str:
    token = session.get("csrf_token")
    if not isinstance(token, str):
        token = session["csrf_token"] = secrets.token_urlsafe(16)
    return token


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not hmac.compare_digest(sent, session.get("csrf_token") or "-"):
        abort(400, "bad CSRF token")


def state() -> dict[str, Any]:
    """What a view can see of flask.session, without reading flashes."""
    return {
        "user": session.get("user"), "remote_user": request.environ.get("REMOTE_USER"),
        "cart": session.get("cart"), "permanent": session.permanent, "new": session.new,
        "type": type(session._get_current_object()).__name__,  # type: ignore[attr-defined]
    }


def idp_flask() -> Flask:
    app = Flask("idp")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            check_csrf()
            name = request.form["username"]
            if PASSWORDS.get(name) != request.form["password"]:
                flash("wrong password", "error")
                return f"login form csrf={csrf_token()}"
            session["user"] = name
            session.permanent = True
            flash(f"welcome {name}", "info")
            return "signed in"
        return f"login form csrf={csrf_token()}"

    @app.route("/state")
    def show_state() -> Any:
        return jsonify(state())

    @app.route("/public")
    def public() -> Any:
        return "nothing read"

    return app


def remote_flask(name: str) -> Flask:
    app = Flask(name)

    @app.route("/orders")
    def orders() -> Any:
        return jsonify(
            **state(), flashes=get_flashed_messages(with_categories=True), csrf=csrf_token()
        )

    @app.route("/cart", methods=["POST"])
    def add_to_cart() -> Any:
        check_csrf()
        session.setdefault("cart", []).append(request.form["item"])  # mutated in place
        modified = session.modified
        flash(f"added {request.form['item']}")
        return jsonify(modified=modified)

    @app.route("/clear", methods=["POST"])
    def clear() -> Any:
        session.clear()
        return "cleared"

    @app.route("/end", methods=["POST"])
    def end() -> Any:
        session.invalidate()  # type: ignore[attr-defined]
        session["note"] = "written after invalidate"
        return "ended"

    return app


def flask_deployment(store: SessionStore, clock: Any) -> SimpleNamespace:
    common: dict[str, Any] = {
        "store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock,
    }
    apps = {"idp": idp_flask(), "shop": remote_flask("shop"), "blog": remote_flask("blog")}
    apps["idp"].wsgi_app = IdpAuthMiddleware(  # type: ignore[method-assign]
        apps["idp"].wsgi_app, app_url=IDP, known_remote_hosts=[SHOP, BLOG], **common
    )
    apps["shop"].wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        apps["shop"].wsgi_app, app_url=SHOP, idp_url=LOGIN, protect=["/orders", "/cart"],
        **common,
    )
    apps["blog"].wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        apps["blog"].wsgi_app, app_url=BLOG, idp_url=LOGIN, **common
    )
    for app in apps.values():
        app.testing = True  # a view's exception fails the test instead of becoming a 500
        app.session_interface = SharedSessionInterface()
    return SimpleNamespace(**apps)


def sign_in(browser: Browser, remote_url: str, user: str = "alice") -> Any:
    """Remote -> IdP form (with its CSRF token) -> back at the remote, signed in."""
    login_url = browser.start_login(remote_url)
    form = browser.get(login_url)
    token = re.search(r"csrf=(\S+)", form.text)
    assert form.status_int == 200 and token is not None, form
    answer = browser.post(login_url, {"username": user, "password": PASSWORDS[user],
                                      "csrf_token": token.group(1)})
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(remote_url))
    assert answer.status_int == 303 and answer.location.startswith(origin + "/_sessionshare/")
    back = browser.get(answer.location)
    assert back.status_int == 303, back
    return browser.get(origin + back.location)


@pytest.fixture
def browser(store: SessionStore, clock: Any) -> Browser:
    return Browser(flask_deployment(store, clock))  # type: ignore[arg-type]


def test_flask_session_on_both_sides_is_one_session(browser: Browser) -> None:
    page = sign_in(browser, SHOP + "/orders")
    assert page.status_int == 200
    seen = page.json
    # The IdP's writes (user, permanent, a flash with its category) are the remote's reads.
    assert seen["user"] == seen["remote_user"] == "alice"
    assert seen["permanent"] is True and seen["new"] is False
    assert seen["type"] == FlaskSharedSession.__name__
    assert seen["flashes"] == [["info", "welcome alice"]]
    # Flashes are popped: the next page has none.
    assert browser.get(SHOP + "/orders").json["flashes"] == []

    # The remote writes through flask.session (an in-place append, CSRF-checked)...
    csrf = seen["csrf"]
    added = browser.post(SHOP + "/cart", {"item": "teapot", "csrf_token": csrf})
    assert added.status_int == 200 and added.json == {"modified": True}
    browser.post(SHOP + "/cart", {"item": "mug", "csrf_token": csrf})
    # ...and the IdP and the other remote read it.
    assert browser.get(IDP + "/state").json["cart"] == ["teapot", "mug"]
    blog = browser.get(BLOG + "/orders")
    assert blog.status_int == 302  # its own hand-off first, no form: alice is signed in
    back = browser.get(browser.get(blog.location).location)
    blog_page = browser.get(BLOG + back.location).json
    assert blog_page["cart"] == ["teapot", "mug"] and blog_page["user"] == "alice"
    assert blog_page["flashes"] == [["message", "added teapot"], ["message", "added mug"]]
    # The CSRF token the IdP put in the session before sign-in survived the id rotation.
    assert blog_page["csrf"] == csrf


def test_a_bad_csrf_token_is_refused_and_changes_nothing(browser: Browser) -> None:
    sign_in(browser, SHOP + "/orders")
    refused = browser.post(SHOP + "/cart", {"item": "teapot", "csrf_token": "forged"})
    assert refused.status_int == 400
    assert browser.get(IDP + "/state").json["cart"] is None


def test_a_cross_site_login_post_has_no_session_token_and_is_refused(
    store: SessionStore, clock: Any
) -> None:
    # Login CSRF: a cross-site form post reaches the IdP without its cookie.
    victim = Browser(flask_deployment(store, clock))  # type: ignore[arg-type]
    answer = victim.post(LOGIN, {"username": "alice", "password": "wonderland",
                                 "csrf_token": "guessed"})
    assert answer.status_int == 400
    assert victim.cookie("id.test") is None
    assert victim.get(IDP + "/state").json["user"] is None


def test_anonymous_visit_that_reads_nothing_costs_no_cookie_and_no_entry(
    store: SessionStore, clock: Any
) -> None:
    browser = Browser(flask_deployment(store, clock))  # type: ignore[arg-type]
    page = browser.get(IDP + "/public")
    assert page.status_int == 200
    assert "Set-Cookie" not in page.headers
    fresh = browser.get(IDP + "/state")
    assert fresh.json["new"] is True and fresh.json["user"] is None
    assert "Set-Cookie" not in fresh.headers  # read, nothing written: still nothing stored


def test_clear_signs_out_everywhere_and_invalidate_starts_a_fresh_session(
    browser: Browser,
) -> None:
    sign_in(browser, SHOP + "/orders")
    csrf = browser.get(SHOP + "/orders").json["csrf"]
    browser.post(SHOP + "/cart", {"item": "teapot", "csrf_token": csrf})
    old_cookie = browser.cookie("shop.test")

    browser.post(SHOP + "/end")
    # The shared session is gone at the IdP too...
    assert browser.get(IDP + "/state").json == {
        "user": None, "remote_user": None, "cart": None, "permanent": False, "new": True,
        "type": "FlaskSharedSession",
    }
    # ...and what the view wrote after invalidate() lives in a new, signed-out session.
    new_cookie = browser.cookie("shop.test")
    assert new_cookie and new_cookie != old_cookie
    assert browser.get(SHOP + "/orders").status_int == 302

    sign_in(browser, SHOP + "/orders")
    browser.post(SHOP + "/clear")
    assert browser.get(IDP + "/state").json["user"] is None


def test_non_json_values_fail_at_assignment_with_a_clear_message() -> None:
    view = FlaskSharedSession(Session())
    with pytest.raises(TypeError, match=r"session\['when'\]: only JSON values"):
        view["when"] = object()
    assert "when" not in view and not view.modified
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(TypeError, match=r"session\['cycle'\]: only JSON values.*Circular"):
        view["cycle"] = cycle  # Flask's tagging walks it first: still the same TypeError
    assert "cycle" not in view and not view.modified


def test_without_a_middleware_flask_session_reads_empty_and_refuses_writes() -> None:
    app = Flask("bare")
    app.session_interface = SharedSessionInterface()
    with app.test_request_context("/"):
        assert dict(session) == {} and session.get("user") is None
        with pytest.raises(RuntimeError, match="wrap the WSGI app in IdpAuthMiddleware"):
            session["user"] = "mallory"
        with pytest.raises(RuntimeError, match="RemoteSessionMiddleware"):
            flash("hello")


def test_no_flask_cookie_is_ever_set(browser: Browser) -> None:
    page = sign_in(browser, SHOP + "/orders")
    assert page.status_int == 200
    for host in ("id.test", "shop.test"):
        names = {cookie.name for cookie in browser.apps[host].cookiejar}
        assert "session" not in names and "sessionshare" in names


def test_store_outage_inside_an_unprotected_view_is_a_503(clock: Any) -> None:
    import webtest
    from servers import RedisServer

    from sessionshare import RedisStore
    from sessionshare.contrib.flask import init_app

    with RedisServer() as server:
        store = RedisStore.from_url(server.url, socket_timeout=0.5)
        app = Flask(__name__)

        @app.route("/")
        def home() -> str:
            return f"cart: {session.get('cart')}"

        @app.route("/fill")
        def fill() -> str:
            session["cart"] = [1]
            return "ok"

        app.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
            protect=["/account"], cookie_secure=False, clock=clock,
        )
        init_app(app)
        client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "shop.test"})
        client.get("/fill")
        assert client.get("/").text == "cart: [1]"
        server.stop()
        response = client.get("/", headers={"Accept": "text/html"}, status="*")
        assert response.status_int == 503 and response.headers["Retry-After"] == "2"
        assert "store_unavailable" in response.text
        server.start()
        assert client.get("/").text == "cart: None"  # a fresh server: the session is gone
        store.close()


class _DownStore(MemoryStore):
    """A store whose every session read fails, as a Redis outage does."""

    def load(self, key: str, idle_ttl: int) -> Any:
        raise StoreUnavailable("down for the test")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_adapters_503_is_the_middlewares_own_reply(clock: Any, method: str) -> None:
    import webtest

    from sessionshare.contrib.flask import init_app

    app = Flask(__name__)

    @app.route("/")
    def home() -> str:
        return f"cart: {session.get('cart')}"

    app.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store=_DownStore(clock=clock), key=SyncKey.generate(), app_url=SHOP,
        idp_url=LOGIN, protect=["/account"], cookie_secure=False, clock=clock,
    )
    init_app(app)
    client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "shop.test"})
    # A session cookie, so there is a session to read, and the read fails.
    headers = {"Accept": "text/html", "Cookie": genuine_cookie(app.wsgi_app)}
    from_view = client.request("/", method=method, headers=headers, status="*")
    from_middleware = client.request("/account", method=method, headers=headers, status="*")
    for response in (from_view, from_middleware):
        assert response.status == "503 Service Unavailable"
        assert response.headers["Retry-After"] == "2"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert from_view.body == from_middleware.body
    assert from_view.headers["Content-Length"] == from_middleware.headers["Content-Length"]
    assert (from_view.body == b"") is (method == "HEAD")


def test_the_adapter_does_not_import_the_middleware() -> None:
    # It reads the session the middleware left in the environ and answers an outage with
    # the core's own Reply: it never builds, nor reaches into, a middleware. Imports as
    # tests/test_layout.py resolves them (relative ones and those inside functions too).
    from test_layout import GRAPH

    imported = GRAPH["sessionshare.contrib.flask"]
    assert "sessionshare.core.reply" in imported  # the reader sees the adapter's imports
    shells = {name for name in imported if name == "sessionshare"
              or name.startswith(("sessionshare.wsgi", "sessionshare.asgi"))}
    assert shells <= {"sessionshare.wsgi.environ"}, shells  # a helper, no middleware


# -- Flask's own session contract: flags, Vary, flashes ---------------------------------------
def one_flask_app(store: SessionStore, clock: Any, **options: Any) -> Flask:
    """A Flask app behind a remote's middleware protecting nothing, as the quick start."""
    from sessionshare.contrib.flask import init_app

    app = Flask("contract")
    app.testing = True

    @app.post("/set")
    def set_value() -> str:
        session["value"] = request.form["value"]
        return "set"

    @app.get("/get")
    def get_value() -> str:
        return str(session.get("value"))

    @app.get("/nothing")
    def nothing() -> str:
        return "nothing"

    @app.get("/start")
    def start() -> str:
        session["cart"] = ["a"]
        return "started"

    @app.get("/cart")
    def cart() -> Any:
        return jsonify(session.get("cart"))

    @app.get("/append")
    def append() -> str:
        session["cart"].append(request.args["item"])  # in place, then told, as Flask asks
        session.modified = True
        return "appended"

    @app.get("/forced")
    def forced() -> str:
        session.accessed = True  # as an extension may, to vary without reading
        return "forced"

    @app.get("/flash")
    def flash_some() -> str:
        flash("Hello")
        flash("Careful", "warning")
        return "flashed"

    @app.get("/flashes")
    def flashes() -> str:
        return repr(get_flashed_messages(with_categories=True))

    @app.get("/warnings")
    def warnings() -> str:
        return repr(get_flashed_messages(category_filter=["warning"], with_categories=True))

    init_app(app)
    app.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
        protect=False, cookie_secure=False, clock=clock, **options,
    )
    return app


def test_modified_and_accessed_read_as_flasks_own(store: SessionStore, clock: Any) -> None:
    app = one_flask_app(store, clock)
    opened: list[Any] = []

    class Recording(SharedSessionInterface):
        """Keeps each request's session, to read its flags after the response (reading
        them through ``flask.session`` would itself mark it accessed, as Flask does)."""

        def open_session(self, app: Flask, request: Any) -> Any:
            opened.append(super().open_session(app, request))
            return opened[-1]

    app.session_interface = Recording()
    client = app.test_client()

    page = client.get("/nothing")
    assert "cookie" not in page.vary and not opened[-1].accessed and not opened[-1].modified
    page = client.post("/set", data={"value": "42"})
    # After the response too, as Flask's: the change was stored meanwhile.
    assert "cookie" in page.vary and opened[-1].accessed and opened[-1].modified
    page = client.get("/get")
    assert page.text == "42" and "cookie" in page.vary
    assert opened[-1].accessed and not opened[-1].modified
    page = client.get("/nothing")  # with the cookie now
    assert "cookie" not in page.vary and not opened[-1].accessed and not opened[-1].modified
    client.get("/start")
    client.get("/append", query_string={"item": "b"})
    assert opened[-1].modified
    page = client.get("/forced")
    assert page.headers.get_all("Vary") == ["Cookie"]
    assert opened[-1].accessed and not opened[-1].modified


def test_a_mutated_value_then_modified_true_is_stored(store: SessionStore, clock: Any) -> None:
    client = one_flask_app(store, clock).test_client()
    client.get("/start")
    client.get("/append", query_string={"item": "b"})
    assert client.get("/cart").json == ["a", "b"]


def test_flashed_messages_come_back_as_flasks_tuples(store: SessionStore, clock: Any) -> None:
    client = one_flask_app(store, clock).test_client()
    client.get("/flash")
    assert client.get("/flashes").text == "[('message', 'Hello'), ('warning', 'Careful')]"
    assert client.get("/flashes").text == "[]"  # taken once, as Flask's
    client.get("/flash")
    assert client.get("/warnings").text == "[('warning', 'Careful')]"


def test_without_a_middleware_the_error_says_the_session_is_unavailable() -> None:
    app = Flask("bare")
    app.session_interface = SharedSessionInterface()
    with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="^The session is unavailable: no shared session"):
            session.pop("user")


# -- Flask's SESSION_COOKIE_* and APPLICATION_ROOT: honoured or refused, never ignored -------
@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [("SESSION_COOKIE_SAMESITE", "Sometimes", r"SameSite is Lax, Strict or None")],
    ids=["bad-samesite"],
)
def test_init_app_refuses_a_cookie_setting_the_shared_cookie_cannot_follow(
    setting: str, value: object, says: str
) -> None:
    from sessionshare.contrib.flask import init_app
    from sessionshare.errors import ConfigurationError

    app = Flask("refused")
    app.config[setting] = value
    with pytest.raises(ConfigurationError, match=f"(?s)^Flask's session cookie settings.*"
                                                 f"- {setting}=.*{says}"):
        init_app(app)
    assert not isinstance(app.session_interface, SharedSessionInterface)


def test_init_app_takes_application_root_with_the_cookie_path_at_the_root() -> None:
    from sessionshare.contrib.flask import init_app

    app = Flask("rooted")
    app.config.update(APPLICATION_ROOT="/app", SESSION_COOKIE_PATH="/")
    init_app(app)
    assert isinstance(app.session_interface, SharedSessionInterface)


@pytest.mark.parametrize(
    ("settings", "attributes"),
    [
        ({"SESSION_COOKIE_NAME": "flask_session"}, ["flask_session="]),
        ({"SESSION_COOKIE_SAMESITE": "Strict"}, ["SameSite=Strict"]),
        ({"SESSION_COOKIE_DOMAIN": ".shop.test"}, ["Domain=shop.test"]),
        ({"SESSION_COOKIE_HTTPONLY": False}, ["!HttpOnly"]),
        ({"SESSION_COOKIE_PATH": "/app"}, ["Path=/app"]),
        ({"APPLICATION_ROOT": "/app"}, ["Path=/app"]),
        ({"APPLICATION_ROOT": "/app", "SESSION_COOKIE_PATH": "/"}, ["Path=/;"]),
        ({"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_PARTITIONED": True},
         ["Secure", "Partitioned"]),
    ],
    ids=["name", "samesite", "domain", "httponly", "path", "application-root",
         "root-with-cookie-path", "secure-partitioned"],
)
def test_a_setting_the_app_makes_becomes_the_middlewares_cookie(
    store: SessionStore, clock: Any, settings: dict[str, object], attributes: list[str]
) -> None:
    app = one_flask_app(store, clock)  # init_app could not know the middleware yet
    client = app.test_client()
    assert client.get("/nothing").status_code == 200
    app.config.update(settings)  # set after init_app: followed from the next request
    page = client.post("/set", data={"value": "7"}, base_url="http://shop.test")
    (cookie,) = page.headers.getlist("Set-Cookie")
    for attribute in attributes:
        if attribute.startswith("!"):
            assert attribute[1:] not in cookie, cookie
        else:
            assert attribute in cookie, cookie
    lifecycle = app.wsgi_app.side.lifecycle  # type: ignore[attr-defined]
    assert lifecycle.cookie.set("x").split(";", 1)[1] == cookie.split(";", 1)[1]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"SESSION_COOKIE_SAMESITE": "Sometimes"}, r"samesite \(cookie_samesite\) must be"),
        ({"SESSION_COOKIE_PARTITIONED": True},
         r"partitioned \(cookie_partitioned\)=True needs a Secure"),
        ({"SESSION_COOKIE_NAME": "__Host-s", "SESSION_COOKIE_PATH": "/app"},
         r"browsers accept a __Host- cookie only at Path=/"),
    ],
    ids=["bad-samesite", "partitioned-without-secure", "host-name-off-root"],
)
def test_a_setting_that_cannot_hold_is_refused_at_the_request(
    store: SessionStore, clock: Any, settings: dict[str, object], says: str
) -> None:
    from sessionshare.errors import ConfigurationError

    app = one_flask_app(store, clock)
    client = app.test_client()
    assert client.get("/nothing").status_code == 200
    app.config.update(settings)
    with pytest.raises(ConfigurationError,
                       match=f"(?s)^Flask's session cookie settings .*{says}"):
        client.get("/nothing")


def test_an_https_app_refuses_a_cookie_without_secure(store: SessionStore, clock: Any) -> None:
    from sessionshare.contrib.flask import init_app
    from sessionshare.errors import ConfigurationError

    app = Flask("https")
    app.config["SESSION_COOKIE_SECURE"] = False  # Flask's default: gives way, not followed
    app.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store=store, key=SyncKey.generate(), app_url="https://shop.test",
        idp_url="https://id.test/login", protect=False, clock=clock)
    init_app(app)
    assert app.wsgi_app.side.lifecycle.cookie.secure  # type: ignore[attr-defined]
    app.config["SESSION_COOKIE_HTTPONLY"] = False  # followed, still Secure
    app.test_client().get("/", base_url="https://shop.test")
    assert not app.wsgi_app.side.lifecycle.cookie.httponly  # type: ignore[attr-defined]
    other = Flask("https-insecure")
    other.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        other.wsgi_app, store=store, key=SyncKey.generate(), app_url="https://shop.test",
        idp_url="https://id.test/login", protect=False, clock=clock)
    # SESSION_COOKIE_SECURE=False is Flask's default, which gives way; a cookie without
    # Secure asked any other way is refused on an https app (it would travel in clear).
    lifecycle = other.wsgi_app.side.lifecycle  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="without Secure on https app_url"):
        lifecycle.follow_cookie({"secure": False})


def test_init_app_finds_the_middleware_under_proxyfix(store: SessionStore, clock: Any) -> None:
    """The middleware wrapped again (ProxyFix, as an app behind a proxy has it): init_app
    finds it through ``.app`` and its cookie follows from there, before any request --
    a setting it cannot follow is refused at start-up, not at the first request."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from sessionshare.contrib.flask import init_app
    from sessionshare.errors import ConfigurationError

    def behind_a_proxy(name: str) -> Flask:
        app = Flask(name)
        middleware = RemoteSessionMiddleware(
            app.wsgi_app, store=store, key=SyncKey.generate(), app_url="https://shop.test",
            idp_url="https://id.test/login", protect=False, clock=clock)
        app.wsgi_app = ProxyFix(ProxyFix(middleware))  # type: ignore[method-assign]
        return app

    app = behind_a_proxy("proxied")
    app.config["SESSION_COOKIE_HTTPONLY"] = False
    init_app(app)
    lifecycle = app.wsgi_app.app.app.side.lifecycle  # type: ignore[attr-defined]
    assert not lifecycle.cookie.httponly  # followed at init_app, no request yet
    refused = behind_a_proxy("proxied-refused")
    refused.config["SESSION_COOKIE_NAME"] = "bad name;"
    with pytest.raises(ConfigurationError, match=r"(?s)^Flask's session cookie settings "
                                                 r"\(SESSION_COOKIE_NAME\).*'bad name;'"):
        init_app(refused)


def test_the_middlewares_own_sign_out_clears_the_cookie_at_the_apps_path(
    store: SessionStore, clock: Any
) -> None:
    from sessionshare.contrib.flask import init_app

    app = Flask("rooted")
    app.config["APPLICATION_ROOT"] = "/app"

    @app.post("/app/set")
    def set_value() -> str:
        session["value"] = request.form["value"]
        return "set"

    app.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN,
        protect=False, cookie_secure=False, clock=clock, logout_path="/app/logout")
    init_app(app)  # the middleware wraps the app already: its cookie follows from here
    client = app.test_client()
    set_cookie = client.post("/app/set", data={"value": "7"},
                             base_url="http://shop.test").headers["Set-Cookie"]
    assert "Path=/app" in set_cookie
    out = client.post("/app/logout", base_url="http://shop.test")
    assert out.status_code == 303
    cleared = out.headers["Set-Cookie"]
    assert "Max-Age=0" in cleared and "Path=/app" in cleared


def _cookie_of(page: Any) -> str | None:
    found = page.headers.getlist("Set-Cookie")
    return found[0] if found else None


def test_permanent_session_gets_flasks_lifetime_and_is_refreshed(
    store: SessionStore, clock: Any
) -> None:
    from datetime import timedelta

    app = one_flask_app(store, clock)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=2)

    @app.get("/permanent")
    def make_permanent() -> str:
        session.permanent = request.args.get("on") == "1"
        return "ok"

    client = app.test_client()
    client.post("/set", data={"value": "7"}, base_url="http://shop.test")
    permanent = _cookie_of(client.get("/permanent?on=1", base_url="http://shop.test"))
    assert permanent is not None and "Max-Age=7200" in permanent and "Expires=" in permanent
    refreshed = client.get("/nothing", base_url="http://shop.test")  # refreshed, as Flask
    assert "Max-Age=7200" in (_cookie_of(refreshed) or "") and "Cookie" in refreshed.vary
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    assert _cookie_of(client.get("/nothing", base_url="http://shop.test")) is None
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    browser_only = _cookie_of(client.get("/permanent?on=0", base_url="http://shop.test"))
    assert browser_only is not None and "Expires" not in browser_only  # re-sent as such
    plain = client.get("/nothing", base_url="http://shop.test")
    assert _cookie_of(plain) is None and "Cookie" not in plain.vary


def test_a_permanent_session_of_a_lifetime_past_year_9999_is_no_500(
    store: SessionStore, clock: Any
) -> None:
    # PERMANENT_SESSION_LIFETIME as "forever" (timedelta.max): the cookie's Expires
    # stops at the last date HTTP can write, rather than every answer failing.
    from datetime import timedelta

    app = one_flask_app(store, clock)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta.max

    @app.get("/permanent")
    def make_permanent() -> str:
        session.permanent = True
        return "ok"

    client = app.test_client()
    answer = client.get("/permanent", base_url="http://shop.test")
    assert answer.status_code == 200
    cookie = _cookie_of(answer)
    assert cookie is not None and "Expires=Fri, 31 Dec 9999 23:59:59 GMT" in cookie


def test_settings_that_describe_the_middlewares_cookie_are_honoured(
    store: SessionStore, clock: Any
) -> None:
    app = one_flask_app(store, clock, cookie_name="flask_session", cookie_samesite="Strict",
                        cookie_domain="shop.test")
    app.config.update(SESSION_COOKIE_NAME="flask_session", SESSION_COOKIE_SAMESITE="strict",
                      SESSION_COOKIE_DOMAIN=".shop.test", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_PATH="/", SESSION_COOKIE_PARTITIONED=False)
    client = app.test_client()
    page = client.post("/set", data={"value": "7"}, base_url="http://shop.test")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("flask_session=") and "SameSite=Strict" in cookie
    assert "Domain=shop.test" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    assert client.get("/get", base_url="http://shop.test").text == "7"


# -- Flask's tagged types -------------------------------------------------------------------
def test_flasks_tagged_types_round_trip(store: SessionStore, clock: Any) -> None:
    import uuid
    from datetime import datetime, timezone

    from markupsafe import Markup

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    app = one_flask_app(store, clock)

    @app.get("/store")
    def store_values() -> str:
        session.update(t=(1, 2), b=b"\xff", m=Markup("<b>hi</b>"), u=ident, d=when,
                       nested={"pairs": [("a", 1)]}, looks_tagged={" t": "not a tuple"})
        return "stored"

    @app.get("/types")
    def types() -> Any:
        return repr([session[name] for name in ("t", "b", "m", "u", "d", "nested",
                                                "looks_tagged")])

    @app.get("/flash_markup")
    def flash_markup() -> str:
        flash(Markup("<em>done</em>"))
        flash("plain")
        return "flashed"

    @app.get("/flash_types")
    def flash_types() -> str:
        return repr([type(message).__name__ for message in get_flashed_messages()])

    client = app.test_client()
    client.get("/store")
    assert client.get("/types").text == repr([
        (1, 2), b"\xff", Markup("<b>hi</b>"), ident, when, {"pairs": [("a", 1)]},
        {" t": "not a tuple"},
    ])
    # Flashed Markup stays Markup, so a template does not escape it.
    client.get("/flash_markup")
    assert client.get("/flash_types").text == "['Markup', 'str']"


def test_a_plain_value_is_stored_as_plain_json_and_changes_in_place(
    store: SessionStore, clock: Any
) -> None:
    from sessionshare.contrib import shared_session

    seen: dict[str, Any] = {}
    app = one_flask_app(store, clock)

    @app.get("/raw")
    def raw() -> str:
        shared = shared_session(request.environ)  # what another app of the deployment reads
        seen.update(cart=shared.get("cart"), pair=shared.get("pair"))
        return "ok"

    @app.get("/pair")
    def pair() -> str:
        session["pair"] = ("x", 1)
        return "ok"

    client = app.test_client()
    client.get("/start")  # session["cart"] = ["a"]
    client.get("/append", query_string={"item": "b"})  # appended in place
    client.get("/pair")
    client.get("/raw")
    assert seen == {"cart": ["a", "b"], "pair": {" t": ["x", 1]}}


# -- review: a value another app of the deployment stored ----------------------------------
@pytest.mark.parametrize("crafted", [
    {" t": 5},                       # a plain app's dict whose key looks like Flask's tag
    {" d": "not a date"},
    {" u": "not a uuid"},
    {" b": "!!not base64!!"},
    {" di": {}},
])
def test_a_value_another_app_stored_that_looks_tagged_is_no_500(
    store: SessionStore, clock: Any, crafted: dict[str, Any]
) -> None:
    # Another app of the deployment (Starlette, Django, plain WSGI) stores plain JSON: a
    # one-key dict whose key is one of Flask's tags is legal there. Reading it in Flask
    # must not end in a 500 (bad input: a clear answer, nothing lost).
    from sessionshare.contrib import shared_session

    app = one_flask_app(store, clock)

    @app.get("/plant")
    def plant() -> str:
        shared_session(request.environ)["other"] = crafted  # as a non-Flask app writes it
        return "planted"

    @app.get("/read")
    def read() -> str:
        return repr(session["other"])

    client = app.test_client()
    client.get("/plant")
    answer = client.get("/read")
    assert answer.status_code == 200, answer.status_code
