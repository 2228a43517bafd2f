"""``request.session`` from the shared session: Django's ``SessionMiddleware``, replaced.

Put :class:`SessionMiddleware` where Django's own stands in ``MIDDLEWARE`` (it
is a subclass, so Django's checks that look for it still pass), with
``SESSION_ENGINE = "sessionshare.contrib.django.session"``. It sets
``request.session`` to a :class:`~sessionshare.contrib.django.session.SessionStore`
over the shared session the WSGI middleware in front of Django
(:func:`~sessionshare.contrib.django.wsgi.get_wsgi_application`) loaded, and
writes no cookie: that middleware persists the session and owns its cookie,
which it sets as Django's would (:meth:`SessionStore.ask_cookie`).

A store outage met inside a view (a page the remote does not protect) is
answered with the middleware's own 503 and ``Retry-After``, not Django's 500;
an uncaught ``UpdateError`` from ``request.session.save()`` (the session was
ended elsewhere meanwhile) is Django's ``SessionInterrupted``, a 400, as with
Django's own middleware.
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
        # No cookie of Django's own: the WSGI middleware's is asked to last as Django's
        # would, an expiry in seconds counted again from this change (as Django's backends).
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and session.view is not None:
            if session.modified:
                session.renew_expiry()
            session.ask_cookie()
        return response

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if isinstance(exception, UpdateError):
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
