"""``sessionshare.contrib.pyramid``: Pyramid apps on both sides of the hand-off.

A Pyramid IdP and a Pyramid remote, each with
``config.include("sessionshare.contrib.pyramid")`` and
``RemoteUserSecurityPolicy``, use only ``request.session`` (flash queues,
Pyramid's own ``require_csrf`` check, ``invalidate()``) and
``request.identity``. Runs against MemoryStore and real Redis, under WebTest.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import pytest
from flow import IDP, LOGIN, PASSWORDS, SHOP, Browser
from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator
from pyramid.interfaces import ISession
from pyramid.request import Request
from zope.interface.verify import verifyObject

from sessionshare import (
    ConfigurationError,
    IdpAuthMiddleware,
    RemoteSessionMiddleware,
    Session,
    SessionStore,
    SyncKey,
)
from sessionshare.contrib.pyramid import PyramidSharedSession, RemoteUserSecurityPolicy


class Root:
    __acl__ = [(Allow, Authenticated, "buy")]

    def __init__(self, request: Any) -> None:
        pass


def login(request: Any) -> Any:
    if request.method == "POST":  # require_csrf has checked csrf_token already
        name = request.POST.get("username", "")
        if PASSWORDS.get(name) == request.POST.get("password"):
            request.session["user"] = name
            request.session.flash(f"welcome {name}", queue="info")
            return request.response
    request.response.text = f"login form csrf={request.session.get_csrf_token()}"
    return request.response


def state(request: Any) -> dict[str, Any]:
    session = request.session
    return {
        "identity": request.identity, "userid": request.authenticated_userid,
        "user": session.get("user"), "cart": session.get("cart"), "new": session.new,
        "created": session.created, "peek": session.peek_flash("info"),
        "info": session.pop_flash("info"), "messages": session.pop_flash(),
        "csrf": session.get_csrf_token(),
    }


def add_to_cart(request: Any) -> dict[str, Any]:
    request.session.setdefault("cart", []).append(request.POST["item"])  # in place
    request.session.changed()
    request.session.flash("cart updated", allow_duplicate=False)
    return {"cart": request.session["cart"]}


def rotate_csrf(request: Any) -> dict[str, Any]:
    return {"csrf": request.session.new_csrf_token()}


def end(request: Any) -> dict[str, Any]:
    request.session.invalidate()
    request.session.flash("signed out")  # lands in a fresh, signed-out session
    return {}


def pyramid_app(views: dict[str, Any]) -> Any:
    with Configurator(root_factory=Root) as config:
        config.include("sessionshare.contrib.pyramid")
        config.set_security_policy(RemoteUserSecurityPolicy())
        config.set_default_csrf_options(require_csrf=True)
        for path, (view, options) in views.items():
            name = path.strip("/").replace("/", "-") or "home"
            config.add_route(name, path)
            config.add_view(view, route_name=name, **options)
        return config.make_wsgi_app()


JSON = {"renderer": "json"}


def pyramid_deployment(store: SessionStore, clock: Any) -> SimpleNamespace:
    common: dict[str, Any] = {
        "store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock,
    }
    idp = pyramid_app({"/login": (login, {}), "/state": (state, JSON)})
    shop = pyramid_app({
        "/orders": (state, JSON), "/cart": (add_to_cart, JSON), "/csrf": (rotate_csrf, JSON),
        "/end": (end, JSON), "/orders/buy": (state, {**JSON, "permission": "buy"}),
        "/buy": (state, {**JSON, "permission": "buy"}), "/": (state, JSON),
    })
    return SimpleNamespace(
        idp=IdpAuthMiddleware(idp, app_url=IDP, known_remote_hosts=[SHOP], **common),
        shop=RemoteSessionMiddleware(
            shop, app_url=SHOP, idp_url=LOGIN, protect=["/orders", "/cart", "/csrf"], **common
        ),
        blog=None,
    )


@pytest.fixture
def browser(store: SessionStore, clock: Any) -> Browser:
    return Browser(pyramid_deployment(store, clock))  # type: ignore[arg-type]


def sign_in(browser: Browser, remote_url: str, user: str = "alice") -> Any:
    login_url = browser.start_login(remote_url)
    form = browser.get(login_url)
    token = re.search(r"csrf=(\w+)", form.text)
    assert form.status_int == 200 and token is not None, form
    answer = browser.post(login_url, {"username": user, "password": PASSWORDS[user],
                                      "csrf_token": token.group(1)})
    assert answer.status_int == 303 and answer.location.startswith(SHOP + "/_sessionshare/")
    back = browser.get(answer.location)
    assert back.status_int == 303, back
    return browser.get(SHOP + back.location)


def test_request_session_on_both_sides_is_one_session(browser: Browser, clock: Any) -> None:
    signed_in_at = int(clock.now)
    page = sign_in(browser, SHOP + "/orders")
    assert page.status_int == 200
    seen = page.json
    # REMOTE_USER, read by the security policy, and the IdP's writes, read here.
    assert seen["identity"] == seen["userid"] == seen["user"] == "alice"
    assert seen["new"] is False and seen["created"] == signed_in_at
    # The flash queued at the IdP: peek leaves it, pop takes it.
    assert seen["peek"] == seen["info"] == ["welcome alice"]
    assert browser.get(SHOP + "/orders").json["info"] == []

    # Pyramid's own CSRF check (require_csrf) against the token in the shared session.
    csrf = seen["csrf"]
    assert browser.get(IDP + "/state").json["csrf"] == csrf  # the same token at the IdP
    assert browser.post(SHOP + "/cart", {"item": "teapot"}).status_int == 400
    forged = {"item": "teapot", "csrf_token": "x" * 40}
    assert browser.post(SHOP + "/cart", forged).status_int == 400
    for item in ("teapot", "mug"):
        added = browser.post(SHOP + "/cart", {"item": item, "csrf_token": csrf})
        assert added.status_int == 200
    assert added.json == {"cart": ["teapot", "mug"]}
    at_idp = browser.get(IDP + "/state").json
    assert at_idp["cart"] == ["teapot", "mug"]
    assert at_idp["messages"] == ["cart updated"]  # allow_duplicate=False kept one

    # A new token replaces the old one everywhere.
    fresh = browser.post(SHOP + "/csrf", {"csrf_token": csrf}).json["csrf"]
    assert fresh != csrf and browser.get(IDP + "/state").json["csrf"] == fresh
    assert browser.post(SHOP + "/cart", {"item": "x", "csrf_token": csrf}).status_int == 400


def test_invalidate_signs_out_everywhere_and_later_writes_start_a_new_session(
    browser: Browser,
) -> None:
    csrf = sign_in(browser, SHOP + "/orders").json["csrf"]
    old = browser.cookie("shop.test")
    ended = browser.post(SHOP + "/end", {"csrf_token": csrf})
    assert ended.status_int == 200
    new = browser.cookie("shop.test")
    assert new and new != old
    after = browser.get(SHOP + "/").json  # unprotected: no redirect
    assert after["user"] is None and after["identity"] is None
    assert after["messages"] == ["signed out"]
    idp = browser.get(IDP + "/state").json
    assert idp["user"] is None and idp["new"] is True
    assert browser.get(SHOP + "/orders").status_int == 302


def test_acl_permits_follow_remote_user(browser: Browser) -> None:
    assert browser.get(SHOP + "/buy").status_int == 403  # nobody signed in
    sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/orders/buy").json["identity"] == "alice"
    # REMOTE_USER is set on protected paths only: elsewhere the policy sees nobody.
    assert browser.get(SHOP + "/buy").status_int == 403


def test_a_remote_user_the_server_set_is_nobody_to_the_security_policy(browser: Browser) -> None:
    # RemoteUserSecurityPolicy trusts REMOTE_USER: one set by the server or a proxy made an
    # anonymous visitor "admin", with admin's permits. Only the middleware's user counts.
    planted = {"REMOTE_USER": "admin"}
    assert browser.get(SHOP + "/buy", extra_environ=planted).status_int == 403
    anonymous = browser.get(SHOP + "/", extra_environ=planted).json
    assert anonymous["identity"] is None and anonymous["userid"] is None
    sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/orders/buy", extra_environ=planted).json["identity"] == "alice"


def test_the_session_provides_isession() -> None:
    session = PyramidSharedSession(Session())
    assert verifyObject(ISession, session)
    before = int(time.time())
    assert session.new is True and before <= session.created <= int(time.time())
    session.flash("a")
    session.flash("a", allow_duplicate=False)
    session.flash("b", queue="q")
    assert session.peek_flash() == ["a"] and session.pop_flash("q") == ["b"]
    assert session.pop_flash("q") == [] and session.get_csrf_token() == session.get_csrf_token()
    with pytest.raises(TypeError, match="only JSON values"):
        session.flash(object())
    assert session.peek_flash() == ["a"]


def test_without_the_middleware_request_session_says_what_to_wrap() -> None:
    with Configurator() as config:
        config.include("sessionshare.contrib.pyramid")
    request = Request.blank("/")
    request.registry = config.registry
    with pytest.raises(ConfigurationError, match="wrap the WSGI app in IdpAuthMiddleware"):
        request.session  # noqa: B018


def test_a_final_newline_reaches_pyramids_view_so_it_is_protected_too(browser: Browser) -> None:
    # Pyramid matches the route "/orders" with a "$" that also matches before a final
    # newline: GET /orders%0A is the /orders view, and must need the sign-in /orders does.
    for path in ("/orders", "/orders%0A"):
        refused = browser.get(SHOP + path, headers={"Accept": "application/json"}, status="*")
        assert refused.status_int == 401, (path, refused.text)
        assert refused.json["error"] == "not_authenticated"
    sign_in(browser, SHOP + "/orders")
    assert browser.get(SHOP + "/orders%0A").json["identity"] == "alice"


def test_vary_cookie_only_where_a_view_used_the_session(store: SessionStore, clock: Any) -> None:
    import webtest

    def public(request: Any) -> Any:
        request.response.text = "the same for everyone"
        return request.response

    def look(request: Any) -> Any:
        request.response.text = str(request.session.get("n"))
        request.response.vary = ("Accept-Encoding",)
        return request.response

    def count(request: Any) -> Any:
        request.session["n"] = request.session.get("n", 0) + 1
        return request.response

    app = RemoteSessionMiddleware(
        pyramid_app({"/public": (public, {}), "/look": (look, {}), "/count": (count, {})}),
        store=store, key=SyncKey.generate(), app_url=SHOP, idp_url=LOGIN, protect=False,
        cookie_secure=False, clock=clock,
    )
    client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "shop.test"})
    assert "Vary" not in client.get("/public").headers
    assert client.get("/count").headers["Vary"] == "Cookie"
    assert "Vary" not in client.get("/public").headers  # with the cookie: still public
    looked = client.get("/look")
    assert looked.text == "1"
    assert [v for n, v in looked.headerlist if n == "Vary"] == ["Accept-Encoding, Cookie"]
