"""The whole hand-off between one IdP and two remotes (DESIGN section 1).

Runs against MemoryStore and real Redis (the ``store`` fixture), with bare
WSGI apps under WebTest.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote, urlencode

import flow
import pytest
import webtest
from conftest import FakeClock, is_dead, live_session_keys
from flow import BLOG, CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment, reason_of
from servers import RedisServer, counting_client
from test_crypto import ALLOW, REJECTED

from sessionshare import IdpAuthMiddleware, MemoryStore, RedisStore, Session, SessionStore


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


def test_expired_token(dep: Deployment, store: SessionStore, clock: FakeClock) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    before = _snapshot(store, dep)
    clock.advance(60 + 5 + 1)  # lifetime plus clock leeway, and one second
    _assert_refused(browser.get(url), "expired")
    assert _snapshot(store, dep) == before


def test_token_issued_in_the_future(store: SessionStore, clock: FakeClock, shell: str) -> None:
    ahead = FakeClock(clock.now + 30)
    dep = Deployment(store, clock, shell=shell)
    # An IdP whose clock runs 30 s ahead.
    fast_idp = Deployment(store, ahead, key=dep.key, shell=shell)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.apps["id.test"] = Browser(fast_idp).apps["id.test"]
    url = browser.sign_in(login_url).location
    _assert_refused(browser.get(url), "not_yet_valid")


def test_replayed_token_sequentially(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    state_cookies = {k: v for k, v in browser.apps["shop.test"].cookies.items()}
    assert browser.get(url).status_int == 303
    # An attacker who captured both the token and the state cookie replays them.
    attacker = Browser(dep)
    for name, value in state_cookies.items():
        attacker.apps["shop.test"].set_cookie(name, value)
    before = _snapshot(store, dep)
    _assert_refused(attacker.get(url), "replayed")
    assert _snapshot(store, dep) == before


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


@pytest.mark.parametrize("variant", ["missing", "foreign", "tampered"])
def test_state_cookie_checks(dep: Deployment, store: SessionStore, clock: FakeClock,
                             variant: str) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    jar = browser.apps["shop.test"].cookies
    (name,) = [k for k in jar if k.startswith("sessionshare_state")]
    value = jar[name]
    attacker = Browser(dep)
    if variant == "foreign":
        other = Browser(dep)
        other.start_login(SHOP + "/orders")  # a valid state cookie of another login
        others = other.apps["shop.test"].cookies
        (other_name,) = [k for k in others if k.startswith("sessionshare_")]
        attacker.apps["shop.test"].set_cookie(name, others[other_name])
    elif variant == "tampered":
        tail = "AA" if value[-2:] != "AA" else "BB"
        attacker.apps["shop.test"].set_cookie(name, value[:-2] + tail)
    before = _snapshot(store, dep)
    _assert_refused(attacker.get(url), "bad_state")
    assert _snapshot(store, dep) == before


def test_state_cookie_expires(dep: Deployment, store: SessionStore, clock: FakeClock) -> None:
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")  # the state cookie is set now...
    clock.advance(dep.shop.side.state_ttl + 1)
    url = browser.sign_in(login_url).location  # ...the token only now: fresh
    before = _snapshot(store, dep)
    _assert_refused(browser.get(url), "bad_state")
    assert _snapshot(store, dep) == before
    # The control: the same steps inside the state's lifetime succeed.
    login_url = browser.start_login(SHOP + "/orders")
    clock.advance(dep.shop.side.state_ttl - 60)
    assert browser.get(browser.get(login_url).location).status_int == 303


def test_token_for_a_presented_at_b(dep: Deployment) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    _, token = _split(url)
    browser.start_login(BLOG + "/x")  # B has a state cookie of its own
    _assert_refused(browser.get(BLOG + "/_sessionshare/callback?token=" + token), "wrong_audience")


def test_wrong_issuer(store: SessionStore, clock: FakeClock, shell: str) -> None:
    dep = Deployment(store, clock, shell=shell)
    rogue = IdpAuthMiddleware(
        flow.idp_app, store=store, key=dep.key, app_url="http://rogue-id.test",
        known_remote_hosts=[SHOP], cookie_secure=False, clock=clock,
    )
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.apps["id.test"] = webtest.TestApp(rogue, extra_environ={"HTTP_HOST": "id.test"})
    url = browser.sign_in(login_url).location
    _assert_refused(browser.get(url), "wrong_issuer")


def test_another_sync_key(store: SessionStore, clock: FakeClock, shell: str) -> None:
    dep = Deployment(store, clock, shell=shell)
    other = Deployment(store, clock, shell=shell)  # same store and hosts, another key
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.apps["id.test"] = Browser(other).apps["id.test"]
    url = browser.sign_in(login_url).location
    _assert_refused(browser.get(url), "unknown_key")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:20] + ("A" if t[20] != "A" else "B") + t[21:], "bad_seal"),
        (lambda t: t[:-8], "bad_seal"),  # whole base64 quanta: the seal catches it
        (lambda t: t[:30], "malformed"),
        (lambda t: t + "A" * 4200, "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: t + "%00", "malformed"),
    ],
    ids=["tampered", "truncated", "cut short", "oversized 4 KB", "empty", "nul"],
)
def test_mangled_tokens(dep: Deployment, store: SessionStore, mangle: Any, reason: str) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    before = _snapshot(store, dep)
    response = browser.get(f"{base}?token={mangle(token)}")
    _assert_refused(response, reason)
    assert _snapshot(store, dep) == before
    assert browser.get(f"{base}?token={token}").status_int == 303  # the real one still works


def test_duplicated_token_parameter_and_post(dep: Deployment) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    _assert_refused(browser.get(f"{base}?token={token}&token={token}"), "malformed")
    _assert_refused(browser.get(f"{base}?x=1"), "malformed")
    _assert_refused(browser.post(base, {"token": token}), "bad_method")
    _assert_refused(browser.post(f"{base}?token={token}"), "bad_method")
    assert browser.get(f"{base}?token={token}").status_int == 303


def test_session_logged_out_between_issue_and_redeem(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.post(IDP + "/_sessionshare/logout").status_int == 303
    _assert_refused(browser.get(url), "session_gone")
    assert _snapshot(store, dep) == {}


def test_session_no_longer_signed_in(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    (key,) = _snapshot(store, dep)
    store.save(key, changed={}, deleted=["user"], ttl=600)  # the IdP app dropped the user
    _assert_refused(browser.get(url), "not_authenticated")
    assert browser.cookie("shop.test") is None


def test_json_errors_for_api_clients(dep: Deployment) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    response = browser.get(f"{base}?token=x", headers={"Accept": "application/json"})
    assert response.status_int == 403 and response.json["error"] == "malformed"


# -- login CSRF and fixation ---------------------------------------------------------


def test_login_csrf_attackers_token_in_victims_browser(
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


def test_idp_session_id_rotates_at_login(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the pending hand-off creates the anonymous IdP session
    anonymous = browser.cookie("id.test")
    assert anonymous is not None
    anonymous_key = browser.store_key("id.test")
    assert store.load(anonymous_key, 60) is not None
    browser.sign_in(login_url)
    signed_in = browser.cookie("id.test")
    assert signed_in is not None and signed_in != anonymous
    assert is_dead(store.load(anonymous_key, 60))
    # A planted copy of the old id gets nothing.
    stale = Browser(dep)
    stale.apps["id.test"].set_cookie("sessionshare", anonymous)
    assert stale.get(IDP + "/").text == "idp home user=None"


# -- the allow-list through the real IdP ------------------------------------------------


@pytest.fixture
def table_dep(store: SessionStore, clock: FakeClock, shell: str) -> Deployment:
    return Deployment(store, clock, idp_options={"known_remote_hosts": ALLOW}, shell=shell)


#: One of each reason test_crypto's table refuses for (the whole table runs against the
#: AllowList there, and every attack of the security corpus through the IdP's core).
SAMPLE = {}
for _url, _reason in REJECTED.items():
    SAMPLE.setdefault(_reason, _url)


def test_rejected_callbacks_never_redirect(table_dep: Deployment) -> None:
    assert len(SAMPLE) >= 5, SAMPLE
    for callback in SAMPLE.values():
        query = urlencode({"callback": callback, "state": "s" * 43})
        signed_in = Browser(table_dep)
        signed_in.sign_in(LOGIN)  # no hand-off pending: a plain sign-in at the IdP
        response = signed_in.get(f"{LOGIN}?{query}")
        assert response.status_int == 200 and "Location" not in response.headers, callback
        assert "login form" in response.text

        pending = Browser(table_dep)
        page = pending.get(f"{LOGIN}?{query}")
        assert page.status_int == 200 and "Location" not in page.headers, callback
        answer = pending.post(f"{LOGIN}?{query}", {"username": "alice", "password": "wonderland"})
        assert answer.status_int == 200 and "Location" not in answer.headers, callback


def test_strict_mode_answers_400(store: SessionStore, clock: FakeClock, shell: str) -> None:
    dep = Deployment(store, clock, idp_options={"strict": True}, shell=shell)
    browser = Browser(dep)
    query = urlencode({"callback": "https://evil.test/_sessionshare/callback", "state": "s" * 43})
    response = browser.get(f"{LOGIN}?{query}")
    assert response.status_int == 400 and reason_of(response) == "host_not_allowed"
    assert "Location" not in response.headers


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
def test_malformed_login_requests_go_to_the_form(dep: Deployment, query: str) -> None:
    browser = Browser(dep)
    browser.sign_in(LOGIN)
    response = browser.get(f"{LOGIN}?{query}")
    assert response.status_int == 200 and "Location" not in response.headers


def test_authorize_hook_refuses_a_remote(store: SessionStore, clock: FakeClock, shell: str) -> None:
    decisions: list[str] = []

    def authorize(session: Session, origin: str) -> bool:
        decisions.append(origin)
        return origin != BLOG or session.get("user") != "bob"

    dep = Deployment(store, clock, idp_options={"authorize": authorize}, shell=shell)
    bob = Browser(dep)
    assert bob.sign_in_at(SHOP + "/orders", user="bob").json["user"] == "bob"
    refused = bob.get(bob.start_login(BLOG + "/x"))
    assert refused.status_int == 403 and reason_of(refused) == "not_authorized"
    assert "Location" not in refused.headers
    # Refused while signing in, too: the app's sign-in happens, the hand-off does not.
    carol = Browser(dep)
    answer = carol.sign_in(carol.start_login(BLOG + "/x"), user="bob")
    assert answer.status_int == 403 and "Location" not in answer.headers
    alice = Browser(dep)
    assert alice.sign_in_at(BLOG + "/x").json["user"] == "alice"
    assert decisions.count(BLOG) == 3


# -- several tabs ----------------------------------------------------------------------


def test_two_tabs_sign_in_at_once(dep: Deployment) -> None:
    browser = Browser(dep)
    tab1 = browser.start_login(SHOP + "/orders?tab=1")
    tab2 = browser.start_login(SHOP + "/read?tab=2")
    browser.get(tab1)
    browser.get(tab2)
    first = browser.sign_in(tab1)
    back1 = browser.get(first.location)
    assert back1.status_int == 303 and back1.location == "/orders?tab=1"
    # The second tab posts its own form (already signed in by now) and still gets home.
    second = browser.post(tab2, {"username": "alice", "password": "wonderland"})
    assert second.status_int == 303
    back2 = browser.get(second.location)
    assert back2.status_int == 303 and back2.location == "/read?tab=2"
    assert browser.get(SHOP + back2.location).json["user"] == "alice"


def test_tabs_redirected_in_parallel_keep_separate_state(dep: Deployment) -> None:
    browser = Browser(dep)
    urls = [browser.start_login(SHOP + f"/orders?tab={i}") for i in range(3)]
    browser.sign_in(urls[0])
    for i, url in enumerate(urls):
        back = browser.get(browser.get(url).location) if i else None
        if back is None:
            continue
        assert back.location == f"/orders?tab={i}"


# -- API clients, public paths, protect ---------------------------------------------------


def test_api_clients_get_401_json(dep: Deployment) -> None:
    browser = Browser(dep)
    for headers, method in [({"Accept": "application/json"}, "get"), ({}, "get"),
                            ({"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, "get"),
                            ({"Accept": "text/html"}, "post")]:
        response = getattr(browser, method)(SHOP + "/orders", headers=headers)
        assert response.status_int == 401, (headers, method)
        assert response.json == {"error": "not_authenticated", "message": "Sign in first.",
                                 "login_url": LOGIN}
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers


def test_navigation_header_wins_over_accept(dep: Deployment) -> None:
    response = Browser(dep).get(SHOP + "/orders", headers={"Sec-Fetch-Mode": "navigate"})
    assert response.status_int == 302


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


def test_return_path_is_kept_relative(dep: Deployment) -> None:
    browser = Browser(dep)
    page = browser.sign_in_at(BLOG + "//evil.test/orders")
    # PATH_INFO "//evil.test/orders" is not a safe return path: back to "/".
    assert page.json["path"] == "/"


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


def test_the_suite_wide_log_check_would_catch_a_leak(dep: Deployment) -> None:
    from conftest import _SECRET_SHAPED

    browser = Browser(dep)
    _, token = _split(browser.token_url_for(SHOP + "/orders"))
    sid = browser.cookie("id.test")
    assert sid is not None
    for secret in (token, sid, dep.key):
        assert _SECRET_SHAPED.search(f"event value={secret} more")
    for harmless in ("ticket_issued audience=http://shop.test", "fingerprint=3f9a-c21b-77e0",
                     "token_rejected reason=wrong_audience"):
        assert not _SECRET_SHAPED.search(harmless)
