"""The passive sign-in check (issue 12, item 1): a public page knows the user without
ever showing a login form.

One bounce through the IdP for a navigation with no session: a user signed in
there comes back signed in here; anyone else comes back at once with a sealed
"not signed in" answer, remembered in a cookie so there is no second bounce.
Never for API calls, POSTs or prefetches. The answer is bound to the browser
like a token: replayed, or opened in another browser, it is refused.

The flows end to end run under each shell on memory and real Redis; the
decisions (which request is checked, which answer is refused and why) on the
remote's and the IdP's sides driven by hand (tests/coreflow.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import BLOG, CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment
from servers import counting_client

from sessionshare import RedisStore, SessionStore

NAV = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
#: A passive check of a user signed in at the IdP, end to end (the IdP's read and its ticket,
#: the remote's redemption and join, the page's read), as measured before a browser that
#: keeps no cookies had a way back to its page: it must stay so.
ROUND_TRIPS_SIGNED_IN = 5
PREFETCHES = [
    {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Purpose": "prefetch"},
    {"Accept": "text/html", "Purpose": "prefetch"},
]


@pytest.fixture
def dep(store: SessionStore, clock: Callable[[], float], shell: str) -> Deployment:
    """The end-to-end rows: each flow under WSGI and ASGI, on memory and Redis."""
    return Deployment(store, clock, shell=shell, remote_options={"passive": True})


def test_an_anonymous_visitor_bounces_once_and_sees_the_public_page(dep: Deployment) -> None:
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


def test_a_user_signed_in_at_the_idp_is_known_on_the_public_page(dep: Deployment) -> None:
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
    dep: Deployment,
) -> None:
    # The checked cookie stays for passive_ttl; a session this browser got since (here
    # through a protected page) is still read on the public page: no bounce, the user.
    # Where the shells differ (WSGI reads the session when the app looks, ASGI up front),
    # so end to end under each.
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


@pytest.mark.parametrize("headers", PREFETCHES, ids=["sec-purpose", "purpose"])
def test_never_for_a_prefetch_end_to_end(dep: Deployment, headers: dict[str, str]) -> None:
    # The shell reads Sec-Purpose (or the older Purpose) into the request the core asks.
    assert Browser(dep).get(SHOP + "/", headers=headers).status_int == 200
    assert Browser(dep).get(SHOP + "/", headers=NAV).status_int == 302


def _bounce_round_trips(redis_url: str, clock: Callable[[], float], *,
                        keeps_shop_cookies: bool, signed_in_at_idp: bool) -> tuple[int, Any]:
    """Store round trips of one passive bounce, from the page to the page it ends on."""
    client, counts = counting_client(redis_url)
    dep = Deployment(RedisStore(client), clock, remote_options={"passive": True})
    # The first bounce of a process also loads the store's scripts and reads its identity:
    # the second, another browser's, is the one every later visitor costs.
    for _ in range(2):
        browser = Browser(dep)
        if signed_in_at_idp:
            browser.sign_in(LOGIN)
        url, page = SHOP + "/news?id=7", None
        before = counts["round_trips"]
        for _ in range(6):
            if not keeps_shop_cookies:
                browser.apps["shop.test"].cookiejar.clear()
            page = browser.get(url, headers=NAV)
            if page.status_int not in (302, 303):
                break
            url = page.location if page.location.startswith("http") else SHOP + page.location
        spent = counts["round_trips"] - before
    client.close()
    return spent, page


@pytest.mark.parametrize("signed_in_at_idp", [False, True], ids=["anonymous", "signed-in-at-idp"])
def test_a_passive_bounce_costs_as_many_round_trips_whether_cookies_are_kept_or_not(
    redis_url: str, clock: Callable[[], float], signed_in_at_idp: bool
) -> None:
    # The way back for a browser that keeps no cookies here travels in URLs, never in the
    # store: the bounce of a browser that keeps them costs what it always did (anonymous:
    # none at all; signed in at the IdP: the read there and the hand-off's ticket), and
    # one that keeps none costs no more.
    kept, page = _bounce_round_trips(redis_url, clock, keeps_shop_cookies=True,
                                     signed_in_at_idp=signed_in_at_idp)
    assert page is not None and page.status_int == 200
    assert page.json["user"] == ("alice" if signed_in_at_idp else None)
    assert kept == (ROUND_TRIPS_SIGNED_IN if signed_in_at_idp else 0), kept
    blocked, page = _bounce_round_trips(redis_url, clock, keeps_shop_cookies=False,
                                        signed_in_at_idp=signed_in_at_idp)
    assert page is not None and page.status_int == 200, page
    assert blocked <= kept, (blocked, kept)


# -- the decisions, on the core's sides driven by hand (tests/coreflow.py) ------------------


def _core(**options: Any) -> CoreDeployment:
    return CoreDeployment(remote_options={"passive": True, **options})


def _core_answer_url(browser: CoreBrowser, url: str) -> str:
    away = browser.get(url, fetch_mode="navigate")
    assert away.status == 302 and away.location, away
    answered = browser.get(away.location, fetch_mode="navigate")
    assert answered.status == 303 and answered.location, answered
    return answered.location


def test_the_check_is_remembered_for_passive_ttl_only() -> None:
    browser = CoreBrowser(_core(passive_ttl=120))
    back = browser.get(_core_answer_url(browser, SHOP + "/"), fetch_mode="navigate")
    (checked,) = [c for c in back.cookies() if c.split("=", 1)[0].endswith("_checked")]
    assert "Max-Age=120" in checked  # not a browser-session cookie
    assert browser.get(SHOP + "/", fetch_mode="navigate").passed


@pytest.mark.parametrize("request_headers", [
    {"accept": "application/json"},                                     # an API client
    {"accept": "*/*", "fetch_mode": "cors"},                            # fetch()
    {"fetch_mode": "navigate", "purpose": "prefetch"},
    {"purpose": "prefetch"},                                            # older prefetch
    {"fetch_mode": "navigate", "purpose": "prefetch;prerender"},
], ids=["api", "fetch", "prefetch", "older prefetch", "prerender"])
def test_never_for_a_request_no_user_is_looking_at(request_headers: dict[str, str]) -> None:
    browser = CoreBrowser(_core())
    answer = browser.get(SHOP + "/", **request_headers)
    assert answer.passed and answer.user is None, answer
    # The control: the same page, navigated to, is checked.
    assert browser.get(SHOP + "/", fetch_mode="navigate").status == 302


@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_never_for_a_post_or_a_head(method: str) -> None:
    # A HEAD is a navigation too (a link checker's), but no user looks at its answer.
    browser = CoreBrowser(_core())
    assert browser.send(method, SHOP + "/", fetch_mode="navigate").passed


def test_only_the_prefixes_given() -> None:
    browser = CoreBrowser(_core(passive=["/welcome"]))
    assert browser.get(SHOP + "/elsewhere", fetch_mode="navigate").passed
    assert browser.get(SHOP + "/welcome", fetch_mode="navigate").status == 302


def test_a_replayed_answer_is_refused() -> None:
    browser = CoreBrowser(_core())
    answer_url = _core_answer_url(browser, SHOP + "/")
    assert browser.get(answer_url, fetch_mode="navigate").status == 303
    again = browser.get(answer_url, fetch_mode="navigate")
    assert again.status == 403 and again.reason == "bad_state"


def test_an_answer_opened_in_another_browser_is_refused() -> None:
    dep = _core()
    answer_url = _core_answer_url(CoreBrowser(dep), SHOP + "/")
    victim = CoreBrowser(dep)
    victim.get(SHOP + "/orders", fetch_mode="navigate")  # a browser that has been to the shop
    forced = victim.get(answer_url, fetch_mode="navigate")
    assert forced.status == 403 and forced.reason == "bad_state"
    assert not [name for name in victim.jar(SHOP) if name.endswith("_checked")]


def test_an_answer_opened_in_a_browser_without_cookies_here_binds_nothing() -> None:
    # No cookie of the shop at all: a client that keeps none, back from its bounce (or a
    # browser made to open someone else's answer on its first visit). Not refused -- there
    # is nothing to bind -- and nothing is remembered: it is sent to the page that bounce
    # was for (a page of this site, as any link to it could), as a guest.
    dep = _core()
    answer_url = _core_answer_url(CoreBrowser(dep), SHOP + "/")
    victim = CoreBrowser(dep)
    forced = victim.get(answer_url, fetch_mode="navigate")
    assert forced.status == 303 and forced.location is not None
    assert forced.location.startswith("/?sessionshare_guest="), forced.location
    assert not forced.cookies() and not victim.jar(SHOP)
    page = victim.get(SHOP + forced.location, fetch_mode="navigate")
    assert page.passed and page.user is None and not page.cookies()


@pytest.mark.parametrize("change", ["tag", "time", "state", "garbage"])
def test_an_altered_answer_is_refused(change: str) -> None:
    browser = CoreBrowser(_core())
    answer_url = _core_answer_url(browser, SHOP + "/")
    base, answer = answer_url.split("?passive=")
    state, issued, tag = answer.split(".")
    altered = {
        "tag": f"{state}.{issued}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}",
        "time": f"{state}.{int(issued, 16) + 1:x}.{tag}",
        "state": f"{'A' if state[0] != 'A' else 'B'}{state[1:]}.{issued}.{tag}",
        "garbage": "not-an-answer",
    }[change]
    refused = browser.get(f"{base}?passive={altered}", fetch_mode="navigate")
    assert refused.status == 403 and not refused.cookies()
    assert refused.reason == ("malformed" if change == "garbage" else "bad_seal")
    # The control: the answer as the IdP sealed it is taken.
    assert browser.get(answer_url, fetch_mode="navigate").status == 303


def test_an_old_answer_is_refused() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    answer_url = _core_answer_url(browser, SHOP + "/")
    dep.clock.advance(60 + 5 + 1)  # token_ttl plus the leeway
    refused = browser.get(answer_url, fetch_mode="navigate")
    assert refused.status == 403 and refused.reason == "expired"


def test_the_idp_shows_no_form_and_keeps_nothing_pending() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    away = browser.get(SHOP + "/", fetch_mode="navigate")
    assert away.location is not None
    answered = browser.get(away.location, fetch_mode="navigate")
    assert answered.status == 303 and not answered.passed  # no form: the IdP answered
    assert browser.cookie("id.test") is None  # no session made for a pending hand-off
    assert dep.store.sessions() == {}
    at_idp = browser.get(IDP + "/")
    assert at_idp.passed and at_idp.user is None


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


# -- a browser that keeps no cookies here: the relay and the guest mark (core/guest.py) --------


def _blocked_answer_url(dep: CoreDeployment, url: str = SHOP + "/news?id=7",
                        browser: CoreBrowser | None = None) -> str:
    """The callback URL a browser that keeps none of the shop's cookies comes back with."""
    browser = browser or CoreBrowser(dep)
    away = browser.get(url, fetch_mode="navigate", cookie="")
    assert away.status == 302 and away.location and "&relay=" in away.location, away
    answered = browser.get(away.location, fetch_mode="navigate")
    assert answered.status == 303 and answered.location, answered
    return answered.location


