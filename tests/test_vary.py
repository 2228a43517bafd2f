"""``Vary: Cookie``: only on the answers that depend on the session cookie, merged once.

A shared cache (a CDN, a proxy) may keep an answer without ``Vary: Cookie`` and
hand it to every browser. So an answer that shows something of the session --
a value the app read or wrote, the signed-in user the middleware published --
must say ``Vary: Cookie`` (else one user's page goes to the next); and one that
never touched the session must not (else every public page stops being
cacheable, as it is with the frameworks' own sessions). Where the app varies on
something itself, the answer carries ONE ``Vary`` listing both.

Each test runs under the WSGI and the ASGI middlewares and on every store; the
decision is the core's (:func:`sessionshare.core.lifecycle.response_headers`,
:meth:`~sessionshare.core.lifecycle.Lifecycle.settle`), the shells only
send it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import pytest
import webtest
from conftest import FakeClock
from flow import HTML, IDP, LOGIN, SHOP, Browser, Deployment

from sessionshare import SessionStore
from sessionshare.core.lifecycle import response_headers


def _answer(path: str, query: str, session: Any, user: str | None) -> tuple[list[Any], bytes]:
    """What both twins answer: the session is touched only where the path says."""
    body: dict[str, Any] = {"path": path}
    if path == "/look":
        body["n"] = session.get("n")
    elif path == "/count":
        session["n"] = session.get("n", 0) + 1
    elif path == "/empty":
        session.clear()
    elif path == "/who":
        body["user"] = user
    headers = [("Content-Type", "application/json")]
    if "vary" in parse_qs(query):
        # The app varies on something of its own (compression, language).
        headers.append(("Vary", "Accept-Encoding, Accept-Language"))
    return headers, json.dumps(body).encode()


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    headers, body = _answer(environ["PATH_INFO"], environ.get("QUERY_STRING", ""),
                            environ["sessionshare.session"], environ.get("REMOTE_USER"))
    start_response("200 OK", headers)
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    user = scope["sessionshare.user"]
    headers, body = _answer(scope["path"], scope["query_string"].decode(), scope["session"],
                            None if user is None else str(user))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(n.lower().encode(), v.encode()) for n, v in headers]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def dep(store: SessionStore, clock: FakeClock, shell: str) -> Deployment:
    app = asgi_app if shell == "asgi" else wsgi_app
    return Deployment(store, clock, shell=shell, remote=app,
                      remote_options={"protect": ["/orders"]})


@pytest.fixture
def browser(dep: Deployment) -> Browser:
    return Browser(dep)


def varies(page: webtest.TestResponse) -> list[str]:
    """Every ``Vary`` header of the answer, as sent."""
    return [value for name, value in page.headerlist if name.lower() == "vary"]


def test_a_public_page_that_never_touches_the_session_stays_cacheable(browser: Browser) -> None:
    assert varies(browser.get(SHOP + "/public")) == []  # a first visit: no cookie
    counted = browser.get(SHOP + "/count")
    assert "Set-Cookie" in counted.headers and varies(counted) == ["Cookie"]
    # With the session cookie now, a page that does not look stays the same for everyone.
    page = browser.get(SHOP + "/public")
    assert page.status_int == 200 and varies(page) == []
    assert "Set-Cookie" not in page.headers


def test_a_page_that_reads_the_session_varies_on_the_cookie(browser: Browser) -> None:
    assert varies(browser.get(SHOP + "/look")) == ["Cookie"]  # read, found nothing: still
    browser.get(SHOP + "/count")
    looked = browser.get(SHOP + "/look")
    assert looked.json["n"] == 1 and varies(looked) == ["Cookie"]


def test_a_change_and_a_cookie_set_or_cleared_vary_on_the_cookie(browser: Browser) -> None:
    set_ = browser.get(SHOP + "/count")
    assert "Set-Cookie" in set_.headers and varies(set_) == ["Cookie"]
    emptied = browser.get(SHOP + "/empty")  # an emptied session ends: its cookie goes
    assert emptied.status_int == 200 and "Max-Age=0" in emptied.headers["Set-Cookie"]
    assert varies(emptied) == ["Cookie"]
    browser.get(SHOP + "/count")
    out = browser.post(SHOP + "/_sessionshare/logout", headers={"Origin": SHOP, **HTML})
    assert out.status_int == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert varies(out) == ["Cookie"]


def test_the_apps_vary_and_the_sessions_are_one_header(browser: Browser) -> None:
    own = browser.get(SHOP + "/public?vary=1")
    assert varies(own) == ["Accept-Encoding, Accept-Language"]  # the app's, untouched
    both = browser.get(SHOP + "/count?vary=1")
    assert varies(both) == ["Accept-Encoding, Accept-Language, Cookie"]
    assert varies(browser.get(SHOP + "/look?vary=1")) == [
        "Accept-Encoding, Accept-Language, Cookie"
    ]


def test_a_signed_in_user_published_to_the_app_varies_on_the_cookie(
    dep: Deployment, browser: Browser, shell: str
) -> None:
    # Signed out, a protected page's hand-off redirect is never stored by a cache at all.
    bounce = browser.get(SHOP + "/orders")
    assert bounce.status_int == 302 and "no-store" in bounce.headers["Cache-Control"]
    page = browser.sign_in_at(SHOP + "/orders")
    assert page.status_int == 200 and varies(page) == ["Cookie"]  # a protected page's user
    who = browser.get(SHOP + "/who")
    if shell == "asgi":
        # The ASGI shell reads a cookie's session before the app runs and publishes its
        # user on every path: the page may show it, so it varies.
        assert who.json["user"] == "alice" and varies(who) == ["Cookie"]
    else:
        # The WSGI shell reads the session of a public path only when the app looks: no
        # user is published there, and the page is the same for every browser.
        assert who.json["user"] is None and varies(who) == []
    # At the IdP the user is published on every path: a signed-in answer varies, a
    # signed-out first visit does not.
    assert varies(browser.get(IDP + "/")) == ["Cookie"]
    stranger = Browser(dep)
    assert varies(stranger.get(IDP + "/")) == []
    assert varies(stranger.get(LOGIN)) == []


# -- the merge itself: the core's pure function ----------------------------------------------
@pytest.mark.parametrize(
    ("app", "added", "merged"),
    [
        ([], [("Vary", "Cookie")], [("Vary", "Cookie")]),
        ([("Vary", "Accept-Encoding")], [("Vary", "Cookie")],
         [("Vary", "Accept-Encoding, Cookie")]),
        # The app's own header keeps its place and its spelling; its cookie stays with it.
        ([("vary", "Accept-Encoding"), ("X-A", "1")], [("Vary", "Cookie"), ("Set-Cookie", "s=1")],
         [("vary", "Accept-Encoding, Cookie"), ("X-A", "1"), ("Set-Cookie", "s=1")]),
        # Already there (any case): once.
        ([("Vary", "cookie")], [("Vary", "Cookie")], [("Vary", "cookie")]),
        # Two headers of the app's become one.
        ([("Vary", "Accept-Encoding"), ("Vary", "Accept-Language, Origin")], [("Vary", "Cookie")],
         [("Vary", "Accept-Encoding, Accept-Language, Origin, Cookie")]),
        # "*" varies on everything already.
        ([("Vary", "*")], [("Vary", "Cookie")], [("Vary", "*")]),
        # Nothing of the session's to add: the app's headers as they are.
        ([("Vary", "Accept-Encoding")], [], [("Vary", "Accept-Encoding")]),
        ([("Vary", "Accept-Encoding")], [("Set-Cookie", "s=1")],
         [("Vary", "Accept-Encoding"), ("Set-Cookie", "s=1")]),
    ],
    ids=["alone", "merged", "in-place", "present", "two-app-headers", "star", "none",
         "cookie-only"],
)
def test_response_headers_merge_vary_once(
    app: list[tuple[str, str]], added: list[tuple[str, str]], merged: list[tuple[str, str]]
) -> None:
    assert response_headers(app, added) == merged
