"""``sessionshare.contrib.flask_login``: Flask-Login's ``login_user``/``logout_user``,
``current_user`` and ``@login_required`` on a Flask IdP and Flask remotes.

A Flask IdP signs users in and out with Flask-Login's own ``login_user()`` and
``logout_user()``; two Flask remotes guard views with Flask-Login's own
``@login_required`` and read ``current_user``. Each app's users come from its
own loader, given the shared user. Driven end to end through the hand-off
(tests/flow.py's Browser), on MemoryStore and real Redis.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify, request, session
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    fresh_login_required,
    login_required,
    login_user,
    logout_user,
)
from flow import BLOG, IDP, LOGIN, PASSWORDS, SHOP, Browser
from werkzeug.middleware.proxy_fix import ProxyFix

from sessionshare import (
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RemoteSessionMiddleware,
    SessionStore,
    SyncKey,
)
from sessionshare.contrib.flask_login import SIGN_IN_PATH, init_login

#: The remotes protect only the sign-in path: the rest is public unless a view says not.
PROTECT = [SIGN_IN_PATH]


class User(UserMixin):
    def __init__(self, name: str, app: str) -> None:
        self.id = name
        self.app = app


def loader_of(app_name: str, known: set[str] | None = None) -> Any:
    """An app's own user loader: the shared user's id -> this app's user (or None)."""
    names = set(PASSWORDS) if known is None else known

    def load_user(user_id: str) -> User | None:
        return User(user_id, app_name) if user_id in names else None

    return load_user


def idp_flask() -> Flask:
    app = Flask("idp")
    app.secret_key = "only for Flask-Login's own cookie, which sessionshare turns off"
    manager = LoginManager(app)
    manager.login_view = "login"

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            name = request.form["username"]
            if PASSWORDS.get(name) != request.form["password"]:
                return "login form: wrong password"
            login_user(User(name, "idp"), remember=request.form.get("remember") == "on")
            return "signed in"
        return "login form"

    @app.route("/logout", methods=["POST"])
    def logout() -> Any:
        logout_user()
        return jsonify(authenticated=current_user.is_authenticated)

    @app.route("/withdraw", methods=["POST"])
    def withdraw() -> Any:
        session.shared.withdraw(request.form["origin"])  # type: ignore[attr-defined]
        return "withdrawn"

    @app.route("/me")
    @login_required
    def me() -> Any:
        return jsonify(user=current_user.id, app=current_user.app, shared=session.get("user"),
                       flask_login_id=session.get("_user_id"))

    return app


def remote_flask(name: str) -> Flask:
    app = Flask(name)
    LoginManager(app)

    @app.route("/orders")
    @login_required
    def orders() -> Any:
        return jsonify(user=current_user.id, app=current_user.app)

    @app.route("/settings")
    @fresh_login_required
    def settings() -> Any:
        return jsonify(user=current_user.id)

    @app.route("/public")
    def public() -> Any:
        return jsonify(authenticated=current_user.is_authenticated)

    @app.route("/logout", methods=["POST"])
    def logout() -> Any:
        logout_user()
        return jsonify(authenticated=current_user.is_authenticated)

    @app.route("/impersonate", methods=["POST"])
    def impersonate() -> Any:
        login_user(User("bob", name))  # a remote does not sign anyone in
        return "signed in as bob"

    return app


def deployment(store: SessionStore, clock: Any, *, protect: Any = PROTECT,
               blog_users: set[str] | None = None) -> SimpleNamespace:
    common: dict[str, Any] = {
        "store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock,
    }
    idp, shop, blog = idp_flask(), remote_flask("shop"), remote_flask("blog")
    idp.wsgi_app = IdpAuthMiddleware(  # type: ignore[method-assign]
        idp.wsgi_app, app_url=IDP, known_remote_hosts=[SHOP, BLOG], max_remember=30 * 86400,
        **common)
    shop.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        shop.wsgi_app, app_url=SHOP, idp_url=LOGIN, protect=protect, **common)
    blog.wsgi_app = RemoteSessionMiddleware(  # type: ignore[method-assign]
        blog.wsgi_app, app_url=BLOG, idp_url=LOGIN, protect=protect, **common)
    for app, known in ((idp, None), (shop, None), (blog, blog_users)):
        app.testing = True  # a view's exception fails the test instead of becoming a 500
        init_login(app, app.login_manager, load_user=loader_of(app.name, known))
    return SimpleNamespace(idp=idp.wsgi_app, shop=shop.wsgi_app, blog=blog.wsgi_app)


