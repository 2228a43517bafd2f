"""Django's own ``SessionTestsMixin`` against ``sessionshare.contrib.django.session``.

``tests/sessions_tests/tests.py`` of the installed Django's sdist
(:mod:`sources`) holds the tests every one of Django's session engines
passes; here they run, unmodified, against sessionshare's engine, in four
deployments: the Django project (the suite's one, :mod:`django_site`: the
forum example's settings and middleware; the URLconf is the one view below)
behind the remote's middleware (``idp_url``, public paths) and behind the
IdP's (``known_remote_hosts``), each over a ``MemoryStore`` and over the
suite's real Redis. The tests' browsers do not sign in: Django's tests start
from a new, empty session, which is what a visitor gets on either side.

What is substituted is the mixin's ``backend``, the engine's class, which
Django's tests call to get a session object:

- ``backend()``: a browser with no cookie requests a page, and the test gets
  that view's ``request.session`` (:mod:`held`: the request stays open while
  the test uses it, and ends -- the middleware persists the session and sets
  its cookie -- when the test is done);
- ``backend(key)``: the browser that holds the session whose ``session_key``
  is ``key`` requests a page with its cookie (a browser has the cookie only
  once the response that set it is in, so its open request ends first; the
  test may go on using the older object, as Django code may keep a session
  object past its request). A key no browser holds (``"1"``) is sent as a
  cookie value of sessionshare's cookie, as a forged or stale cookie would be.

Everything else is Django's: its test methods, its ``SimpleTestCase``, its
settings (``SESSION_COOKIE_AGE`` and the rest at their defaults). A test
that fails is a strict xfail from :mod:`expected`, with what breaks for a
user; a test that starts to pass fails the run until the table says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import SimpleTestCase, override_settings
from django.urls import path
from flow import IDP, LOGIN, SHOP

from sessionshare import SessionStore, SyncKey
from sessionshare.contrib.django.wsgi import get_wsgi_application

from . import sources
from .held import Browser, hand_over, store_of

#: sessionshare's cookie, named here so a test can send a forged one.
COOKIE = "sessionshare"
PROBE = "/probe"


def probe(request: Any) -> HttpResponse:
    """The view each held request reaches: it hands ``request.session`` to the test."""
    hand_over(request.META, request.session)
    return HttpResponse("done")


# The URLconf of the Django project while these tests run (the rest of its settings are
# the suite's, tests/django_site.py).
urlpatterns = [path(PROBE.lstrip("/"), probe)]


class Site:
    """The Django site behind one middleware, the browsers visiting it, their sessions."""

    def __init__(self, role: str, store: SessionStore) -> None:
        common: dict[str, Any] = {"store": store, "key": SyncKey.generate(),
                                  "cookie_secure": False, "cookie_name": COOKIE}
        if role == "remote":
            origin = SHOP
            options = {"app_url": SHOP, "idp_url": LOGIN, "protect": False}
        else:
            origin = IDP
            options = {"app_url": IDP, "known_remote_hosts": [SHOP]}
        self.host = origin.split("://", 1)[1]
        self.app = get_wsgi_application(**common, **options)
        self.held: list[tuple[Any, Browser]] = []

    def backend(self, session_key: str | None = None) -> Any:
        """Django's ``SessionStore(session_key)``, as a view over sessionshare sees it."""
        browser = None
        if session_key is not None:
            browser = next((owner for store, owner in self.held
                            if store.session_key == session_key), None)
        if browser is None:
            browser = Browser(self.app, self.host)
            if session_key is not None:
                browser.cookies[COOKIE] = session_key
        else:
            browser.finish_all()
        session = browser.open(PROBE).session()
        self.held.append((session, browser))
        return session

    def close(self) -> None:
        """End every request still open (the middleware persists as it would)."""
        for browser in {id(owner): owner for _, owner in self.held}.values():
            browser.finish_all()


class SharedEngine:
    """The mixin's ``backend``, bound to the test's site (set by a fixture)."""

    site: Site

    @property
    def backend(self) -> Callable[..., Any]:
        return self.site.backend

    def setUp(self) -> None:
        # First in, last out: the mixin's own cleanup (session.delete) runs before this.
        self.addCleanup(self.site.close)  # type: ignore[attr-defined]
        super().setUp()  # type: ignore[misc]


#: Every test of the mixin runs (the file's other classes test Django's own engines).
NOT_RUN: dict[str, str] = {}


def _classes() -> dict[str, Any]:
    try:
        path_ = sources.framework_file("django", "tests/sessions_tests/tests.py")
        mixin = sources.load_classes("django_sessions_tests", path_, ["SessionTestsMixin"])
    except sources.SourcesUnavailable as exc:
        return {"RUN": [], "test_djangos_own_tests_are_at_hand": sources.unavailable(exc)}
    made: dict[str, Any] = {"RUN": sources.names_of(mixin.SessionTestsMixin)}
    for role in ("remote", "idp"):
        for store in ("memory", "redis"):
            name = f"TestDjangoAs{role.capitalize()}On{store.capitalize()}"
            cls = type(name, (SharedEngine, mixin.SessionTestsMixin, SimpleTestCase), {
                "role": role, "store_kind": store, "__module__": __name__,
                "__doc__": f"Django's SessionTestsMixin, Django as a {role}, on {store}.",
            })
            cls = override_settings(ROOT_URLCONF=__name__)(cls)
            if store == "redis":
                cls = pytest.mark.redis(cls)
            made[name] = cls
    return made


globals().update(_classes())


@pytest.fixture(autouse=True)
def _site(request: pytest.FixtureRequest) -> Iterator[None]:
    case = request.instance
    if not isinstance(case, SharedEngine):
        yield
        return
    store = store_of(type(case).store_kind, request)  # type: ignore[attr-defined]
    case.site = Site(type(case).role, store)  # type: ignore[attr-defined]
    yield
    store.close()
