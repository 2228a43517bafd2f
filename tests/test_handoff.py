"""The whole hand-off between one IdP and two remotes (DESIGN section 1).

Runs against MemoryStore and real Redis (the ``store`` fixture), with bare
WSGI apps under WebTest.
"""

from __future__ import annotations

from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment

from sessionshare import SessionStore


def test_happy_path_end_to_end(store: SessionStore, clock) -> None:
    dep = Deployment(store, clock)
    browser = Browser(dep)

    # First visit to A: off to the IdP, with the callback and a state.
    login_url = browser.start_login(SHOP + "/orders?page=2")
    assert "callback=http%3A%2F%2Fshop.test%2F_sessionshare%2Fcallback" in login_url
    # The IdP shows its own form; posting it sends the browser back to A with a token.
    answer = browser.sign_in(login_url)
    assert answer.status_int == 303
    assert answer.location.startswith(SHOP + "/_sessionshare/callback?token=")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    back = browser.get(answer.location)
    assert back.status_int == 303 and back.location == "/orders?page=2"
    page = browser.get(SHOP + back.location)
    assert page.status_int == 200
    assert page.json == {"user": "alice", "path": "/orders", "query": "page=2"}

    # B: signed in with no login form.
    first = browser.get(BLOG + "/articles")
    assert first.status_int == 302
    from_idp = browser.get(first.location)
    assert from_idp.status_int == 303 and from_idp.location.startswith(BLOG + "/_sessionshare/")
    back = browser.get(from_idp.location)
    assert back.status_int == 303 and back.location == "/articles"
    assert browser.get(BLOG + back.location).json["user"] == "alice"

    # Logout at B ends the session for A and the IdP too.
    out = browser.post(BLOG + "/_sessionshare/logout")
    assert out.status_int == 303
    assert browser.get(SHOP + "/orders").status_int == 302
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert browser.get(BLOG + "/articles").location.startswith(LOGIN)
