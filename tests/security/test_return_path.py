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
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from flow import BLOG, IDP, LOGIN, PASSWORDS, Browser, Deployment
from hypothesis import given

from sessionshare.core.request import safe_return_path

from .corpus import EVIL_RETURN_PATHS, KEPT_RETURN_PATHS, Attack
from .deploy import Events, remote_login_prefix, sign_in_at_idp
from .harness import browser_origin, is_same_origin_location
from .profiles import budget
from .strategies import return_paths


def _wsgi_path(text: str) -> str:
    # PEP 3333: the server decodes the raw path bytes as latin-1.
    return text.encode("utf-8").decode("latin-1")


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


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "pending"])
@pytest.mark.parametrize("attack", EVIL_RETURN_PATHS, ids=lambda a: a.id)
def test_hostile_return_path_stays_home(dep: Deployment, events: Events, attack: Attack,
                                        signed_in: bool) -> None:
    browser = Browser(dep)
    if signed_in:
        sign_in_at_idp(browser)
    location = _hand_off_from(browser, attack.value, "", signed_in=signed_in)
    assert location == "/"
    assert is_same_origin_location(location, BLOG)
    assert events.count("ticket_redeemed") == 1


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "pending"])
@pytest.mark.parametrize("query", ["", "next=%2F%2Fevil.com", "u=http://evil.com/&v=//evil.com"])
@pytest.mark.parametrize("path", KEPT_RETURN_PATHS)
def test_same_origin_return_path_is_kept(dep: Deployment, path: str, query: str,
                                         signed_in: bool) -> None:
    # Positive controls: a harmless page comes back exactly, so "/" above is a decision.
    browser = Browser(dep)
    if signed_in:
        sign_in_at_idp(browser)
    path_info, _, path_query = path.partition("?")
    query = "&".join(q for q in (path_query, query) if q)
    location = _hand_off_from(browser, path_info, query, signed_in=signed_in)
    assert location == path_info + (f"?{query}" if query else "")
    assert is_same_origin_location(location, BLOG)


def test_overlong_return_path_falls_back_to_root(dep: Deployment) -> None:
    browser = Browser(dep)
    sign_in_at_idp(browser)
    assert _hand_off_from(browser, "/a" * 300, "", signed_in=True) == "/"


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