@pytest.fixture
def browser(store: SessionStore, clock: Any) -> Browser:
    return Browser(deployment(store, clock))  # type: ignore[arg-type]


def follow_sign_in(browser: Browser, url: str, user: str = "alice", **form: str) -> Any:
    """GET a ``@login_required`` page signed out and follow every hop to the page, filling
    in the IdP's form once."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    hops: list[str] = []
    page = browser.get(url)
    while page.status_int in (302, 303):
        location = page.location
        if location.startswith("/"):
            location = origin + location
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(location))
        hops.append(location)
        page = browser.get(location)
        if page.status_int == 200 and "login form" in page.text:
            page = browser.post(location, {"username": user, "password": PASSWORDS[user],
                                           **form})
    page.hops = hops
    return page


def test_login_required_at_a_remote_leads_through_the_hand_off(browser: Browser) -> None:
    page = follow_sign_in(browser, SHOP + "/orders?page=2")
    assert page.status_int == 200 and page.json == {"user": "alice", "app": "shop"}
    # Flask-Login's own redirect to the sign-in path, the middleware's hand-off from there,
    # and back to the page that asked.
    assert page.hops[0] == SHOP + SIGN_IN_PATH + "?next=%2Forders%3Fpage%3D2"
    assert page.hops[1].startswith(LOGIN + "?")
    assert page.hops[-1] == SHOP + "/orders?page=2"
    # Signed in at the IdP too, by Flask-Login's login_user(): the shared user is the
    # user's id, and Flask-Login's own copy of it is not shared.
    me = browser.get(IDP + "/me").json
    assert me == {"user": "alice", "app": "idp", "shared": "alice", "flask_login_id": None}
    # The second remote: its own hand-off, no form, and its own user object.
    blog = follow_sign_in(browser, BLOG + "/orders")
    assert blog.json == {"user": "alice", "app": "blog"}
    assert not any(hop.startswith(LOGIN) and "login form" in hop for hop in blog.hops)


def test_current_user_is_anonymous_until_signed_in(browser: Browser) -> None:
    assert browser.get(SHOP + "/public").json == {"authenticated": False}
    refused = browser.get(SHOP + "/orders", headers={"Accept": "application/json"})
    assert refused.status_int == 302  # Flask-Login's own answer: to the sign-in path
    follow_sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/public").json == {"authenticated": True}


def test_logout_user_at_the_idp_signs_out_everywhere(browser: Browser) -> None:
    follow_sign_in(browser, SHOP + "/orders")
    follow_sign_in(browser, BLOG + "/orders")
    out = browser.post(IDP + "/logout")
    assert out.json == {"authenticated": False}
    for remote in (SHOP, BLOG):
        assert browser.get(remote + "/public").json == {"authenticated": False}
        assert browser.get(remote + "/orders").status_int == 302
    assert browser.get(IDP + "/me").status_int == 302  # to the IdP's own login view


def test_logout_user_at_a_remote_signs_out_everywhere(browser: Browser) -> None:
    follow_sign_in(browser, SHOP + "/orders")
    assert browser.post(SHOP + "/logout").json == {"authenticated": False}
    assert browser.get(IDP + "/me").status_int == 302
    assert browser.get(SHOP + "/public").json == {"authenticated": False}


def test_a_user_the_remote_does_not_know_is_anonymous_there(store: SessionStore,
                                                            clock: Any) -> None:
    browser = Browser(deployment(store, clock, blog_users={"bob"}))  # type: ignore[arg-type]
    follow_sign_in(browser, SHOP + "/orders")
    # Signed in by the hand-off, but the blog's loader has no such user: a 403 that says
    # so, not a loop back to the IdP; anonymous on its public pages.
    refused = follow_sign_in(browser, BLOG + "/orders")
    assert refused.status_int == 403 and "no account for you" in refused.text
    assert refused.hops[-1].startswith(BLOG + SIGN_IN_PATH)
    assert browser.get(BLOG + "/public").json == {"authenticated": False}


def test_a_withdrawn_remote_sees_no_user(store: SessionStore, clock: Any) -> None:
    dep = deployment(store, clock)
    browser = Browser(dep)  # type: ignore[arg-type]
    follow_sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/public").json == {"authenticated": True}
    assert browser.post(IDP + "/withdraw", {"origin": SHOP}).text == "withdrawn"
    assert browser.get(SHOP + "/public").json == {"authenticated": False}
    assert browser.get(IDP + "/me").json["user"] == "alice"  # still signed in at the IdP


def test_login_user_with_remember_makes_the_shared_sign_in_persistent(browser: Browser
                                                                      ) -> None:
    page = follow_sign_in(browser, SHOP + "/orders", remember="on")
    assert page.status_int == 200
    # sessionshare's remembered sign-in, not Flask-Login's own cookie.
    assert "remember_token" not in browser.apps["id.test"].cookies
    shop_cookie = [c for c in browser.apps["shop.test"].cookiejar if c.name == "sessionshare"]
    assert shop_cookie and shop_cookie[0].expires is not None  # a Max-Age: kept
    idp_cookie = [c for c in browser.apps["id.test"].cookiejar if c.name == "sessionshare"]
    assert idp_cookie and idp_cookie[0].expires is not None


def test_login_user_honours_its_duration(browser: Browser) -> None:
    answer = browser.post(LOGIN, {"username": "alice", "password": "wonderland",
                                  "remember": "on"})
    assert answer.text == "signed in"
    header = [h for h in answer.headers.getall("Set-Cookie") if h.startswith("sessionshare=")]
    max_age = re.search(r"Max-Age=(\d+)", header[0])
    # Flask-Login's REMEMBER_COOKIE_DURATION (365 days) asked, the IdP grants 30.
    assert max_age is not None and int(max_age.group(1)) == 30 * 86400


def test_fresh_login_required_holds_after_a_sign_in(browser: Browser) -> None:
    follow_sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/settings").json == {"user": "alice"}


def test_login_user_at_a_remote_is_refused_with_what_to_do(browser: Browser) -> None:
    with pytest.raises(RuntimeError, match="sign users in at the IdP"):
        browser.post(SHOP + "/impersonate")
    assert browser.get(SHOP + "/public").json == {"authenticated": False}


def test_an_unprotected_sign_in_path_fails_with_the_fix(store: SessionStore,
                                                       clock: Any) -> None:
    browser = Browser(deployment(store, clock, protect=["/elsewhere"]))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=re.escape(f"protect=[..., {SIGN_IN_PATH!r}]")):
        browser.get(SHOP + SIGN_IN_PATH + "?next=/orders")


def test_sign_in_goes_back_to_local_pages_only(browser: Browser) -> None:
    follow_sign_in(browser, SHOP + "/orders")
    for target, landing in [("/orders?x=1", "/orders?x=1"), ("//evil.test/x", "/"),
                            ("http://evil.test/", "/"), ("", "/")]:
        answer = browser.get(SHOP + SIGN_IN_PATH, params={"next": target})
        assert answer.status_int == 302
        assert urlsplit(answer.location)._replace(scheme="", netloc="").geturl() == landing


def test_init_login_needs_the_middleware_in_front() -> None:
    app = Flask("bare")
    with pytest.raises(ConfigurationError, match="wrap app.wsgi_app"):
        init_login(app, LoginManager(app), load_user=loader_of("bare"))
    # Found through the wrappers in front of it (ProxyFix, say).
    app.wsgi_app = ProxyFix(RemoteSessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store=MemoryStore(), key=SyncKey.generate(), app_url=SHOP,
        idp_url=LOGIN, cookie_secure=False))
    manager = LoginManager(app)
    init_login(app, manager, load_user=loader_of("bare"))
    assert manager.login_view == "sessionshare_sign_in"
    assert app.url_map.bind("shop.test").match(SIGN_IN_PATH)[0] == "sessionshare_sign_in"
