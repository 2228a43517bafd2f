"""Test helpers: put a test client into a signed-in state, one test at a time.

An app behind sessionshare serves its protected pages only to a browser that
signed in at the IdP and came back through a hand-off. A test of the app's
own views wants to start *after* that: signed in as some user, with some
session data. :func:`sign_in` makes exactly that session in the middleware's
store -- through the library's own write path, so it is a real session with
this app's own cookie value, its sign-in time and (at a remote) the record
that this app joined it -- and gives the test client its cookie::

    from sessionshare.testing import sign_in

    def test_orders_page(client):                      # a Flask test client, say
        sign_in(client, app.wsgi_app, "alice", cart=[3])
        assert client.get("/orders").status_code == 200

It is explicit per test: nothing is switched off, no check is skipped, and a
client that did not sign in is sent to the IdP as in production. Use a
:class:`~sessionshare.MemoryStore` in tests (no Redis needed); any store works.

With pytest, the ``sessionshare_sign_in`` fixture is this same function (the
plugin registers itself when sessionshare is installed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .core.remote import RemoteSide
from .core.session import Session
from .core.steps import run
from .errors import ConfigurationError

__all__ = ["sign_in", "signed_in_cookie"]


def signed_in_cookie(
    middleware: Any,
    user: Any,
    data: dict[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> tuple[str, str]:
    """Store a session signed in as ``user`` (with ``data``) for ``middleware``'s app; the
    ``(name, value)`` of the session cookie that app reads it from.

    ``middleware`` is an :class:`~sessionshare.IdpAuthMiddleware` or
    :class:`~sessionshare.RemoteSessionMiddleware` (for Flask: ``app.wsgi_app``).
    Use the pair for a client this module does not know.
    """
    side = getattr(middleware, "side", None)
    manager = getattr(middleware, "manager", None)
    if side is None or manager is None:
        raise ConfigurationError(
            f"sign_in needs the sessionshare middleware (for Flask: app.wsgi_app), "
            f"not {type(middleware).__name__}"
        )
    now = (clock or side.clock)()
    session = Session()
    session.update(data or {})
    session[side.user_key] = user
    session.mark_authenticated(now)
    if isinstance(side, RemoteSide):
        session.mark_joined(side.origin, now)  # as a completed hand-off records it
    headers = run(side.lifecycle.persist(session), manager.store)
    cookie = side.lifecycle.cookie
    for name, value in headers:
        if name == "Set-Cookie" and value.startswith(cookie.name + "="):
            return cookie.name, value.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("persisting a new signed-in session set no cookie")  # pragma: no cover


def sign_in(client: Any, middleware: Any, user: Any, **data: Any) -> None:
    """Sign ``client`` in at ``middleware``'s app as ``user``, with session ``data``.

    ``client``: a WebTest ``TestApp`` (for Django, around
    ``sessionshare.contrib.django.wsgi.get_wsgi_application()``: Django's own
    test ``Client`` calls the handler without the WSGI middleware) or a
    Flask/werkzeug test client. For anything else, send the cookie from
    :func:`signed_in_cookie` yourself.
    """
    name, value = signed_in_cookie(middleware, user, data)
    if hasattr(client, "set_cookie") and hasattr(client, "cookiejar"):  # WebTest TestApp
        client.set_cookie(name, value)
    elif hasattr(client, "set_cookie") and hasattr(client, "application"):  # werkzeug/Flask
        client.set_cookie(name, value)  # for the host its requests use (localhost)
    else:
        raise TypeError(
            f"sign_in does not know {type(client).__name__}; send the cookie yourself: "
            "name, value = signed_in_cookie(middleware, user)"
        )

