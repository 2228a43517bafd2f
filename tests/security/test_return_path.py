"""The remote's return path: after a hand-off the browser goes back, and only to this origin.

The page a signed-out visitor asked for is saved in the signed state cookie
and is the ``Location`` of the remote's final 303. oauth2-proxy's redirect
CVEs are all about that step: ``/\\evil.com`` (CVE-2020-5233),
``/%09/evil.com`` (CVE-2020-11053), ``/./\\evil.com`` (CVE-2020-4037), plus
the protocol-relative ``//evil.com`` every open-redirect list starts with.

Here each hostile path is the *original request path at the remote*, as the
WSGI server hands it over (``PATH_INFO``, already percent-decoded, so a
request for ``/%2509/evil.com`` arrives as ``/%09/evil.com``), and the whole
hand-off runs -- once with the user already signed in at the IdP, once
through the login form. The final ``Location`` must resolve, by a browser's
rules (:func:`security.harness.browser_origin`), to the remote's own origin.

The corpus runs where the decision is made: :func:`safe_return_path`, and the
whole hand-off through the protocol's sides driven by hand (``coredrive.py``);
the middlewares of each shell and store carry a few paths once per flow.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from coredrive import NAVIGATE, CoreBrowser, Drive, visit
from flow import BLOG, IDP, LOGIN, PASSWORDS, Browser, Deployment
from hypothesis import given

from sessionshare import MemoryStore, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import safe_return_path
from sessionshare.core.side import PassThrough
from sessionshare.core.steps import run

from .corpus import EVIL_RETURN_PATHS, KEPT_RETURN_PATHS, Attack
from .deploy import Events, remote_login_prefix, sign_in_at_idp
from .harness import browser_origin, is_same_origin_location
from .profiles import budget
from .strategies import return_paths


def _wsgi_path(text: str) -> str:
    # PEP 3333: the server decodes the raw path bytes as latin-1.
    return text.encode("utf-8").decode("latin-1")


# -- the remote's decision, driven by hand (coredrive.py) ------------------------------


class CoreHandoff:
    """The IdP and blog.test (protects everything) as bare sides on one memory store."""

    def __init__(self) -> None:
        key, store = SyncKey.generate(), MemoryStore()
        common: dict[str, Any] = {"key": key, "cookie_secure": False, "quiet_startup": True}
        self.idp = IdpSide(app_url=IDP, known_remote_hosts=[BLOG], **common)
        self.blog = RemoteSide(app_url=BLOG, idp_url=LOGIN, **common)
        self.browser = CoreBrowser([IDP, BLOG])
        self.drive: Drive = lambda steps: run(steps, store)

    def visit(self, origin: str, method: str, target: str, *, path: str | None = None,
              sign_in: str | None = None) -> Reply | tuple[PassThrough, Any]:
        side = self.idp if origin == IDP else self.blog
        request = self.browser.request(origin, method, target, **NAVIGATE)
        if path is not None:
            request.path = path  # as the server hands it over (PATH_INFO), untouched
        app = None if sign_in is None else (lambda session: session.__setitem__("user", sign_in))
        answer = visit(self.drive, side, request, app)
        self.browser.keep(origin, answer.headers if isinstance(answer, Reply) else answer[1])
        return answer

    def location_after(self, path_info: str, query: str, *, signed_in: bool) -> str:
        """Visit the blog at ``path_info``, hand off, come back: the final ``Location``."""
        if signed_in:
            self.visit(IDP, "POST", "/login", sign_in="alice")
        first = self.visit(BLOG, "GET", "/?" + query if query else "/", path=path_info)
        assert isinstance(first, Reply) and first.status == 302, first
        login = dict(first.headers)["Location"]
        assert login.startswith(remote_login_prefix(BLOG)), login
        target = login[len(IDP):]
        if signed_in:
            answer = self.visit(IDP, "GET", target)
        else:
            assert isinstance(self.visit(IDP, "GET", target), tuple)  # the login form
            answer = self.visit(IDP, "POST", target, sign_in="alice")
        assert isinstance(answer, Reply) and answer.status == 303, answer
        callback = dict(answer.headers)["Location"]
        assert callback.startswith(BLOG + "/_sessionshare/callback?token="), callback
        back = self.visit(BLOG, "GET", callback[len(BLOG):])
        assert isinstance(back, Reply) and back.status == 303, back
        # Signed in at the remote now: the hand-off itself worked.
        assert any(v.startswith("sessionshare=") for k, v in back.headers if k == "Set-Cookie")
        return dict(back.headers)["Location"]


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "pending"])
@pytest.mark.parametrize("attack", EVIL_RETURN_PATHS, ids=lambda a: a.id)
def test_hostile_return_path_stays_home(attack: Attack, signed_in: bool) -> None:
    location = CoreHandoff().location_after(_wsgi_path(attack.value), "", signed_in=signed_in)
    assert location == "/"


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "pending"])
@pytest.mark.parametrize("query", ["", "next=%2F%2Fevil.com", "u=http://evil.com/&v=//evil.com"])
@pytest.mark.parametrize("path", KEPT_RETURN_PATHS)
def test_same_origin_return_path_is_kept(path: str, query: str, signed_in: bool) -> None:
    # Positive controls: a harmless page comes back exactly, so "/" above is a decision.
    path_info, _, path_query = path.partition("?")
    query = "&".join(q for q in (path_query, query) if q)
    location = CoreHandoff().location_after(_wsgi_path(path_info), query, signed_in=signed_in)
    assert location == path_info + (f"?{query}" if query else "")
    assert is_same_origin_location(location, BLOG)


def test_overlong_return_path_falls_back_to_root() -> None:
    assert CoreHandoff().location_after("/a" * 300, "", signed_in=True) == "/"


# -- the wiring: once per flow, per shell and store ------------------------------------


def _hand_off_from(browser: Browser, path_info: str, query: str, *, signed_in: bool) -> str:
    """Visit blog.test (protects everything) at ``path_info``; the final Location."""
    blog = browser.apps["blog.test"]
    # WebTest takes the query from the URL; the path goes in untouched as PATH_INFO.
    first = blog.get("/?" + query if query else "/", headers={"Accept": "text/html"},
                     status="*", extra_environ={"PATH_INFO": _wsgi_path(path_info)})
    assert first.request.environ["QUERY_STRING"] == query
    assert first.status_int == 302, first
    assert first.location.startswith(remote_login_prefix(BLOG)), first.location
    if signed_in:
        answer = browser.get(first.location)
    else:
        assert "login form" in browser.get(first.location).text
        answer = browser.post(first.location, {"username": "alice", "password": PASSWORDS["alice"]})
    assert answer.status_int == 303 and answer.location.startswith(BLOG + "/_sessionshare/"), answer
    back = browser.get(answer.location)
    assert back.status_int == 303, back
    # Signed in at the remote now: the hand-off itself worked.
    assert back.headers.getall("Set-Cookie")[0].startswith("sessionshare=")
    return str(back.location)


#: Through the real middlewares: oauth2-proxy's backslash, its encoded tab, and a page
#: that must come back exactly.
END_TO_END = {"/\\evil.com": "/", "/%09/evil.com": "/", "/orders/2?x=1": "/orders/2?x=1"}


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "pending"])
def test_return_paths_end_to_end(dep: Deployment, events: Events, signed_in: bool) -> None:
    for requested, expected in END_TO_END.items():
        browser = Browser(dep)
        if signed_in:
            sign_in_at_idp(browser)
        events.clear()
        path_info, _, query = requested.partition("?")
        location = _hand_off_from(browser, path_info, query, signed_in=signed_in)
        assert location == expected and is_same_origin_location(location, BLOG), requested
        assert events.count("ticket_redeemed") == 1


# -- safe_return_path itself ---------------------------------------------------------------


@pytest.mark.parametrize("attack", EVIL_RETURN_PATHS, ids=lambda a: a.id)
def test_safe_return_path_refuses(attack: Attack) -> None:
    assert safe_return_path(attack.value) == "/"
    assert safe_return_path(attack.value, default="/home") == "/home"
    assert safe_return_path(_wsgi_path(attack.value)) == "/"


@pytest.mark.parametrize(
    "value",
    ["", "evil.com", "https://evil.com/", "javascript:alert(1)", "\\\\evil.com", "/x\x00",
     "/x\x7f", "/caf\u00e9", "/" + "a" * 2048, None, 42, b"/bytes", ["/"]],
)
def test_safe_return_path_refuses_other_shapes(value: object) -> None:
    assert safe_return_path(value) == "/"


@pytest.mark.parametrize("path", KEPT_RETURN_PATHS)
def test_safe_return_path_keeps(path: str) -> None:
    assert safe_return_path(path) == path


@budget(2)
@given(return_paths())
def test_safe_return_path_never_leaves_the_origin(path: str) -> None:
    result = safe_return_path(path)
    assert result in (path, "/")
    assert browser_origin(result, BLOG) == BLOG
    # One more decoding step (a proxy that unescapes before the browser sees it)
    # must not open a way out either.
    assert browser_origin(unquote(result), BLOG) == BLOG


def test_login_prefix_is_the_only_cross_origin_redirect(dep: Deployment) -> None:
    # The remote's one cross-origin Location is the IdP login with its own callback.
    browser = Browser(dep)
    first = browser.get(BLOG + "/x")
    assert first.location.startswith(remote_login_prefix(BLOG))
    assert first.location.startswith(LOGIN + "?") and IDP in first.location
