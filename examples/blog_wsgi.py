"""A remote app in plain WSGI: the blog. Every page needs a sign-in.

No framework: the user is ``environ["REMOTE_USER"]`` and the shared session
is ``environ["sessionshare.session"]``, a dict-like object whose changes the
middleware writes back. The cart the shop keeps in that session shows here.

    app = create_app(store=..., key=..., app_url="http://blog.localhost:8002",
                     idp_url="http://idp.localhost:8000/login", cookie_secure=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from sessionshare import RemoteSessionMiddleware


def blog(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    session = environ["sessionshare.session"]
    session["blog_visits"] = session.get("blog_visits", 0) + 1
    cart = ", ".join(map(str, session.get("cart", []))) or "empty"
    body = (
        "<!doctype html><meta charset=utf-8><title>Blog</title><h1>Blog</h1>"
        f"<p>Hello <b id=user>{escape(environ['REMOTE_USER'])}</b>, "
        f"visit number {session['blog_visits']}. Your shop cart: "
        f"<span id=cart>{escape(cart)}</span></p>"
        '<form method=post action="/_sessionshare/logout">'
        "<button id=logout>Sign out</button></form>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def create_app(
    *, wrap_app: Callable[[Any], Any] | None = None, **options: Any
) -> RemoteSessionMiddleware:
    """The blog; ``options`` go to RemoteSessionMiddleware (none: SESSIONSHARE_* variables).

    ``wrap_app`` wraps the bare app inside the middleware, where the shared
    session is visible (the demo adds its panel this way).
    """
    app = wrap_app(blog) if wrap_app else blog
    if not options:
        return RemoteSessionMiddleware.from_env(app)
    return RemoteSessionMiddleware(app, **options)