def _relay_of(url: str) -> str:
    (relay,) = parse_qs(urlsplit(url).query)["relay"]
    return relay


def test_only_a_bounce_without_cookies_here_carries_its_page_and_nothing_is_stored() -> None:
    dep = _core()
    keeps = CoreBrowser(dep)
    keeps.set_cookie(SHOP, "theme", "dark")
    away = keeps.get(SHOP + "/news", fetch_mode="navigate")
    assert away.status == 302 and "relay=" not in (away.location or "")
    first = CoreBrowser(dep).get(SHOP + "/news?id=7", fetch_mode="navigate")
    assert first.status == 302 and first.location is not None
    relay = _relay_of(first.location)
    assert "news" not in relay and "id=7" not in relay  # sealed: the IdP's log shows no page
    assert dep.store.sessions() == {} and dep.store.tickets() == {}
    # The IdP hands it back as it came: with its answer, and with a token.
    back = CoreBrowser(dep).get(first.location, fetch_mode="navigate")
    assert back.location is not None and _relay_of(back.location) == relay


def test_the_idp_hands_a_relay_back_only_to_a_passive_check() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    browser.sign_in(browser.start_login(BLOG + "/x"))
    login = CoreBrowser(dep).get(SHOP + "/news", fetch_mode="navigate", cookie="").location
    assert login is not None
    passive = browser.get(login, fetch_mode="navigate")
    assert passive.status == 303 and passive.location and "?token=" in passive.location
    assert _relay_of(passive.location) == _relay_of(login)
    # A sign-in's hand-off (no passive=1) never echoes one, whatever the URL says.
    signing_in = browser.start_login(SHOP + "/orders") + "&relay=" + _relay_of(login)
    token_url = browser.get(signing_in).location
    assert token_url is not None and "?token=" in token_url and "relay=" not in token_url


