"""sessionshare.testing: a test client signed in for one test, through the real write path.

The examples' own views are tested this way: the Pyramid shop, the WSGI blog
and the Flask IdP, each with the client its framework's tests use, on memory
and real Redis. A client that did not sign in is still sent to the IdP: the
helper switches nothing off.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import webtest
from flow import BLOG, IDP, LOGIN, SHOP

from sessionshare import ConfigurationError, SessionStore, SyncKey
from sessionshare.testing import sign_in, signed_in_cookie

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
    sign_in(client, shop, "alice", cart=["teapot"])
    page = client.get("/orders")
    assert page.status_int == 200
    assert page.html.find(id="user").text == "alice"
    assert page.html.find(id="cart").text == "teapot"


def test_the_wsgi_blog_counts_visits_in_the_shared_session(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **_common(store, clock))
    client = webtest.TestApp(blog)
    sign_in(client, blog, {"id": 7, "name": "Al"}, blog_visits=41)
    page = client.get("/")
    assert '"name": "Al"' in page.html.find(id="user").text
    assert "visit number 42" in page.text


def test_the_flask_idp_knows_the_user_through_flasks_test_client(
    store: SessionStore, clock: Callable[[], float], sessionshare_sign_in: Callable[..., None]
) -> None:
    idp = _example("idp_flask").create_app(app_url=IDP, known_remote_hosts=[SHOP],
                                           **_common(store, clock))
    client = idp.test_client()
    assert b"alice" not in client.get("/").data
    sessionshare_sign_in(client, idp.wsgi_app, "alice")  # the pytest fixture: the same
    assert b"alice" in client.get("/").data


def test_a_remote_session_made_for_one_app_is_not_valid_at_another(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # The helper makes a real session: this app's own cookie value, joined by this app.
    common = _common(store, clock)
    blog = _example("blog_wsgi").create_app(app_url=BLOG, idp_url=LOGIN, **common)
    shop = _example("shop_pyramid").create_app(app_url=SHOP, idp_url=LOGIN, **common)
    name, value = signed_in_cookie(blog, "alice")
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
