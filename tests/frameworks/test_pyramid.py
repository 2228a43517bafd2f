"""Pyramid's own session tests (``tests/test_session.py``) against ``sessionshare.contrib.pyramid``.

``SharedCookieSessionTests`` of the installed Pyramid's sdist (:mod:`sources`)
holds the tests both of Pyramid's cookie session factories pass; its
``_makeOne(request)`` makes the session under test. Here ``_makeOne`` sends a
request -- with the cookies the test put on its ``DummyRequest`` -- through a
Pyramid app that includes ``sessionshare.contrib.pyramid``, inside the remote's
``RemoteSessionMiddleware`` of a deployment (the shared store, a sync key, an
``idp_url``; no path protected: the tests' visitors never sign in), and returns
that view's ``request.session`` (:mod:`held`: the request stays open while the
test uses it). The middleware's cookie is named ``session``, as Pyramid's is,
so a test that sends a bad or expired cookie sends it to sessionshare. Each
test runs on a ``MemoryStore`` and on the suite's Redis.

Which tests run: every test of ``SharedCookieSessionTests`` but those of
:data:`NOT_RUN`, each of which tests a cookie-held session's own mechanics (what
a server-side session has no equivalent of); the test classes for Pyramid's
factories, serializers and decorators are not run for the same reason.
"""

from __future__ import annotations

import unittest
from collections.abc import Iterator
from typing import Any

import pytest
from flow import LOGIN
from pyramid.config import Configurator
from pyramid.response import Response

from sessionshare import RemoteSessionMiddleware, SyncKey

from . import sources
from .held import Browser, hand_over, store_of

HOST = "shop.test"
COOKIE = "session"  # Pyramid's default cookie name

_DATA_IN_COOKIE = ("it sends the session's data in the cookie, which a server-side session's "
                   "cookie never holds (it names the session)")
_FACTORY_OPTION = ("it tests an option of Pyramid's cookie session factory (`timeout`, "
                   "`reissue_time`, `max_age`, the cookie's attributes); sessionshare's "
                   "middleware takes its own options")
_PRIVATE = ("it asserts a private attribute of Pyramid's cookie session (`_dirty`, "
            "`_set_cookie`, `_cookie_on_exception`)")
_CALLBACK = ("it asserts how Pyramid's cookie session sets its cookie (a response callback); "
             "sessionshare's middleware sets the cookie, outside Pyramid")
#: The tests of SharedCookieSessionTests that do not apply, and why.
NOT_RUN = {
    "test_ctor_with_cookie_still_valid": _DATA_IN_COOKIE,
    "test_timeout": _FACTORY_OPTION,
    "test_timeout_never": _FACTORY_OPTION,
    "test_timeout_str": _FACTORY_OPTION,
    "test_timeout_invalid": _FACTORY_OPTION,
    "test_changed": _PRIVATE,
    "test_reissue_triggered": _PRIVATE,
    "test__set_cookie_on_exception": _PRIVATE,
    "test__set_cookie_on_exception_no_request_exception": _PRIVATE,
    "test__set_cookie_cookieval_too_long": _PRIVATE,
    "test__set_cookie_real_webob_response": _PRIVATE,
    "test__set_cookie_options": _PRIVATE,
    "test_no_set_cookie_with_exception": _CALLBACK,
    "test_set_cookie_with_exception": _CALLBACK,
    "test_cookie_is_set": _CALLBACK,
}


def probe(request: Any) -> Response:
    """The view each held request reaches: it hands ``request.session`` to the test."""
    hand_over(request.environ, request.session)
    return Response("done")


class SharedSessionFactory:
    """``_makeOne``: the session a Pyramid view over sessionshare gets (set by a fixture)."""

    app: Any
    browsers: list[Browser]

    def _makeOne(self, request: Any, **factory_options: Any) -> Any:  # noqa: N802 - theirs
        if factory_options:
            raise TypeError(f"no cookie session factory options here: {factory_options}")
        browser = Browser(self.app, HOST)
        for name, value in request.cookies.items():
            browser.cookies[name] = value.decode() if isinstance(value, bytes) else value
        self.browsers.append(browser)
        return browser.open("/probe").session()

    def setUp(self) -> None:
        self.addCleanup(self._finish)  # type: ignore[attr-defined]

    def _finish(self) -> None:
        for browser in self.browsers:
            browser.finish_all()


def _classes() -> dict[str, Any]:
    try:
        path = sources.framework_file("pyramid", "tests/test_session.py")
        theirs = sources.load_module("pyramid_test_session", path)
    except sources.SourcesUnavailable as exc:
        return {"RUN": [], "test_pyramids_own_tests_are_at_hand": sources.unavailable(exc)}
    shared = theirs.SharedCookieSessionTests
    found = sources.names_of(shared)
    missing = set(NOT_RUN) - set(found)
    assert not missing, f"Pyramid no longer has {missing}: update NOT_RUN"
    made: dict[str, Any] = {"RUN": [name for name in found if name not in NOT_RUN]}
    for store in ("memory", "redis"):
        name = f"TestPyramidOn{store.capitalize()}"
        cls = type(name, (SharedSessionFactory, shared, unittest.TestCase), {
            "store_kind": store, "__module__": __name__,
            "__doc__": f"Pyramid's SharedCookieSessionTests, on {store}.",
            # The cookie the tests that send one build (their first factory's format).
            "_serialize": theirs.TestBaseCookieSession._serialize,
            # Hidden from collection: the tests that do not apply (see NOT_RUN).
            **dict.fromkeys(NOT_RUN),
        })
        made[name] = pytest.mark.redis(cls) if store == "redis" else cls
    return made


globals().update(_classes())


@pytest.fixture(autouse=True)
def _deployment(request: pytest.FixtureRequest) -> Iterator[None]:
    case = request.instance
    if not isinstance(case, SharedSessionFactory):
        yield
        return
    store = store_of(type(case).store_kind, request)  # type: ignore[attr-defined]
    config = Configurator()
    config.include("sessionshare.contrib.pyramid")
    config.add_route("probe", "/probe")
    config.add_view(probe, route_name="probe")
    case.app = RemoteSessionMiddleware(
        config.make_wsgi_app(), store=store, key=SyncKey.generate(), app_url=f"http://{HOST}",
        idp_url=LOGIN, protect=False, cookie_secure=False, cookie_name=COOKIE)
    case.browsers = []
    yield
    store.close()
