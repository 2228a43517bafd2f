"""The test process's one Django configuration, its URLconf and the test views.

Django's settings can be set once per process, so the whole suite shares one
set, made in ``conftest.pytest_configure`` by :func:`configure`: the forum
example's own settings (``examples/forum_django.py``), with this module as
the URLconf -- the forum's pages plus the views below. Every Django app a
test builds (``get_wsgi_application(**options)``) serves that one project;
what differs between them is the ``SESSIONSHARE`` options they are given
(the IdP's or a remote's), so one test can run a Django IdP and a Django
remote side by side.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

import sessionshare.demo as demo

LOGIN_TEMPLATE = (
    "login form <form method=post>{% csrf_token %}{{ form.as_p }}"
    "<button>Sign in</button></form>"
)


def configure() -> None:
    """Django for the suite (once): the forum's settings, this URLconf, a login template."""
    if settings.configured:
        return
    forum = demo.load_example("forum_django")
    settings.configure(**{
        **forum.SETTINGS,
        "ROOT_URLCONF": "django_site",
        "SESSIONSHARE": {},
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3",
                                  "NAME": "file:sessionshare-tests?mode=memory&cache=shared"}},
        # The Django IdP signs in with a password; the remotes by REMOTE_USER.
        "AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.RemoteUserBackend",
                                    "django.contrib.auth.backends.ModelBackend"],
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast tests
        "TEMPLATES": [{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {
                "registration/login.html": LOGIN_TEMPLATE})]},
        }],
    })
    import django
    from django.core.management import call_command

    django.setup()
    # The main thread's connection stays open: the in-memory database lives on.
    call_command("migrate", run_syncdb=True, verbosity=0)


def _urlpatterns() -> list[Any]:
    import json

    from django.contrib.auth import logout
    from django.contrib.auth.decorators import login_required
    from django.contrib.auth.views import LoginView
    from django.http import HttpResponse, JsonResponse
    from django.middleware.csrf import get_token
    from django.urls import path
    from django.views.decorators.csrf import csrf_protect

    def seen(request: Any) -> dict[str, Any]:
        return {
            "user": request.user.get_username() if request.user.is_authenticated else None,
            "remote_user": request.META.get("REMOTE_USER"),
            "keys": sorted(request.session.keys()),
            "cart": request.session.get("cart"),
        }

    def whoami(request: Any) -> JsonResponse:
        return JsonResponse(seen(request))

    @login_required
    def orders(request: Any) -> JsonResponse:
        return JsonResponse(seen(request))

    @csrf_protect
    def form(request: Any) -> HttpResponse:
        if request.method == "POST":
            request.session.setdefault("cart", []).append(request.POST["item"])
            return JsonResponse(seen(request))
        return HttpResponse(json.dumps({"csrf": get_token(request)}),
                            content_type="application/json")

    def cycle(request: Any) -> HttpResponse:
        request.session.cycle_key()  # what Django's login() does, and apps after a change
        return HttpResponse("cycled")

    def sign_out(request: Any) -> HttpResponse:
        logout(request)  # Django's own: flush(), the shared session ends everywhere
        return HttpResponse("signed out")

    forum = demo.load_example("forum_django")
    return [
        path("login", LoginView.as_view()),
        path("whoami", whoami),
        path("orders", orders),
        path("form", form),
        path("cycle", cycle),
        path("django-logout", sign_out),
        *forum.urlpatterns,
    ]


def __getattr__(name: str) -> Any:
    # The URLconf is read by Django after configure(); the views need Django set up.
    if name == "urlpatterns":
        globals()["urlpatterns"] = patterns = _urlpatterns()
        return patterns
    raise AttributeError(name)