@pytest.mark.parametrize("relay", [
    "A" * 15, "A" * 1025, "AAAAAAAAAAAAAAAAAAAA%26x%3D1", "AAAAAAAAAAAAAAAAAAAA.B",
    "AAAAAAAAAAAAAAAAAAAA&relay=BBBBBBBBBBBBBBBBBBBB",
], ids=["short", "long", "encoded-ampersand", "dot", "twice"])
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_the_idp_refuses_a_relay_it_could_not_hand_back_as_it_is(relay: str,
                                                                 strict: bool) -> None:
    dep = CoreDeployment(remote_options={"passive": True}, idp_options={"strict": strict})
    login = CoreBrowser(dep).get(SHOP + "/news", fetch_mode="navigate", cookie="").location
    assert login is not None
    answer = CoreBrowser(dep).get(login.split("&relay=")[0] + "&relay=" + relay,
                                  fetch_mode="navigate")
    if strict:
        assert answer.status == 400 and answer.reason == "malformed", answer
    else:  # as for a bad state: the IdP's own page, no hand-off, nothing sent anywhere
        assert answer.passed and answer.location is None, answer
    assert dep.count("callback_rejected") == 1


@pytest.mark.parametrize("change", ["altered", "another-check", "twice", "garbage"])
def test_a_forged_or_swapped_relay_is_refused(change: str) -> None:
    dep = _core()
    url = _blocked_answer_url(dep)
    relay = _relay_of(url)
    other = _relay_of(_blocked_answer_url(dep, SHOP + "/elsewhere"))
    bare = url.split("&relay=")[0]
    forged = {
        "altered": f"{bare}&relay={relay[:30]}{'A' if relay[30] != 'A' else 'B'}{relay[31:]}",
        "another-check": f"{bare}&relay={other}",  # a genuine relay, of another bounce
        "twice": f"{url}&relay={relay}",
        "garbage": f"{bare}&relay=%2F%2Fevil.example",
    }[change]
    refused = CoreBrowser(dep).get(forged, fetch_mode="navigate")
    assert refused.status == 403 and refused.location is None and not refused.cookies()
    assert refused.reason == ("bad_seal" if change in ("altered", "another-check")
                              else "malformed"), refused.reason
    # The control: as the IdP handed it back, it is taken.
    assert CoreBrowser(dep).get(url, fetch_mode="navigate").status == 303


