"""An outside review of the hand-off edges' fixes (claims as long as their state, receipts,
cookieless passive visitors, a retried callback, a lost ticket): what it broke, each test
failing on the code before its fix.

- a callback that completed is a replay when its token and state cookie come back, even
  after a later hand-off of the same session to the same site (two tabs, a step-up);
- a mount point (``SCRIPT_NAME``, ASGI ``root_path``) never turns the library's own links
  -- the passive notice's, the sign-out form's -- into links to another site;
- a passive page answers a browser that keeps no cookies here with the notice, not a
  403, when the user is signed in at the IdP too (the IdP then answers with a token).

On MemoryStore and real Redis, under the WSGI and the ASGI shell.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest
from conftest import FakeClock
from flow import CALLBACK, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import SessionStore

PASSWORD = {"username": "alice", "password": "wonderland"}


def _state_cookies(browser: Browser) -> dict[str, str]:
    return {name: value for name, value in browser.apps["shop.test"].cookies.items()
            if name.startswith("sessionshare_state-")}


# -- a completed callback stays completed ----------------------------------------------------


def test_a_completed_callback_is_a_replay_even_after_a_later_hand_off(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Two tabs of one browser sign in to the shop: each callback completes. Someone who
    # copied the first tab's token URL and its state cookie (the pair that names that
    # redemption) replays them after the second tab completed: the first hand-off's mark
    # must not have been overwritten by the second's, or the replay joins the session.
    dep = Deployment(store, clock, shell=shell)
    browser = Browser(dep)
    first_login = browser.start_login(SHOP + "/orders?tab=1")
    second_login = browser.start_login(SHOP + "/orders?tab=2")
    copied = _state_cookies(browser)
    assert len(copied) == 2
    assert browser.get(first_login).status_int == 200
    first = browser.post(first_login, PASSWORD).location
    second = browser.get(second_login).location  # signed in now: straight back
    assert browser.get(first).status_int == 303
    assert browser.get(second).status_int == 303
    thief = Browser(dep)
    for name, value in copied.items():
        thief.apps["shop.test"].set_cookie(name, value)
    stolen = thief.get(first)
    assert stolen.status_int == 403 and reason_of(stolen) == "replayed", (
        stolen.status, stolen.text[:300])
    assert thief.cookie("shop.test") is None
    assert thief.get(SHOP + "/orders").status_int == 302  # not signed in there
    later = thief.get(second)  # the second, too
    assert later.status_int == 403 and reason_of(later) == "replayed"


# -- the library's own links stay on this site -------------------------------------------------


def _passive_answer(browser: Browser, *, relay: bool = False) -> str:
    """The query of a genuine "not signed in" answer from the IdP (anyone can get one);
    without the relay that brings a browser with no cookie here back to its page, unless
    ``relay``: as an IdP from before relays answers."""
    page = browser.get(SHOP + "/news",
                       headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
    assert page.status_int == 302 and "passive=1" in page.location, page
    back = browser.get(page.location)
    assert back.status_int == 303 and "?passive=" in back.location, back
    query = urlsplit(back.location).query
    assert "&relay=" in query
    return query if relay else query.split("&relay=")[0]


def _links(page: webtest.TestResponse) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', page.text)


@pytest.mark.parametrize("root", ["//evil.example", "/\\evil.example"],
                         ids=["double-slash", "backslash"])
def test_a_mount_point_never_makes_a_link_to_another_site(
    store: SessionStore, clock: FakeClock, shell: str, root: str
) -> None:
    # The mount point is the server's to say, and sometimes partly the client's: a
    # Starlette Mount("/{tenant}") puts the client's path segment (which may hold a
    # backslash) into root_path; gunicorn takes SCRIPT_NAME from a header its forwarder
    # passes. Browsers read "//host" and "/\host" as another host.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    answer = _passive_answer(Browser(dep))
    shop = webtest.TestApp(dep.wsgi(dep.shop),
                           extra_environ={"HTTP_HOST": "shop.test", "SCRIPT_NAME": root})
    html = {"Accept": "text/html"}
    # A browser that keeps no cookies, back from a passive bounce: the notice.
    notice = shop.get(f"{CALLBACK}?{answer}", headers=html, status="*")
    assert notice.status_int == 200 and "Not signed in" in notice.text, notice
    as_json = shop.get(f"{CALLBACK}?{answer}", headers={"Accept": "application/json"},
                       status="*")
    # The sign-out page's form.
    form = shop.get("/_sessionshare/logout", headers=html, status="*")
    assert form.status_int == 200 and "<form" in form.text, form
    # With the relay, back to the page the bounce was for: a path of this site, whatever
    # the mount point says.
    returned = shop.get(f"{CALLBACK}?{_passive_answer(Browser(dep), relay=True)}",
                        headers=html, status="*")
    assert returned.status_int == 303, returned
    links = [*_links(notice), *_links(form), as_json.json["next"], returned.location]
    assert len(links) == 4, links
    for link in links:
        assert link.startswith("/") and not link.startswith(("//", "/\\")), links
        assert "evil.example" not in link or link.startswith("/%5C"), links


# -- a passive page and a browser that keeps no cookies here, signed in at the IdP ----------


def test_a_signed_in_browser_that_keeps_no_cookies_here_gets_the_passive_page_as_a_guest(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # The user is signed in at the IdP, but this browser keeps none of the shop's cookies
    # (blocked for that site): bounced, it comes back with a token and no state cookie.
    # A public page must not become a 403 on every visit: back to the page, as a guest
    # (without its cookies this browser cannot be signed in here); the ticket is spent
    # all the same.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    browser = Browser(dep)
    browser.sign_in(LOGIN)
    nav = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
    bounce = browser.get(SHOP + "/news", headers=nav)
    assert bounce.status_int == 302 and "passive=1" in bounce.location
    state = parse_qs(urlsplit(bounce.location).query)["state"][0]
    browser.apps["shop.test"].cookiejar.clear()  # none of the shop's cookies is kept
    token_url = browser.get(bounce.location).location
    assert "?token=" in token_url
    back = browser.get(token_url, headers=nav)
    assert back.status_int == 303, (back.status, back.text)
    assert back.location.startswith("/news?sessionshare_guest="), back.location
    assert "Set-Cookie" not in back.headers
    page = browser.get(SHOP + back.location, headers=nav)
    assert page.status_int == 200 and page.json == {"user": None, "path": "/news", "query": ""}
    # From an IdP from before relays (none in the URL): the notice, not a 403, no loop.
    old_idp = Browser(dep)
    old_idp.sign_in(LOGIN)
    bounce = old_idp.get(SHOP + "/news", headers=nav)
    old_idp.apps["shop.test"].cookiejar.clear()
    bare = old_idp.get(bounce.location).location.split("&relay=")[0]
    notice = old_idp.get(bare, headers=nav)
    assert notice.status_int == 200 and "Not signed in" in notice.text, notice
    assert "Location" not in notice.headers and "Set-Cookie" not in notice.headers
    # Spent: even a browser holding a state cookie for that very state gets nothing.
    holder = Browser(dep)
    holder.apps["shop.test"].set_cookie(
        "sessionshare_state-0", dep.shop.side.state_signer.dumps([state, "/news"]))
    taken = holder.get(token_url)
    assert taken.status_int == 403 and reason_of(taken) == "replayed"


def test_a_token_of_a_sign_in_in_a_browser_without_cookies_here_is_still_refused(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Only a passive check's token gets the notice: the token of a protected page's
    # sign-in (or one pushed into a victim's browser) opened without cookies is a 403.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    refused = Browser(dep).get(token_url)
    assert refused.status_int == 403 and reason_of(refused) == "bad_state"
