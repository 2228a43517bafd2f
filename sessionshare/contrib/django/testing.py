"""Django's test ``Client``, with the sessionshare middleware in front of the project.

Django's own :class:`django.test.Client` calls the project's handler directly,
so the WSGI middleware of :func:`~sessionshare.contrib.django.wsgi.get_wsgi_application`
never runs and ``request.session`` raises. :class:`Client` is Django's test
client with that middleware in between, configured the same way (the
``SESSIONSHARE`` setting, then ``options``): a protected page sends an
anonymous client to the IdP (a 302 the test sees), a signed-in one is served,
and the middleware's cookies land in ``client.cookies``::

    from sessionshare.contrib.django.testing import Client
    from sessionshare.testing import sign_in

    client = Client(options={"store": MemoryStore(), "key": KEY,
                             "app_url": "http://testserver", "idp_url": IDP_LOGIN})
    sign_in(client, client.middleware, "alice", cart=["teapot"])
    assert client.get("/").status_code == 200      # request.user is alice

What stays Django's: CSRF checks, ``response.context`` and ``templates``, a
view's exception raised in the test. A client is one site, so it follows
redirects within the app only (``follow=True`` to the IdP raises);
``login()`` and ``force_login()`` are refused (use ``sign_in``); there is no
``AsyncClient`` twin. As after a real hand-off, a ``login_required`` view goes
once through ``LOGIN_URL``: ``client.get("/", follow=True)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.test import Client as DjangoClient
from django.test.client import ClientHandler
from django.utils.cache import patch_vary_headers

from .wsgi import wrap_handler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Client"]

#: Where one request's Django response waits for the middleware to finish with it.
_HELD = "sessionshare.django_test_response"
#: A header marking Django's own answer, so the one the middleware sent instead is told
#: apart exactly (it never carries it); removed before the test sees the response.
_MARK = "X-Sessionshare-Test-Answer"
_serial = itertools.count()


def _headers_of(response: Any) -> list[tuple[str, str]]:
    """A Django response's headers as WSGI sends them, its cookies included."""
    return [*response.items(),
            *(("Set-Cookie", morsel.OutputString()) for morsel in response.cookies.values())]


def _add_header(response: Any, name: str, value: str) -> None:
    """Add one header the middleware sent to a Django response (cookies as cookies)."""
    if name.lower() == "set-cookie":
        response.cookies.load(value)  # what the test Client keeps in client.cookies
    elif name.lower() == "vary" and response.has_header("Vary"):
        patch_vary_headers(response, [v.strip() for v in value.split(",")])
    else:
        response.headers[name] = value


class _MiddlewareAnswer(HttpResponse):  # type: ignore[misc]  # Django ships no types
    """An answer of the middleware's own, as a Django response."""

    #: The host the request was made to.
    host = ""

    @property
    def url(self) -> str:
        """Where it redirects (what ``follow=True`` reads): only within this site."""
        location = str(self["Location"])
        elsewhere = urlsplit(location).netloc
        if elsewhere and elsewhere != self.host:
            raise RuntimeError(
                f"the test client cannot follow a redirect to another site ({location}): "
                "it would ask this app for that site's path. Assert the redirect instead, "
                "or sign the client in with sessionshare.testing.sign_in"
            )
        return location


class _ThroughMiddleware(ClientHandler):  # type: ignore[misc]  # Django ships no types
    """Django's test handler, called from inside the sessionshare middleware."""

    def __init__(
        self, enforce_csrf_checks: bool, wrap_app: Callable[[Any], Any] | None,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__(enforce_csrf_checks)
        self.middleware = wrap_handler(self._django, wrap_app=wrap_app, **options)

    def _django(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI app the middleware wraps: Django's test handler, its response kept."""
        response = super().__call__(environ)
        held: list[tuple[Any, str]] = environ[_HELD]
        mark = str(next(_serial))
        held.append((response, mark))
        start_response(f"{response.status_code} {response.reason_phrase}",
                       [*_headers_of(response), (_MARK, mark)])
        if response.streaming:
            return response.streaming_content  # type: ignore[no-any-return]
        return [response.content]

    def __call__(self, environ: WSGIEnvironment) -> Any:
        held: list[tuple[Any, str]] = []
        environ[_HELD] = held
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], object]:
            started[:] = [status, headers]
            return lambda data: None

        result = self.middleware(environ, start_response)
        try:
            body = b"".join(result)  # all of it: the session is persisted by its end
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        for response, mark in held:
            if (_MARK, mark) in headers:  # Django's answer went out, with headers added
                sent = set(_headers_of(response))
                for name, value in headers:
                    if (name, value) not in sent and name != _MARK:
                        _add_header(response, name, value)
                if response.streaming:
                    response.streaming_content = [body]
                return response
        # The middleware's own answer: a redirect to the IdP, a refusal, a 503, or the
        # IdP's 303 back to a remote in place of Django's page.
        answer = _MiddlewareAnswer(body, status=int(status.split(" ", 1)[0]))
        answer.host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        del answer["Content-Type"]
        for name, value in headers:
            _add_header(answer, name, value)
        answer.wsgi_request = held[0][0].wsgi_request if held else WSGIRequest(environ)
        return answer


class Client(DjangoClient):  # type: ignore[misc]  # Django ships no types
    """Django's test ``Client`` through the sessionshare middleware (see the module).

    :param options: the middleware's options, over the ``SESSIONSHARE`` setting
        (as :func:`~sessionshare.contrib.django.wsgi.get_wsgi_application` takes them).
    :param wrap_app: wraps Django's handler inside the middleware.

    The other arguments are Django's.
    """

    def __init__(
        self,
        enforce_csrf_checks: bool = False,
        raise_request_exception: bool = True,
        *,
        options: Mapping[str, Any] | None = None,
        wrap_app: Callable[[Any], Any] | None = None,
        **defaults: Any,
    ) -> None:
        super().__init__(enforce_csrf_checks, raise_request_exception, **defaults)
        self.handler = _ThroughMiddleware(enforce_csrf_checks, wrap_app, options or {})
        #: The sessionshare middleware every request goes through (what ``sign_in`` takes).
        self.middleware = self.handler.middleware

    def login(self, **credentials: Any) -> bool:
        """Refused: a session is made by the middleware; use ``sessionshare.testing.sign_in``."""
        raise TypeError(_NO_DJANGO_LOGIN)

    def force_login(self, user: Any, backend: str | None = None) -> None:
        """Refused: a session is made by the middleware; use ``sessionshare.testing.sign_in``."""
        raise TypeError(_NO_DJANGO_LOGIN)


_NO_DJANGO_LOGIN = (
    "Django's login() makes a session of Django's own, which sessionshare does not read: "
    "sign in with sessionshare.testing.sign_in(client, client.middleware, username)"
)
