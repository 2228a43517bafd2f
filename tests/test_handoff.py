"""The whole hand-off between one IdP and two remotes (DESIGN section 1).

The flows end to end run against MemoryStore and real Redis (the ``store``
fixture) under the WSGI and the ASGI middlewares (the ``shell`` fixture),
with bare apps under WebTest; tests/reliability/test_cluster.py runs them on
a Redis Cluster too. The decisions along the way are tested where they are
made: the IdP's and the remotes' sides driven by hand (tests/coreflow.py).
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote, urlencode

import pytest
import webtest
from conftest import FakeClock, is_dead, live_session_keys
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import BLOG, CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment, reason_of
from servers import RedisServer, counting_client

from sessionshare import MemoryStore, RedisStore, Session, SessionStore


def test_happy_path_end_to_end(store: SessionStore, clock, shell: str) -> None:
    dep = Deployment(store, clock, shell=shell)
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


# -- every check of step 5 can fail ---------------------------------------------------
#
# Each check of the callback -- seal, key, issuer, audience, age, state, method, shape,
# replay, a session gone or signed out -- is tested where it is made, in
# tests/security/test_token_state_cookie.py (the core's sides driven by hand, each
# table once end to end per shell and store). Here: one refusal through the real
# middlewares, which also runs on the Redis Cluster (tests/reliability/test_cluster.py).


def _split(url: str) -> tuple[str, str]:
    base, _, token = url.partition("?token=")
    return base, token


def _snapshot(store: SessionStore, dep: Deployment) -> dict[str, object]:
    """Every live stored session's fields and metadata (TTL aside; a moved id's
    short-lived marker is no session)."""
    keys = live_session_keys(store, dep.idp.side.lifecycle.key_prefix)
    records = {key: store.load(key, 3600) for key in keys}
    return {k: (r.fields, r.meta) for k, r in records.items() if r is not None}


def _assert_refused(response: webtest.TestResponse, reason: str) -> None:
    assert response.status_int == 403, response
    assert reason_of(response) == reason
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def dep(store: SessionStore, clock: FakeClock, shell: str) -> Deployment:
    return Deployment(store, clock, shell=shell)


def test_parallel_replay_has_exactly_one_winner(redis_url: str, clock: FakeClock,
                                                shell: str) -> None:
    store = RedisStore.from_url(redis_url)
    dep = Deployment(store, clock, shell=shell)
    shop = dep.wsgi(dep.shop)  # under ASGI: both redemptions race on the one event loop
    browser = Browser(dep)
    for _ in range(200 if shell == "wsgi" else 100):
        url = browser.token_url_for(SHOP + "/orders")
        base, token = _split(url)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.apps["shop.test"].cookies.items()
                           if k.startswith("sessionshare_state"))
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/_sessionshare/callback",
            "QUERY_STRING": f"token={token}", "HTTP_COOKIE": cookie, "HTTP_ACCEPT": "text/html",
        }
        statuses: list[str] = []
        barrier = threading.Barrier(2)

        def redeem(
            environ: dict[str, str] = environ,
            statuses: list[str] = statuses,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            shop(dict(environ), lambda status, headers, exc_info=None: statuses.append(status))

        threads = [threading.Thread(target=redeem) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == ["303 See Other", "403 Forbidden"], statuses
        # Let the browser's own state cookie go: the next round starts a fresh login.
        for name in [k for k in browser.apps["shop.test"].cookies if k.startswith("sessionshare_")]:
            browser.apps["shop.test"].cookiejar.clear("shop.test", "/_sessionshare/callback", name)
    store.close()


def test_login_csrf_attackers_token_in_victims_browser_end_to_end(
    dep: Deployment, store: SessionStore
) -> None:
    victim = Browser(dep)
    assert victim.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    victim_cookie = victim.cookie("shop.test")
    attacker = Browser(dep)
    # The attacker runs a login of their own and stops before redeeming the token...
    attackers_url = attacker.token_url_for(SHOP + "/orders", user="bob")
    before = _snapshot(store, dep)
    # ...then makes the victim's browser open it (a link, an img, a redirect).
    _assert_refused(victim.get(attackers_url), "bad_state")
    assert victim.cookie("shop.test") == victim_cookie
    assert victim.get(SHOP + "/orders").json["user"] == "alice"
    assert _snapshot(store, dep) == before
    # A genuine token refused for its state was spent in the store: its own browser
    # cannot redeem it now either.
    _assert_refused(attacker.get(attackers_url), "replayed")


# -- the IdP's decisions, driven by hand (tests/coreflow.py) ------------------------------


def test_idp_session_id_rotates_at_login() -> None:
    dep = CoreDeployment()
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the pending hand-off creates the anonymous IdP session
    anonymous = browser.cookie("id.test")
    assert anonymous is not None
    (anonymous_key,) = dep.store.sessions()
    browser.sign_in(login_url)
    signed_in = browser.cookie("id.test")
    assert signed_in is not None and signed_in != anonymous
    assert is_dead(dep.store.load(anonymous_key, 60))
    # A planted copy of the old id gets nothing.
    stale = CoreBrowser(dep)
    stale.set_cookie(IDP, "sessionshare", anonymous)
    at_idp = stale.get(IDP + "/")
    assert at_idp.passed and at_idp.user is None


def test_strict_mode_answers_400() -> None:
    browser = CoreBrowser(CoreDeployment(idp_options={"strict": True}))
    query = urlencode({"callback": "https://evil.test/_sessionshare/callback", "state": "s" * 43})
    for signed_in in (False, True):
        if signed_in:
            browser.sign_in(LOGIN)
        answer = browser.get(f"{LOGIN}?{query}")
        assert answer.status == 400 and answer.reason == "host_not_allowed", answer
        assert answer.location is None


@pytest.mark.parametrize(
    "query",
    ["callback=" + quote(SHOP + CALLBACK, safe=""),
     "state=" + "s" * 43,
     f"callback={quote(SHOP + CALLBACK, safe='')}&state=short",
     f"callback={quote(SHOP + CALLBACK, safe='')}&state={'s' * 43}&state={'t' * 43}",
     f"callback={quote(SHOP + CALLBACK, safe='')}&callback={quote(BLOG + CALLBACK, safe='')}"
     f"&state={'s' * 43}",
     f"callback={quote(SHOP + CALLBACK, safe='')}&state={'s' * 43}%00",
     "callback=%ff%fe&state=" + "s" * 43],
    ids=["no state", "no callback", "short state", "two states", "two callbacks", "nul state",
         "bad utf-8"],
)
def test_malformed_login_requests_go_to_the_form(query: str) -> None:
    dep = CoreDeployment()
    browser = CoreBrowser(dep)
    browser.sign_in(LOGIN)
    answer = browser.get(f"{LOGIN}?{query}")
    assert answer.passed and answer.location is None, answer
    assert answer.user == "alice"
    assert dep.count("ticket_issued") == 0
    # The control: the same request with a well-formed query hands off.
    good = f"callback={quote(SHOP + CALLBACK, safe='')}&state={'s' * 43}"
    assert browser.get(f"{LOGIN}?{good}").status == 303


def test_authorize_hook_refuses_a_remote() -> None:
    decisions: list[str] = []

    def authorize(session: Session, origin: str) -> bool:
        decisions.append(origin)
        return origin != BLOG or session.get("user") != "bob"

    dep = CoreDeployment(idp_options={"authorize": authorize})
    bob = CoreBrowser(dep)
    assert bob.sign_in_at(SHOP + "/orders", user="bob").user == "bob"
    refused = bob.get(bob.start_login(BLOG + "/x"))
    assert refused.status == 403 and refused.reason == "not_authorized"
    assert refused.location is None
    # Refused while signing in, too: the app's sign-in happens, the hand-off does not.
    carol = CoreBrowser(dep)
    answer = carol.sign_in(carol.start_login(BLOG + "/x"), user="bob")
    assert answer.status == 403 and answer.location is None
    alice = CoreBrowser(dep)
    assert alice.sign_in_at(BLOG + "/x").user == "alice"
    assert decisions.count(BLOG) == 3


# -- several tabs ----------------------------------------------------------------------


def test_two_tabs_sign_in_at_once() -> None:
    browser = CoreBrowser(CoreDeployment())
    tab1 = browser.start_login(SHOP + "/orders?tab=1")
    tab2 = browser.start_login(SHOP + "/read?tab=2")
    browser.get(tab1)
    browser.get(tab2)
    first = browser.sign_in(tab1)
    assert first.location is not None
    back1 = browser.get(first.location)
    assert back1.status == 303 and back1.location == "/orders?tab=1"
    # The second tab posts its own form (already signed in by now) and still gets home.
    second = browser.post(tab2, {"username": "alice", "password": "wonderland"})
    assert second.status == 303 and second.location is not None
    back2 = browser.get(second.location)
    assert back2.status == 303 and back2.location == "/read?tab=2"
    assert browser.get(SHOP + back2.location).user == "alice"


def test_tabs_redirected_in_parallel_keep_separate_state() -> None:
    browser = CoreBrowser(CoreDeployment())
    urls = [browser.start_login(SHOP + f"/orders?tab={i}") for i in range(3)]
    browser.sign_in(urls[0])
    for i, url in enumerate(urls[1:], start=1):
        token_url = browser.get(url).location
        assert token_url is not None
        back = browser.get(token_url)
        assert back.status == 303 and back.location == f"/orders?tab={i}"


# -- API clients, public paths, protect ---------------------------------------------------


@pytest.mark.parametrize(("method", "headers"), [
    ("GET", {"accept": "application/json"}),
    ("GET", {"accept": ""}),
    ("GET", {"accept": "text/html", "fetch_mode": "cors"}),
    ("POST", {"accept": "text/html"}),
], ids=["json", "no accept", "fetch", "post"])
def test_api_clients_get_401_json(method: str, headers: dict[str, str]) -> None:
    answer = CoreBrowser(CoreDeployment()).send(method, SHOP + "/orders", **headers)
    assert answer.status == 401, answer
    assert answer.json == {"error": "not_authenticated", "message": "Sign in first.",
                           "login_url": LOGIN}
    assert answer.location is None and not answer.cookies()


def test_navigation_header_wins_over_accept() -> None:
    browser = CoreBrowser(CoreDeployment())
    assert browser.get(SHOP + "/orders", accept="", fetch_mode="navigate").status == 302


def test_api_clients_get_401_json_end_to_end(dep: Deployment) -> None:
    # The shell reads Accept and Sec-Fetch-Mode into the request the core classifies.
    browser = Browser(dep)
    for headers in ({"Accept": "application/json"}, {"Accept": "text/html",
                                                     "Sec-Fetch-Mode": "cors"}):
        response = browser.get(SHOP + "/orders", headers=headers)
        assert response.status_int == 401 and response.json["error"] == "not_authenticated"
    assert browser.get(SHOP + "/orders", headers={"Sec-Fetch-Mode": "navigate"}
                       ).status_int == 302


def test_public_path_touches_no_store(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    calls: list[str] = []
    original = store.load
    store.load = lambda *a, **k: calls.append("load") or original(*a, **k)  # type: ignore
    response = browser.get(SHOP + "/public")
    assert response.status_int == 200 and response.json["user"] is None
    assert calls == []


# -- store outages -------------------------------------------------------------------------


def test_store_down_gives_503_and_recovers(clock: FakeClock) -> None:
    with RedisServer() as server:
        store = RedisStore.from_url(server.url, socket_timeout=0.5)
        dep = Deployment(store, clock)
        browser = Browser(dep)
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
        server.stop()
        for url in [SHOP + "/orders", BLOG + "/x", IDP + "/", LOGIN + "?callback="
                    + quote(SHOP + CALLBACK, safe="") + "&state=" + "s" * 43]:
            response = browser.get(url)
            assert response.status_int == 503, (url, response)
            assert response.headers["Retry-After"] == "2"
            assert reason_of(response) == "store_unavailable"
        anonymous = Browser(dep)
        assert anonymous.get(IDP + "/").status_int == 200  # no cookie: no store needed
        assert anonymous.post(LOGIN, {"username": "alice", "password": "wonderland"}
                              ).status_int == 503  # signing in must write: fail closed
        server.start()  # empty again: sessions are gone, but the objects recover
        assert browser.get(SHOP + "/orders").status_int == 302
        assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
        store.close()


# -- cost ----------------------------------------------------------------------------------


def test_handoff_for_a_signed_in_user_costs_at_most_4_round_trips(redis_url: str,
                                                                  clock: FakeClock) -> None:
    client, counts = counting_client(redis_url)
    dep = Deployment(RedisStore(client), clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    login_url = browser.start_login(BLOG + "/x")  # no store access: B has no session cookie
    before = counts["round_trips"]
    from_idp = browser.get(login_url)
    back = browser.get(from_idp.location)
    assert back.status_int == 303
    assert counts["round_trips"] - before <= 4
    assert browser.get(BLOG + back.location).json["user"] == "alice"


# -- logs ----------------------------------------------------------------------------------


def test_logs_hold_no_secret(dep: Deployment, store: SessionStore,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionshare")
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    _, token = _split(url)
    browser.get(url)
    browser.get(url)  # a replay (state already spent here): logged as token_rejected
    browser.get(SHOP + "/_sessionshare/callback?token=" + token[:-3])
    browser.post(SHOP + "/_sessionshare/logout")
    secrets = [token, dep.key, *(v for app in browser.apps.values() for v in app.cookies.values())]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ticket_issued" in text and "token_rejected reason=bad_state" in text
    for secret in secrets:
        assert secret[:16] not in text


def test_the_suite_wide_log_check_would_catch_a_leak() -> None:
    from conftest import _SECRET_SHAPED

    dep = CoreDeployment()
    browser = CoreBrowser(dep)
    _, token = _split(browser.token_url_for(SHOP + "/orders"))
    sid = browser.cookie("id.test")
    assert sid is not None
    for secret in (token, sid, dep.key):
        assert _SECRET_SHAPED.search(f"event value={secret} more")
    for harmless in ("ticket_issued audience=http://shop.test", "fingerprint=3f9a-c21b-77e0",
                     "token_rejected reason=wrong_audience"):
        assert not _SECRET_SHAPED.search(harmless)