@pytest.mark.parametrize("back", ["//evil.example/x", "/\\evil.example", "/%09/evil.example",
                                  "https://evil.example/", "/ok\r\nSet-Cookie: x=1"])
def test_a_relay_never_sends_a_browser_to_another_site(back: str) -> None:
    # Only a holder of the sync key can seal a relay; even its relay is a return path
    # checked as any other: what fails the check gets the notice, never a redirect.
    dep = _core()
    url = _blocked_answer_url(dep)
    state = parse_qs(urlsplit(url).query)["passive"][0].split(".")[0]
    sealed = dep.shop.relays.seal(back.encode("ascii", "replace").decode("ascii"),
                                  state=state)
    answer = CoreBrowser(dep).get(url.split("&relay=")[0] + "&relay=" + sealed,
                                  fetch_mode="navigate")
    assert answer.status == 200 and answer.location is None, answer
    assert b"Not signed in" in answer.body


def test_the_guest_mark_spares_one_bounce_and_the_app_never_sees_it() -> None:
    dep = _core()
    blocked = CoreBrowser(dep)
    back = blocked.get(_blocked_answer_url(dep), fetch_mode="navigate", cookie="")
    assert back.status == 303 and back.location is not None and not back.cookies()
    assert back.location.startswith("/news?id=7&sessionshare_guest="), back.location
    page = blocked.get(SHOP + back.location, fetch_mode="navigate", cookie="")
    assert page.passed and page.user is None and page.query == "id=7", page
    # Until passive_ttl is over; then it is bounced again (and comes back again).
    dep.clock.advance(dep.shop.passive_ttl - 1)
    assert blocked.get(SHOP + back.location, fetch_mode="navigate", cookie="").passed
    dep.clock.advance(2)
    stale = blocked.get(SHOP + back.location, fetch_mode="navigate", cookie="")
    assert stale.status == 302 and stale.location is not None, stale
    again = _blocked_answer_url(dep, SHOP + back.location, blocked)
    returned = blocked.get(again, fetch_mode="navigate", cookie="")
    assert returned.status == 303 and returned.location is not None
    assert returned.location.count("sessionshare_guest=") == 1  # the stale one replaced
    assert returned.location.startswith("/news?id=7&sessionshare_guest=")


