"""A remote app in plain WSGI: the blog. Every page but ``/about`` needs a sign-in.

No framework: the user is ``environ["REMOTE_USER"]`` and the shared session
is ``environ["sessionshare.session"]``, a dict-like object whose changes the
middleware writes back. The cart the shop keeps in that session shows here.
``/about`` is public: with the passive check on (the demo), it greets a user
signed in at the IdP by name, and shows anyone else a link to sign in.

    app = create_app(store=..., key=..., app_url="http://blog.localhost:8002",
                     idp_url="http://idp.localhost:8000/login", cookie_secure=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from sessionshare import RemoteSessionMiddleware

#: The paths anyone may see; every other one needs a sign-in.
PUBLIC = ("/about",)


def needs_sign_in(environ: dict[str, Any]) -> bool:
    """The middleware's ``protect``: every path but the public ones."""
    return environ.get("PATH_INFO", "") not in PUBLIC


def _html(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def about(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    user = environ.get("REMOTE_USER")  # set on this public page by the passive check
    greeting = (f"Hello, <b id=user>{escape(user)}</b>." if user
                else 'Welcome, guest. <a id=sign-in href="/">Sign in</a> to read the blog.')
    return _html(start_response, (
        "<!doctype html><meta charset=utf-8><title>About the blog</title><h1>Blog</h1>"
        f"<p id=greeting>{greeting}</p><p>A blog of the sessionshare demo.</p>"
    ).encode())


def blog(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/about":
        return about(environ, start_response)
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
    return _html(start_response, body)


def create_app(
    *, wrap_app: Callable[[Any], Any] | None = None, **options: Any
) -> RemoteSessionMiddleware:
    """The blog; ``options`` go to RemoteSessionMiddleware (none: SESSIONSHARE_* variables).

    ``wrap_app`` wraps the bare app inside the middleware, where the shared
    session is visible (the demo adds its panel this way).
    """
    app = wrap_app(blog) if wrap_app else blog
    if not options:
        return RemoteSessionMiddleware.from_env(app, protect=needs_sign_in)
    return RemoteSessionMiddleware(app, **{"protect": needs_sign_in, **options})
