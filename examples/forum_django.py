"""A remote app on Django, in one file: the forum. ``/`` is a ``login_required`` view.

``request.session`` is the shared session (the shop's cart is in it) and
``request.user`` the user the IdP signed in, made a local ``User`` by
Django's ``RemoteUserBackend`` on first sight. An anonymous visit to ``/``
goes through ``login_required`` to ``LOGIN_URL``, which sessionshare turns
into the hand-off. The "add a sticker" form is checked by Django's CSRF
middleware; Django's own session keys stay this site's.

    app = create_app(store=..., key=..., app_url="http://forum.localhost:8004",
                     idp_url="http://idp.localhost:8000/login", cookie_secure=False)
    # or, configured by SESSIONSHARE_* variables: gunicorn 'forum_django:create_app()'

Django's settings can be set once per process: :func:`configure` sets this
file's (an in-memory SQLite database for the users) unless the process has
configured Django already.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import django
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.http import require_POST

from sessionshare.contrib.django.views import sign_in
from sessionshare.contrib.django.wsgi import get_wsgi_application

SETTINGS: dict[str, Any] = {
    "SECRET_KEY": "forum-demo-only-not-secret",  # signs Django's own things, not the session
    "ALLOWED_HOSTS": ["*"],
    "ROOT_URLCONF": __name__,
    # sessionshare.contrib.django: manage.py check runs sessionshare's checks too.
    "INSTALLED_APPS": ["django.contrib.auth", "django.contrib.contenttypes",
                       "django.contrib.messages", "sessionshare.contrib.django"],
    "MIDDLEWARE": [
        "django.middleware.security.SecurityMiddleware",
        "sessionshare.contrib.django.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.PersistentRemoteUserMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    "SESSION_ENGINE": "sessionshare.contrib.django.session",
    # Django's default keeps its session cookie across a browser restart; the demo's
    # sites all end theirs with the browser, so that only the IdP's "Remember me"
    # outlives it (README, "Remember me").
    "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
    "AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.RemoteUserBackend"],
    "MESSAGE_STORAGE": "django.contrib.messages.storage.session.SessionStorage",
    # The users live in memory, shared by the server's threads, for this process only.
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3",
                              "NAME": "file:sessionshare-forum?mode=memory&cache=shared"}},
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "USE_TZ": True,
}


def configure() -> None:
    """Django with this file's settings, and its tables (unless Django is configured)."""
    if settings.configured:
        return
    settings.configure(**SETTINGS)
    django.setup()
    from django.core.management import call_command

    # This thread's connection stays open, so the in-memory database lives on.
    call_command("migrate", run_syncdb=True, verbosity=0)


@login_required
def home(request: Any) -> HttpResponse:
    flashes = "".join(f"<p class=flash>{escape(str(m))}</p>"
                      for m in messages.get_messages(request))
    cart = ", ".join(map(str, request.session.get("cart", []))) or "empty"
    return HttpResponse(
        "<!doctype html><meta charset=utf-8><title>Forum</title><h1>Forum</h1>"
        f"{flashes}<p>Hello <b id=user>{escape(request.user.get_username())}</b>. "
        f"Your shop cart: <span id=cart>{escape(cart)}</span></p>"
        f'<form method=post action="/sticker"><input type=hidden name=csrfmiddlewaretoken '
        f'value="{get_token(request)}"><button id=sticker>Add a forum sticker</button></form>'
        '<form method=post action="/_sessionshare/logout"><button id=logout>Sign out</button>'
        "</form>"
    )


@require_POST
@login_required
def sticker(request: Any) -> HttpResponseRedirect:
    request.session.setdefault("cart", []).append("sticker")  # noticed without modified
    messages.info(request, "Added a sticker.")
    return HttpResponseRedirect("/")


urlpatterns = [
    path("", home),
    path("sticker", sticker),
    path("accounts/login/", sign_in),  # LOGIN_URL: protected, so it starts the hand-off
]


def create_app(*, wrap_app: Callable[[Any], Any] | None = None, **options: Any) -> Any:
    """The forum; ``options`` go to RemoteSessionMiddleware over ``SESSIONSHARE``
    (and the ``SESSIONSHARE_*`` variables for what neither sets).

    ``wrap_app`` wraps Django's handler inside the middleware, where the shared
    session is visible (the demo adds its panel this way).
    """
    configure()
    # Public pages are allowed; `/` asks for a sign-in itself (login_required).
    return get_wsgi_application(wrap_app=wrap_app, **{"protect": False, **options})