@pytest.mark.parametrize("mark", ["forged", "another-site", "garbage", "empty"])
def test_a_mark_this_site_did_not_make_spares_nothing(mark: str) -> None:
    dep = _core()
    genuine = dep.shop.guest_marks.add("/news", now=dep.clock())
    value = genuine.split("sessionshare_guest=")[1]
    issued, tag = value.split(".")
    marked = {
        "forged": f"/news?sessionshare_guest={issued}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}",
        "another-site": dep.blog.guest_marks.add("/news", now=dep.clock()),
        "garbage": "/news?sessionshare_guest=yes",
        "empty": "/news?sessionshare_guest",
    }[mark]
    bounced = CoreBrowser(dep).get(SHOP + marked, fetch_mode="navigate")
    assert bounced.status == 302, bounced
    # The control: the genuine mark is honoured.
    assert CoreBrowser(dep).get(SHOP + genuine, fetch_mode="navigate").passed


def test_a_browser_that_keeps_cookies_is_checked_whatever_mark_its_link_carries() -> None:
    # A mark planted in a link spares only a browser with no cookie here one check; one
    # that keeps cookies is checked, and the page it returns to carries no mark.
    dep = _core()
    marked = dep.shop.guest_marks.add("/news?id=7", now=dep.clock())
    browser = CoreBrowser(dep)
    browser.set_cookie(SHOP, "theme", "dark")
    away = browser.get(SHOP + marked, fetch_mode="navigate")
    assert away.status == 302 and away.location and "relay=" not in away.location
    answered = browser.get(away.location, fetch_mode="navigate")
    back = browser.get(answered.location or "", fetch_mode="navigate")
    assert back.status == 303 and back.location == "/news?id=7"
    # Checked now: a link with the mark is served, the app sees the page's own query.
    page = browser.get(SHOP + marked, fetch_mode="navigate")
    assert page.passed and page.query == "id=7"


def test_a_bounce_its_mark_should_have_spared_ends_at_the_notice() -> None:
    # A mark from an instance whose clock runs ahead (past the leeway) is not honoured
    # here, so the page is bounced; the callback, seeing a return path whose mark it would
    # honour, stops with the notice rather than send the browser round again.
    dep = _core()
    ahead = dep.shop.guest_marks.add("/news", now=dep.clock() + 3600)
    url = _blocked_answer_url(dep, SHOP + ahead)
    stopped = CoreBrowser(dep).get(url, fetch_mode="navigate")
    assert stopped.status == 200 and stopped.location is None, stopped
    assert b"Not signed in" in stopped.body and not stopped.cookies()


def test_a_relay_opens_under_every_configured_key_and_only_for_its_state() -> None:
    from sessionshare import SyncKey, TokenRejected
    from sessionshare.core.guest import Relays

    old, new = SyncKey.generate(), SyncKey.generate()
    relay = Relays(SyncKey.parse(old)).seal("/news?id=7", state="S" * 43)
    assert Relays(SyncKey.parse([new, old])).open(relay, state="S" * 43) == "/news?id=7"
    for key, state in ((SyncKey.parse(new), "S" * 43), (SyncKey.parse(old), "T" * 43)):
        with pytest.raises(TokenRejected) as refused:
            Relays(key).open(relay, state=state)
        assert refused.value.reason == "bad_seal"


