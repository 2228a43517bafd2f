"""``request.session`` from the shared session: Django's ``SessionMiddleware``, replaced.

Put :class:`SessionMiddleware` where Django's own stands in ``MIDDLEWARE``
(it is a subclass, so Django's checks that look for it still pass)::

    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "sessionshare.contrib.django.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.PersistentRemoteUserMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    SESSION_ENGINE = "sessionshare.contrib.django.session"

It sets ``request.session`` to a :class:`~sessionshare.contrib.django.session.SessionStore`
over the shared session the WSGI middleware in front of Django
(:func:`~sessionshare.contrib.django.wsgi.get_wsgi_application`) loaded, and
on the way out writes no cookie: that middleware persists the session and
owns its cookie (and its ``Vary: Cookie``), which it sets as Django's would:
persistent for ``get_expiry_age()`` unless ``get_expire_at_browser_close()``
(:meth:`SessionStore.ask_cookie`). A response that changed the session counts
an expiry in seconds (``set_expiry(600)``) again from now.

A store outage met inside a view (a page the remote does not protect, whose
session loads lazily) is answered with the middleware's own 503 and
``Retry-After``, not Django's 500; a ``request.session.save()`` the view does not
catch, which found the session ended elsewhere meanwhile (``UpdateError``), is
Django's ``SessionInterrupted`` -- a 400, as with Django's own middleware.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from ...core.reply import Reply
from ...errors import StoreUnavailable
from ...wsgi.environ import wants_json
from .. import shared_session
from .session import SessionStore
from .wsgi import FACTS_KEY, AppFacts

__all__ = ["ENGINE", "SessionMiddleware"]

ENGINE = "sessionshare.contrib.django.session"


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]  # Django ships no types
    """Django's ``SessionMiddleware`` over the shared session (see the module docstring)."""

    def __init__(self, get_response: Any) -> None:
        if settings.SESSION_ENGINE != ENGINE:
            # Django's test client, clearsessions and others build the engine's SessionStore
            # themselves: they must meet this one, not a second session of Django's own.
            raise ImproperlyConfigured(
                f"sessionshare's SessionMiddleware needs SESSION_ENGINE = {ENGINE!r}, "
                f"not {settings.SESSION_ENGINE!r}"
            )
        super().__init__(get_response)

    def process_request(self, request: Any) -> None:
        facts = request.META.get(FACTS_KEY)
        if not isinstance(facts, AppFacts):
            raise ImproperlyConfigured(
                "no sessionshare middleware in front of Django: serve "
                "sessionshare.contrib.django.wsgi.get_wsgi_application() (in wsgi.py) instead "
                "of django.core.wsgi.get_wsgi_application()"
            )
        request.session = SessionStore(shared=shared_session(request.META), facts=facts)

    def process_response(self, request: Any, response: Any) -> Any:
        # The WSGI middleware persists the session and sets its cookie and Vary; a
        # cookie of Django's own here would only be a second, meaningless one: this one
        # asks that cookie to last as Django's would (SESSION_EXPIRE_AT_BROWSER_CLOSE,
        # set_expiry), after counting an expiry in seconds again from this change, as
        # Django's backends count.
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and session.view is not None:
            if session.modified:
                session.renew_expiry()
            session.ask_cookie()
        return response

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if isinstance(exception, UpdateError):
            # A save() the view did not catch found the session ended elsewhere: Django's
            # own SessionMiddleware answers this 400, and so does this one.
            raise SessionInterrupted(
                "The request's session was deleted before the request completed. The "
                "user may have logged out in a concurrent request, for example."
            ) from exception
        if not isinstance(exception, StoreUnavailable):
            return None
        # Fail closed, with the very reply the middleware sends for the paths it protects.
        reply = Reply.store_unavailable(as_json=wants_json(request.META))
        response = HttpResponse(reply.body, status=reply.status)
        for name, value in reply.headers:
            response[name] = value
        return response
