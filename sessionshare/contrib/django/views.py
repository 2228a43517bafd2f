"""``LOGIN_URL`` at a remote: where ``login_required`` sends an anonymous visitor.

Mount :func:`sign_in` at Django's ``LOGIN_URL`` (``/accounts/login/`` unless
you changed it)::

    from django.urls import path
    from sessionshare.contrib.django.views import sign_in

    urlpatterns = [path("accounts/login/", sign_in), ...]

:func:`~sessionshare.contrib.django.wsgi.get_wsgi_application` adds that
path to the remote middleware's ``protect``, so the flow is the hand-off,
never a form of this site's: ``/orders`` (``login_required``, anonymous) ->
302 ``/accounts/login/?next=/orders`` -> the middleware's 302 to the IdP ->
... -> 303 back to ``/accounts/login/?next=/orders``, now signed in, where
this view sends the browser on to ``next`` (a local URL only).

At the IdP, ``LOGIN_URL`` is the IdP's own login page (Django's
``LoginView`` at the middleware's ``login_path``), not this view.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

try:  # Django 5.1+: LoginRequiredMiddleware must let this view through
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - Django 4.2
    def login_not_required(view: Any) -> Any:
        return view

__all__ = ["sign_in"]

log = logging.getLogger("sessionshare")


@login_not_required  # type: ignore[untyped-decorator]  # Django ships no types
def sign_in(request: Any) -> HttpResponse:
    """Signed in by the hand-off: go on to ``next`` (local), else ``LOGIN_REDIRECT_URL``.

    A user the IdP signed in but no authentication backend accepts here (a
    ``RemoteUserBackend`` with ``create_unknown_user = False`` and no such
    local user) gets a 403 that says so, not a loop back to the IdP.
    """
    if not request.user.is_authenticated and request.META.get("REMOTE_USER"):
        # Django logs only "Forbidden": the operator needs to know which setting it is.
        log.warning(
            "remote_user_refused user=%r: the IdP signed this user in, but request.user is "
            "anonymous here (403 'no account for you'): AUTHENTICATION_BACKENDS needs "
            "django.contrib.auth.backends.RemoteUserBackend (one with create_unknown_user = "
            "False admits only users created here) and MIDDLEWARE needs "
            "django.contrib.auth.middleware.PersistentRemoteUserMiddleware after "
            "AuthenticationMiddleware; manage.py check names what is missing",
            str(request.META["REMOTE_USER"])[:100],
        )
        return HttpResponseForbidden(
            "You are signed in, but this site has no account for you.",
            content_type="text/plain; charset=utf-8",
        )
    if not request.user.is_authenticated:
        raise ImproperlyConfigured(
            "sign_in reached without a user: mount it at LOGIN_URL, serve "
            "sessionshare.contrib.django.wsgi.get_wsgi_application() (it protects LOGIN_URL) "
            "and put PersistentRemoteUserMiddleware after AuthenticationMiddleware"
        )
    target = request.GET.get(REDIRECT_FIELD_NAME, "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = resolve_url(settings.LOGIN_REDIRECT_URL)
    return HttpResponseRedirect(target)