def test_a_relay_that_is_not_base64_or_seals_no_return_path_is_refused() -> None:
    # Both reach Relays.open past the IdP's character check: a relay must be refused
    # with the library's reason, never escape as a decoding error (a 500 at the callback).
    import base64
    import secrets

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from sessionshare import SyncKey, TokenRejected
    from sessionshare.core.guest import Relays

    key = SyncKey.parse(SyncKey.generate())
    with pytest.raises(TokenRejected) as refused:
        Relays(key).open("A" * 17, state="S" * 43)  # one character past a multiple of 4
    assert refused.value.reason == "malformed"
    # Sealed with the relay key itself, but the plain text is not an ASCII return path.
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key.derive("passive relay")[0]).encrypt(nonce, "/caf\u00e9".encode(),
                                                            ("S" * 43).encode("ascii"))
    relay = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
    with pytest.raises(TokenRejected) as refused:
        Relays(key).open(relay, state="S" * 43)
    assert refused.value.reason == "bad_seal"


def test_a_token_with_a_forged_relay_is_refused_and_its_ticket_spent() -> None:
    # Signed in at the IdP, the check comes back with a token: a relay that does not open
    # for its state is a 403 as for an answer, and the ticket is spent all the same.
    dep = _core()
    browser = CoreBrowser(dep)
    browser.sign_in(browser.start_login(BLOG + "/x"))
    login = CoreBrowser(dep).get(SHOP + "/news", fetch_mode="navigate", cookie="").location
    other = CoreBrowser(dep).get(SHOP + "/else", fetch_mode="navigate", cookie="").location
    assert login is not None and other is not None
    token_url = browser.get(login, fetch_mode="navigate").location
    assert token_url is not None and "?token=" in token_url
    swapped = token_url.split("&relay=")[0] + "&relay=" + _relay_of(other)
    refused = CoreBrowser(dep).get(swapped, fetch_mode="navigate")
    assert refused.status == 403 and refused.reason == "bad_seal" and not refused.cookies()
    again = CoreBrowser(dep).get(token_url, fetch_mode="navigate")  # the genuine relay
    assert again.status == 303 and again.location is not None
    assert again.location.startswith("/news?sessionshare_guest=")  # a guest: spent, unused
    assert dep.count("ticket_redeemed") == 0


def test_the_wsgi_app_finds_the_original_query_under_the_librarys_key(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # The mark is taken out of QUERY_STRING; the query as received stays at hand.
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(query=environ["QUERY_STRING"],
                    original=environ.get("sessionshare.query_string"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    dep = Deployment(store, clock, remote=app, remote_options={"passive": True})
    marked = dep.shop.side.guest_marks.add("/news?id=7", now=clock())
    page = Browser(dep).get(SHOP + marked, headers=NAV)
    assert page.status_int == 200 and page.text == "page"
    assert seen == {"query": "id=7", "original": marked.split("?", 1)[1]}
    # Without a mark, nothing is rewritten and nothing kept.
    Browser(dep).apps["shop.test"].get("/news?id=7", headers={"Accept": "text/html"})
    assert seen == {"query": "id=7", "original": None}


def test_the_asgi_app_finds_the_original_query_under_the_librarys_key(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # The ASGI twin of the test above: the scope keeps the query as received.
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(query=scope["query_string"], original=scope.get("sessionshare.query_string"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"page"})

    dep = Deployment(store, clock, remote=app, remote_options={"passive": True}, shell="asgi")
    marked = dep.shop.side.guest_marks.add("/news?id=7", now=clock())
    page = Browser(dep).get(SHOP + marked, headers=NAV)
    assert page.status_int == 200 and page.text == "page"
    assert seen == {"query": b"id=7", "original": marked.split("?", 1)[1].encode()}
    Browser(dep).apps["shop.test"].get("/news?id=7", headers={"Accept": "text/html"})
    assert seen == {"query": b"id=7", "original": None}
