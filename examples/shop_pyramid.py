"""A remote app on Pyramid: the shop. ``/orders`` needs a sign-in, ``/`` does not.

``request.session`` is the shared session (flash messages and the CSRF token
included) and ``request.identity`` the user the IdP signed in, read from
``REMOTE_USER`` by RemoteUserSecurityPolicy. The cart lives in the shared
session, so the blog shows it too.

    app = create_app(store=..., key=..., app_url="http://shop.localhost:8001",
                     idp_url="http://idp.localhost:8000/login", cookie_secure=False)
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response

from sessionshare import RemoteSessionMiddleware
from sessionshare.contrib.pyramid import RemoteUserSecurityPolicy

ITEMS = ("teapot", "kettle", "mug")


def home(request: Any) -> Response:
    # A public page: with the passive check on (the demo), it knows a user signed in at
    # the IdP without ever showing a login form.
    greeting = (f"Hello, <b id=user>{escape(request.identity)}</b>." if request.identity
                else "Welcome, guest.")
    return Response("<!doctype html><title>Shop</title><h1>Shop</h1>"
                    f"<p id=greeting>{greeting}</p>"
                    '<p><a id=orders href="/orders">Your orders</a></p>')


def orders(request: Any) -> Response:
    flashes = "".join(f"<p class=flash>{escape(m)}</p>" for m in request.session.pop_flash())
    cart = ", ".join(map(str, request.session.get("cart", []))) or "empty"
    buttons = "".join(f"<button name=item value={i}>Add a {i}</button>" for i in ITEMS)
    return Response(
        f"<!doctype html><title>Orders</title><h1>Shop</h1>{flashes}"
        f"<p>Signed in as <b id=user>{escape(request.identity)}</b>. "
        f"Cart: <span id=cart>{escape(cart)}</span></p><form method=post>"
        f'<input type=hidden name=csrf_token value="{request.session.get_csrf_token()}">'
        f"{buttons}</form><form method=post action=/_sessionshare/logout>"
        "<button id=logout>Sign out</button></form>"
    )


def add_to_cart(request: Any) -> HTTPSeeOther:
    item = request.POST.get("item")
    if item in ITEMS:
        request.session.setdefault("cart", []).append(item)  # noticed without changed()
        request.session.flash(f"Added a {item}.")
    return HTTPSeeOther("/orders")


def create_app(*, wrap_app: Callable[[Any], Any] | None = None, **options: Any) -> Any:
    """The shop; ``options`` go to RemoteSessionMiddleware (none: SESSIONSHARE_* variables).

    ``wrap_app`` wraps the Pyramid app inside the middleware, where the shared
    session is visible (the demo adds its panel this way).
    """
    with Configurator() as config:
        config.include("sessionshare.contrib.pyramid")
        config.set_security_policy(RemoteUserSecurityPolicy())
        config.set_default_csrf_options(require_csrf=True)  # every POST carries csrf_token
        config.add_route("home", "/")
        config.add_route("orders", "/orders")
        config.add_view(home, route_name="home")
        config.add_view(orders, route_name="orders", request_method="GET")
        config.add_view(add_to_cart, route_name="orders", request_method="POST")
        app = config.make_wsgi_app()
    if wrap_app:
        app = wrap_app(app)
    if not options:
        return RemoteSessionMiddleware.from_env(app, protect=["/orders"])
    return RemoteSessionMiddleware(app, **{"protect": ["/orders"], **options})
