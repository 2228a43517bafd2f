"""The passive sign-in check (issue 12, item 1): a public page knows the user without
ever showing a login form.

One bounce through the IdP for a navigation with no session: a user signed in
there comes back signed in here; anyone else comes back at once with a sealed
"not signed in" answer, remembered in a cookie so there is no second bounce.
Never for API calls, POSTs or prefetches. The answer is bound to the browser
like a token: replayed, or opened in another browser, it is refused. On memory
and real Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import FakeClock
from flow import BLOG, CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import SessionStore

NAV = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


@pytest.fixture(autouse=True)
def _each_shell(shell: str) -> None:
    """Every test here runs under WSGI and ASGI (the check is the core's, once)."""
    global SHELL
    SHELL = shell


SHELL = "wsgi"


def _deployment(store: SessionStore, clock: Any, **options: Any) -> Deployment:
    return Deployment(store, clock, shell=SHELL, remote_options={"passive": True, **options})


def test_an_anonymous_visitor_bounces_once_and_sees_the_public_page(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    away = browser.get(SHOP + "/?page=2", headers=NAV)
    assert away.status_int == 302 and away.location.startswith(LOGIN + "?")
    assert parse_qs(urlsplit(away.location).query)["passive"] == ["1"]
    answered = browser.get(away.location, headers=NAV)  # no login form: back at once
    assert answered.status_int == 303
    assert answered.location.startswith(SHOP + CALLBACK + "?passive=")
    back = browser.get(answered.location, headers=NAV)
    assert back.status_int == 303 and back.location == "/?page=2"
    page = browser.get(SHOP + back.location, headers=NAV)
    assert page.status_int == 200 and page.json["user"] is None
    # No second bounce: not on a reload, not on Back/Forward to it twice in a row.
    for _ in range(3):
        assert browser.get(SHOP + "/?page=2", headers=NAV).status_int == 200


def test_a_user_signed_in_at_the_idp_is_known_on_the_public_page(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(BLOG + "/x")  # signed in at the IdP (through the blog)
    away = browser.get(SHOP + "/news", headers=NAV)
    assert away.status_int == 302
    token_back = browser.get(away.location, headers=NAV)
    assert token_back.status_int == 303 and "?token=" in token_back.location
    landed = browser.get(token_back.location, headers=NAV)
    assert landed.status_int == 303 and landed.location == "/news"
    assert browser.get(SHOP + "/news", headers=NAV).json["user"] == "alice"


def test_a_sign_in_after_an_anonymous_check_is_known_on_the_public_page_at_once(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # The checked cookie stays for passive_ttl; a session this browser got since (here
    # through a protected page) is still read on the public page: no bounce, the user.
    dep = _deployment(store, clock)
    browser = Browser(dep)
    away = browser.get(SHOP + "/", headers=NAV)
    browser.get(browser.get(away.location, headers=NAV).location, headers=NAV)
    assert browser.get(SHOP + "/", headers=NAV).json["user"] is None  # checked: a guest
    browser.sign_in_at(SHOP + "/orders")
    page = browser.get(SHOP + "/", headers=NAV)
    assert page.status_int == 200 and page.json["user"] == "alice"
    # A cookie of a session that is gone (signed out at the IdP) is a guest, not a bounce.
    browser.post(IDP + "/_sessionshare/logout", headers={"Origin": IDP})
    gone = browser.get(SHOP + "/", headers=NAV)
    assert gone.status_int == 200 and gone.json["user"] is None


def test_the_check_is_remembered_for_passive_ttl_only(clock: FakeClock) -> None:
    from sessionshare import MemoryStore

    dep = _deployment(MemoryStore(clock=clock), clock, passive_ttl=120)
    browser = Browser(dep)
    away = browser.get(SHOP + "/", headers=NAV)
    browser.get(browser.get(away.location, headers=NAV).location, headers=NAV)
    (checked,) = [c for c in browser.apps["shop.test"].cookiejar if c.name.endswith("_checked")]
    assert checked.expires is not None  # a Max-Age, not a browser-session cookie
    assert browser.get(SHOP + "/", headers=NAV).status_int == 200


@pytest.mark.parametrize("headers", [
    {"Accept": "application/json"},                                     # an API client
    {"Accept": "*/*", "Sec-Fetch-Mode": "cors"},                        # fetch()
    {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Purpose": "prefetch"},
    {"Accept": "text/html", "Purpose": "prefetch"},                     # older prefetch
    {"Accept": "text/html", "Sec-Fetch-Mode": "navigate",
     "Sec-Purpose": "prefetch;prerender"},
])
def test_never_for_a_request_no_user_is_looking_at(
    store: SessionStore, clock: Callable[[], float], headers: dict[str, str]
) -> None:
    dep = _deployment(store, clock)
    assert Browser(dep).get(SHOP + "/", headers=headers).status_int == 200


def test_never_for_a_post(store: SessionStore, clock: Callable[[], float]) -> None:
    dep = _deployment(store, clock)
    assert Browser(dep).post(SHOP + "/", headers=NAV).status_int == 200


def test_only_the_prefixes_given(store: SessionStore, clock: Callable[[], float]) -> None:
    dep = Deployment(store, clock, shell=SHELL, remote_options={"passive": ["/welcome"]})
    browser = Browser(dep)
    assert browser.get(SHOP + "/elsewhere", headers=NAV).status_int == 200
    assert browser.get(SHOP + "/welcome", headers=NAV).status_int == 302


def _answer_url(browser: Browser, url: str) -> str:
    away = browser.get(url, headers=NAV)
    return str(browser.get(away.location, headers=NAV).location)


def test_a_replayed_answer_is_refused(store: SessionStore, clock: Callable[[], float]) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    answer_url = _answer_url(browser, SHOP + "/")
    assert browser.get(answer_url, headers=NAV).status_int == 303
    again = browser.get(answer_url, headers=NAV)
    assert again.status_int == 403 and reason_of(again) == "bad_state"


def test_an_answer_opened_in_another_browser_is_refused(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = _deployment(store, clock)
    answer_url = _answer_url(Browser(dep), SHOP + "/")
    victim = Browser(dep)
    victim.get(SHOP + "/orders", headers=NAV)  # a browser that has been to the shop
    forced = victim.get(answer_url, headers=NAV)
    assert forced.status_int == 403 and reason_of(forced) == "bad_state"
    assert not [c for c in victim.apps["shop.test"].cookiejar if c.name.endswith("_checked")]


def test_an_answer_opened_in_a_browser_without_cookies_here_binds_nothing(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # No cookie of the shop at all: a client that keeps none, back from its bounce (or a
    # browser made to open someone else's answer on its first visit). Not refused -- there
    # is nothing to bind -- but nothing is remembered either, and there is no redirect.
    dep = _deployment(store, clock)
    answer_url = _answer_url(Browser(dep), SHOP + "/")
    victim = Browser(dep)
    forced = victim.get(answer_url, headers=NAV)
    assert forced.status_int == 200 and "Location" not in forced.headers
    assert "not signed in" in forced.text.lower()
    assert not list(victim.apps["shop.test"].cookiejar)


@pytest.mark.parametrize("change", ["tag", "time", "state", "garbage"])
def test_an_altered_answer_is_refused(
    store: SessionStore, clock: Callable[[], float], change: str
) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    answer_url = _answer_url(browser, SHOP + "/")
    base, answer = answer_url.split("?passive=")
    state, issued, tag = answer.split(".")
    altered = {
        "tag": f"{state}.{issued}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}",
        "time": f"{state}.{int(issued, 16) + 1:x}.{tag}",
        "state": f"{'A' if state[0] != 'A' else 'B'}{state[1:]}.{issued}.{tag}",
        "garbage": "not-an-answer",
    }[change]
    refused = browser.get(f"{base}?passive={altered}", headers=NAV)
    assert refused.status_int == 403
    assert reason_of(refused) == ("malformed" if change == "garbage" else "bad_seal")


def test_an_old_answer_is_refused(store: SessionStore, clock: FakeClock) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    answer_url = _answer_url(browser, SHOP + "/")
    clock.advance(60 + 5 + 1)  # token_ttl plus the leeway
    refused = browser.get(answer_url, headers=NAV)
    assert refused.status_int == 403 and reason_of(refused) == "expired"


def test_the_idp_shows_no_form_and_keeps_nothing_pending(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = _deployment(store, clock)
    browser = Browser(dep)
    away = browser.get(SHOP + "/", headers=NAV)
    answered = browser.get(away.location, headers=NAV)
    assert answered.status_int == 303 and "login form" not in answered.text
    assert browser.cookie("id.test") is None  # no session made for a pending hand-off
    assert "idp home user=None" in browser.get(IDP + "/").text


def test_an_answer_from_the_future_or_another_key_is_refused() -> None:
    import time

    from sessionshare import SyncKey, TokenRejected
    from sessionshare.core.passive import PassiveAnswers

    text = SyncKey.generate()
    answers, now = PassiveAnswers(SyncKey.parse(text)), time.time()
    state = "S" * 43
    with pytest.raises(TokenRejected) as early:
        answers.open(answers.seal(state, now=now + 60), now=now, ttl=60)
    assert early.value.reason == "not_yet_valid"
    other = PassiveAnswers(SyncKey.parse(SyncKey.generate()))
    with pytest.raises(TokenRejected) as foreign:
        other.open(answers.seal(state, now=now), now=now, ttl=60)
    assert foreign.value.reason == "bad_seal"
    rotated = PassiveAnswers(SyncKey.parse([SyncKey.generate(), text]))  # a new key first
    assert rotated.open(answers.seal(state, now=now), now=now, ttl=60) == state
