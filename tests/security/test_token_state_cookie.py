"""Token, state and cookie manipulations, grouped by the attack they replay.

Each case runs the flow up to the IdP's redirect back (the browser holds a
fresh token URL and its state cookie), then changes one thing an attacker
controls and presents it to the remote's callback. The answer must be a 403
with the expected reason code, no ``Location``, no cookie, no change to any
stored session, and the browser must not be signed in afterwards.

Where the token itself was changed, the genuine token is redeemed afterwards
and must work: a forged or foreign token never reaches the store, so it
cannot burn the ticket of the browser it was taken from (and the test
proves it could pass). Where the *state* was wrong, the genuine token must
be spent instead: whoever holds the state it was issued for cannot use it
later (login-URL injection, see test_regressions.py).

Where the decision is made: every case runs through the core's sides driven
by hand on a memory store (tests/coreflow.py: the request a shell would
build, the core's store steps, the reply), and the token table also against
the pure checks (the query parser and :func:`open_token`). The wiring -- a
shell reading the ``Cookie`` header and the query, sending the reply -- is
shown once per flow, per shell and store, through the real middlewares
(``test_*_end_to_end``).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import webtest
from conftest import FakeClock, is_dead
from coreflow import Answer, CoreDeployment, snapshot
from coreflow import Browser as CoreBrowser
from flow import BLOG, IDP, SHOP, Browser, Deployment, reason_of

from sessionshare import MemoryStore, RedisStore, SessionStore, SyncKey
from sessionshare.core.request import Request
from sessionshare.crypto import open_token
from sessionshare.errors import TokenRejected

from .corpus import ALLOWED
from .deploy import Events, remote_login_prefix, security_deployment
from .harness import call, environ_for

CB = "/_sessionshare/callback"


# -- helpers ---------------------------------------------------------------------------------


def _split(url: str) -> tuple[str, str]:
    base, _, token = url.partition("?token=")
    return base, token


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _flip_byte(index: int) -> Callable[[str], str]:
    def flip(token: str) -> str:
        raw = _raw(token)
        raw[index] ^= 0x01
        return _encode(bytes(raw))
    return flip


def _store_snapshot(store: SessionStore, *, tickets: bool = True) -> dict[str, object]:
    """Every stored session (and ticket) of a real store, TTLs aside."""
    if isinstance(store, RedisStore):
        out: dict[str, object] = {}
        pattern = "sessionshare:*" if tickets else "sessionshare:s:*"
        for key in sorted(store.client.keys(pattern)):
            kind = store.client.type(key)
            if kind == b"string":
                out[key.decode()] = store.client.get(key)
            elif kind == b"hash":
                out[key.decode()] = store.client.hgetall(key)
            else:
                out[key.decode()] = kind
        return out
    assert isinstance(store, MemoryStore)
    return snapshot(store, tickets=tickets)


def _assert_refused(answer: Answer, reason: str) -> None:
    assert answer.status == 403, answer
    assert answer.reason == reason, answer.body
    assert answer.location is None and not answer.cookies(), answer
    assert answer.header("Cache-Control") == "no-store"


def _assert_refused_served(response: webtest.TestResponse, reason: str) -> None:
    assert response.status_int == 403, response
    assert reason_of(response) == reason, response.text
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def _assert_signed_out_at(browser: CoreBrowser | Browser, origin: str) -> None:
    page = browser.get(origin + ("/orders" if origin == SHOP else "/x"))
    assert page.status_int == 302 and page.location.startswith(remote_login_prefix(origin))


def _core(**idp_options: object) -> CoreDeployment:
    """The security suite's deployment (its wider allow-list), as the core's sides."""
    return CoreDeployment(idp_options={"known_remote_hosts": ALLOWED, **idp_options})


# -- token manipulations: one table, one flow ----------------------------------------------


@dataclass(frozen=True)
class Mangle:
    group: str
    name: str
    change: Callable[[str], str]
    reason: str


# Byte offsets in the sealed token: version 0, key fingerprint 1-6, nonce 7-18,
# then the AES-GCM ciphertext, the last 16 bytes being its tag.
TOKEN_MANGLES = [
    # Integrity of the sealed token (AEAD; CWE-345 insufficient verification of
    # data authenticity): any changed bit anywhere is one uniform rejection.
    Mangle("aead-integrity", "version byte", _flip_byte(0), "unsupported_version"),
    Mangle("aead-integrity", "key fingerprint", _flip_byte(3), "unknown_key"),
    Mangle("aead-integrity", "nonce", _flip_byte(10), "bad_seal"),
    Mangle("aead-integrity", "first ciphertext byte", _flip_byte(19), "bad_seal"),
    Mangle("aead-integrity", "issued-at inside the seal", _flip_byte(26), "bad_seal"),
    Mangle("aead-integrity", "audience digest inside", _flip_byte(19 + 8 + 3), "bad_seal"),
    Mangle("aead-integrity", "ticket inside", _flip_byte(19 + 40 + 5), "bad_seal"),
    Mangle("aead-integrity", "tag", _flip_byte(-1), "bad_seal"),
    Mangle("aead-integrity", "truncated by one byte", lambda t: _encode(bytes(_raw(t)[:-1])),
           "bad_seal"),
    Mangle("aead-integrity", "extended by one byte", lambda t: _encode(bytes(_raw(t)) + b"\0"),
           "bad_seal"),
    Mangle("aead-integrity", "second half reversed",
           lambda t: t[: len(t) // 2] + t[len(t) // 2:][::-1], "bad_seal"),
    Mangle("aead-integrity", "whole base64 quanta cut", lambda t: t[:-8], "bad_seal"),
    # One spelling per token (canonical-encoding class; CVE-2022-0391-style
    # parser differentials): anything but bare URL-safe base64 is malformed.
    Mangle("token-encoding", "padding added", lambda t: t + "==", "malformed"),
    Mangle("token-encoding", "standard base64 alphabet",
           lambda t: base64.b64encode(bytes(_raw(t))).decode().rstrip("=") + "+/", "malformed"),
    Mangle("token-encoding", "leading space", lambda t: "%20" + t, "malformed"),
    Mangle("token-encoding", "trailing newline", lambda t: t + "%0A", "malformed"),
    Mangle("token-encoding", "percent-encoded NUL", lambda t: t + "%00", "malformed"),
    Mangle("token-encoding", "non-ASCII", lambda t: t[:-2] + "%C3%A9", "malformed"),
    Mangle("token-encoding", "invalid UTF-8", lambda t: t + "%FF", "malformed"),
    Mangle("token-encoding", "cut to 30 characters", lambda t: t[:30], "malformed"),
    Mangle("token-encoding", "oversized", lambda t: t + "A" * 600, "malformed"),
    Mangle("token-encoding", "oversized 4 KB", lambda t: t + "A" * 4200, "malformed"),
    Mangle("token-encoding", "empty", lambda t: "", "malformed"),
]


@pytest.mark.parametrize("mangle", TOKEN_MANGLES, ids=lambda m: f"{m.group}:{m.name}")
def test_the_pure_checks_refuse_each_mangled_token(mangle: Mangle) -> None:
    # What the callback does with the token parameter, by the pure parts alone: the
    # query parser (a value that does not decode is no parameter), then open_token.
    dep = _core()
    url = CoreBrowser(dep).token_url_for(SHOP + "/orders")
    _, token = _split(url)
    changed = mangle.change(token)
    assert changed != token
    params = Request("GET", CB, query=f"token={changed}").params
    if params is None:
        assert mangle.reason == "malformed"
        return
    (value,) = params["token"]
    side = dep.shop
    with pytest.raises(TokenRejected) as refused:
        open_token(side.key, value, audience=SHOP, issuer=IDP, ttl=side.token_ttl,
                   now=dep.clock())
    assert refused.value.reason == mangle.reason
    # The control: the genuine token opens, by the same call.
    open_token(side.key, token, audience=SHOP, issuer=IDP, ttl=side.token_ttl, now=dep.clock())


@pytest.mark.parametrize("mangle", TOKEN_MANGLES, ids=lambda m: f"{m.group}:{m.name}")
def test_mangled_token(mangle: Mangle) -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    changed = mangle.change(token)
    before = snapshot(dep.store)
    _assert_refused(browser.get(f"{base}?token={changed}"), mangle.reason)
    assert snapshot(dep.store) == before
    _assert_signed_out_at(browser, SHOP)
    assert dep.count("ticket_redeemed") == 0
    # The genuine token was not burnt by the failed attempt.
    assert browser.get(f"{base}?token={token}").status == 303
    assert browser.get(SHOP + "/orders").user == "alice"


def test_json_errors_for_api_clients() -> None:
    browser = CoreBrowser(_core())
    base, _ = _split(browser.token_url_for(SHOP + "/orders"))
    answer = browser.get(f"{base}?token=x", accept="application/json")
    assert answer.status == 403 and answer.json["error"] == "malformed"


def test_mangled_tokens_end_to_end(dep: Deployment, store: SessionStore, events: Events) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    for mangle in (TOKEN_MANGLES[2], TOKEN_MANGLES[16]):  # a flipped bit, a %00 in the query
        before = _store_snapshot(store)
        _assert_refused_served(browser.get(f"{base}?token={mangle.change(token)}"),
                               mangle.reason)
        assert _store_snapshot(store) == before
    json = browser.get(f"{base}?token=x", headers={"Accept": "application/json"})
    assert json.status_int == 403 and json.json["error"] == "malformed"
    _assert_signed_out_at(browser, SHOP)
    assert events.count("ticket_redeemed") == 0
    assert browser.get(f"{base}?token={token}").status_int == 303
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


# -- binding: audience, issuer, key (OAuth mix-up / confused deputy, RFC 9700 4.4) ------------


def test_token_for_shop_presented_at_blog() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    browser.start_login(BLOG + "/x")  # blog holds a state cookie of its own
    before = snapshot(dep.store)
    _assert_refused(browser.get(f"{BLOG}{CB}?token={token}"), "wrong_audience")
    assert snapshot(dep.store) == before
    _assert_signed_out_at(browser, BLOG)
    assert browser.get(f"{base}?token={token}").status == 303


def test_token_sealed_with_another_sync_key() -> None:
    # Key mismatch: an app with another key (a stale deployment, or an attacker's IdP).
    dep = _core()
    other = CoreDeployment(dep.clock, store=dep.store,
                           idp_options={"known_remote_hosts": ALLOWED})
    assert SyncKey.parse(other.key).fingerprint != SyncKey.parse(dep.key).fingerprint
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.sides[IDP] = other.idp
    url = browser.sign_in(login_url).location
    assert url is not None
    _assert_refused(browser.get(url), "unknown_key")
    _assert_signed_out_at(browser, SHOP)


def test_token_from_a_rogue_idp_with_the_right_key() -> None:
    dep = _core()
    rogue = CoreDeployment(dep.clock, key=dep.key, store=dep.store,
                           idp_url="http://id.test.evil.com")
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.sides[IDP] = rogue.idp
    url = browser.sign_in(login_url).location
    assert url is not None
    _assert_refused(browser.get(url), "wrong_issuer")
    _assert_signed_out_at(browser, SHOP)


def test_token_for_the_https_twin_of_the_remote() -> None:
    # The audience is the full origin: a token minted for https://shop.test is
    # refused by http://shop.test (and the other way round).
    dep = _core(known_remote_hosts=["https://shop.test", "http://shop.test"])
    browser = CoreBrowser(dep)
    browser.start_login(SHOP + "/orders")
    state = dep.shop.state_signer.loads(browser.state_cookie()[1])[0]
    browser.sign_in(f"{IDP}/login")
    answer = browser.get(f"{IDP}/login?callback=https%3A%2F%2Fshop.test{CB.replace('/', '%2F')}"
                         f"&state={state}")
    assert answer.status == 303 and answer.location
    assert answer.location.startswith("https://shop.test" + CB)
    _, token = _split(answer.location)
    _assert_refused(browser.get(f"{SHOP}{CB}?token={token}"), "wrong_audience")


# -- lifetime --------------------------------------------------------------------------------


def test_expired_token() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    dep.clock.advance(60 + 5 + 1)  # lifetime plus clock leeway, and one second
    before = snapshot(dep.store)
    _assert_refused(browser.get(url), "expired")
    assert snapshot(dep.store) == before


def test_token_from_the_future() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    dep.clock.advance(-(5 + 1))  # the remote's clock is behind
    _assert_refused(browser.get(url), "not_yet_valid")


def test_token_issued_by_an_idp_whose_clock_runs_ahead() -> None:
    dep = _core()
    ahead = CoreDeployment(FakeClock(dep.clock.now + 30), key=dep.key, store=dep.store)
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.sides[IDP] = ahead.idp
    url = browser.sign_in(login_url).location
    assert url is not None
    _assert_refused(browser.get(url), "not_yet_valid")


# -- replay (the PHP bundle's tokens could be replayed) ---------------------------------------


def test_replay_with_a_stolen_state_cookie() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    name, value = browser.state_cookie()
    assert browser.get(url).status == 303
    attacker = CoreBrowser(dep)
    attacker.set_cookie(SHOP, name, value, path=CB)
    before = snapshot(dep.store)
    _assert_refused(attacker.get(url), "replayed")
    assert snapshot(dep.store) == before
    _assert_signed_out_at(attacker, SHOP)


def test_replay_in_the_same_browser() -> None:
    browser = CoreBrowser(_core())
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(url).status == 303
    # The state cookie was cleared by the first redemption.
    _assert_refused(browser.get(url), "bad_state")


def test_parallel_replay_has_one_winner(dep: Deployment) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    cookie = "; ".join(f"{k}={v}" for k, v in browser.apps["shop.test"].cookies.items()
                       if k.startswith("sessionshare_state"))
    environ = environ_for("GET", CB, f"token={token}", cookie=cookie)
    replies: list[int] = []
    barrier = threading.Barrier(8)

    def redeem() -> None:
        barrier.wait()
        replies.append(call(dep.shop, dict(environ)).status)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(replies) == [303] + [403] * 7


def test_token_after_logout() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.post(IDP + "/_sessionshare/logout").status == 303
    _assert_refused(browser.get(url), "session_gone")
    assert [key for key, record in dep.store.sessions().items() if not is_dead(record)] == []
    _assert_signed_out_at(browser, SHOP)


def test_token_of_a_session_no_longer_signed_in() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    (key,) = [key for key, record in dep.store.sessions().items() if not is_dead(record)]
    dep.store.save(key, changed={}, deleted=["user"], ttl=600)  # the IdP app dropped the user
    _assert_refused(browser.get(url), "not_authenticated")
    assert browser.cookie("shop.test") is None


# -- state and login CSRF (RFC 6749 section 10.12, CWE-352) ------------------------------------


def _forge_state(browser: CoreBrowser, dep: CoreDeployment, variant: str) -> str | None:
    """Change this browser's state cookie at the shop; a raw ``Cookie`` header to send
    instead of the jar's, where the variant needs one."""
    name, value = browser.state_cookie()
    browser.jar(SHOP).clear()  # the shop jar held only this login's cookies
    forged: str | None
    if variant == "missing":
        forged = None
    elif variant == "another login's cookie":
        other = CoreBrowser(dep)
        other.start_login(SHOP + "/orders")
        forged = other.state_cookie()[1]
    elif variant == "signature tampered":
        forged = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    elif variant == "payload swapped, signature kept":
        payload = base64.urlsafe_b64encode(b'["' + b"A" * 43 + b'","/"]').decode().rstrip("=")
        forged = payload + "." + value.partition(".")[2]
    elif variant == "signed with another key":
        state = dep.shop.state_signer.loads(value)[0]
        other_key = SyncKey.parse(SyncKey.generate())
        forged = other_key.serializer("state-cookie", salt="sessionshare.state").dumps([state, "/"])
    elif variant == "signed for another purpose":
        state = dep.shop.state_signer.loads(value)[0]
        token_signer = dep.shop.key.serializer("token", salt="sessionshare.state")
        forged = token_signer.dumps([state, "/"])
    elif variant == "garbage":
        forged = "not-a-signed-value"
    elif variant == "forged copy first":
        # Two cookies of one name (one planted from a sibling host): the first one counts.
        return f"{name}={value[:-4]}AAAA; {name}={value}"
    else:  # "renamed to another state"
        name, forged = "sessionshare_state-AAAAAAAAAAAA", value
    if forged is not None:
        browser.set_cookie(SHOP, name, forged, path=CB)
    return None


STATE_VARIANTS = [
    "missing",
    "another login's cookie",
    "signature tampered",
    "payload swapped, signature kept",
    "signed with another key",
    "signed for another purpose",
    "garbage",
    "forged copy first",
    "renamed to another state",
]


@pytest.mark.parametrize("variant", STATE_VARIANTS)
def test_state_cookie_manipulation(variant: str) -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    genuine = browser.state_cookie()
    cookie = _forge_state(browser, dep, variant)
    before = snapshot(dep.store, tickets=False)
    _assert_refused(browser.get(url, cookie=cookie), "bad_state")
    assert snapshot(dep.store, tickets=False) == before
    _assert_signed_out_at(browser, SHOP)
    # A genuine token refused for its state is spent: whoever holds the right state
    # cookie cannot redeem it afterwards (login-URL injection, see test_regressions.py).
    browser.jar(SHOP).clear()
    browser.set_cookie(SHOP, *genuine, path=CB)
    _assert_refused(browser.get(url), "replayed")


def test_state_cookie_manipulation_end_to_end(dep: Deployment, store: SessionStore) -> None:
    # Through a shell: the Cookie header as it reads it -- a tampered value, and two
    # cookies of one name, the forged one first.
    for variant in ("signature tampered", "forged copy first"):
        browser = Browser(dep)
        url = browser.token_url_for(SHOP + "/orders")
        app = browser.apps["shop.test"]
        (name,) = [k for k in app.cookies if k.startswith("sessionshare_state")]
        value = app.cookies[name]
        app.cookiejar.clear()
        if variant == "forged copy first":
            app.extra_environ["HTTP_COOKIE"] = f"{name}={value[:-4]}AAAA; {name}={value}"
        else:
            app.set_cookie(name, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        before = _store_snapshot(store, tickets=False)
        _assert_refused_served(browser.get(url), "bad_state")
        assert _store_snapshot(store, tickets=False) == before
        app.extra_environ.pop("HTTP_COOKIE", None)
        _assert_signed_out_at(browser, SHOP)
        app.cookiejar.clear()
        app.set_cookie(name, value)
        _assert_refused_served(browser.get(url), "replayed")


def test_expired_state_cookie() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")  # the state cookie is set now...
    dep.clock.advance(dep.shop.state_ttl + 1)
    url = browser.sign_in(login_url).location  # ...the token only now: fresh
    assert url is not None
    before = snapshot(dep.store, tickets=False)
    _assert_refused(browser.get(url), "bad_state")
    assert snapshot(dep.store, tickets=False) == before
    # The control: the same steps inside the state's lifetime succeed.
    login_url = browser.start_login(SHOP + "/orders")
    dep.clock.advance(dep.shop.state_ttl - 60)
    back = browser.get(login_url).location
    assert back is not None and browser.get(back).status == 303


def test_login_csrf_attackers_token_in_victims_browser() -> None:
    dep = _core()
    victim = CoreBrowser(dep)
    assert victim.sign_in_at(SHOP + "/orders").user == "alice"
    victim_cookie = victim.cookie("shop.test")
    attacker = CoreBrowser(dep)
    # The attacker runs a login of their own and stops before redeeming the token...
    url = attacker.token_url_for(SHOP + "/orders", user="bob")
    before = snapshot(dep.store, tickets=False)
    # ...then makes the victim's browser open it (a link, an img, a redirect).
    _assert_refused(victim.get(url), "bad_state")
    assert snapshot(dep.store, tickets=False) == before
    assert victim.cookie("shop.test") == victim_cookie
    assert victim.get(SHOP + "/orders").user == "alice"
    _assert_refused(attacker.get(url), "replayed")  # and the token is spent


# -- method and parameters (HTTP parameter pollution, OWASP WSTG-INPV-04) ----------------------

SHAPES = [
    ("POST", "token={t}", "bad_method"),
    ("HEAD", "token={t}", "bad_method"),
    ("PUT", "token={t}", "bad_method"),
    ("GET", "token={t}&token={t}", "malformed"),
    ("GET", "", "malformed"),
    ("GET", "x=1", "malformed"),
    ("GET", "tokens={t}", "malformed"),
    ("GET", "token={t}&" + "x=1&" * 70, "malformed"),
    ("GET", "token={t}&pad=" + "A" * 5000, "malformed"),
]


@pytest.mark.parametrize(
    ("method", "query", "reason"), SHAPES,
    ids=["POST", "HEAD", "PUT", "duplicated", "missing", "another parameter", "misnamed",
         "too many fields", "oversized query"],
)
def test_callback_request_shape(method: str, query: str, reason: str) -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    before = snapshot(dep.store)
    url = f"{base}?{query.format(t=token)}" if query else base
    _assert_refused(browser.send(method, url), reason)
    assert snapshot(dep.store) == before
    assert browser.get(f"{base}?token={token}").status == 303


def test_callback_request_shape_end_to_end(dep: Deployment) -> None:
    # A shell answers HEAD without the body, and reads a form POST's body not at all.
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    app = browser.apps["shop.test"]
    for method in ("HEAD", "POST"):
        response = app.request(f"{CB}?token={token}", method=method,
                               headers={"Accept": "text/html"}, status="*")
        assert response.status_int == 403 and "Location" not in response.headers
        assert "Set-Cookie" not in response.headers
        if method != "HEAD":
            assert reason_of(response) == "bad_method"
    _assert_refused_served(browser.post(base, {"token": token}), "bad_method")
    _assert_refused_served(browser.get(f"{base}?token={token}&token={token}"), "malformed")
    assert browser.get(f"{base}?token={token}").status_int == 303


# -- session cookies and fixation (CWE-384) ---------------------------------------------------


def test_planted_session_id_dies_at_login() -> None:
    dep = _core()
    attacker = CoreBrowser(dep)
    attacker.get(attacker.start_login(SHOP + "/orders"))  # an anonymous IdP session exists
    planted = attacker.cookie("id.test")
    assert planted is not None
    victim = CoreBrowser(dep)
    victim.set_cookie(IDP, "sessionshare", planted)
    login_url = victim.start_login(SHOP + "/orders")
    answer = victim.sign_in(login_url)
    assert answer.status == 303
    assert victim.cookie("id.test") not in (None, planted)
    # The planted id is dead: the attacker's browser is not signed in anywhere.
    at_idp = attacker.get(IDP + "/")
    assert at_idp.passed and at_idp.user is None


FORGED_COOKIES = [
    "sessionshare=" + "A" * 43,
    "sessionshare=" + "A" * 42,
    "sessionshare=" + "A" * 44,
    "sessionshare=" + "A" * 4000,
    'sessionshare="' + "A" * 43 + '"',
    "sessionshare=../../etc/passwd",
    "sessionshare=%00" + "A" * 40,
    "sessionshare=\u00e9" * 3,
    "sessionshare",
    "sessionshare=; sessionshare=; sessionshare=",
    "=" * 100,
    ";" * 500,
]


@pytest.mark.parametrize("cookie", FORGED_COOKIES, ids=lambda c: repr(c)[:40])
def test_forged_session_cookie_is_ignored(cookie: str) -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    before = snapshot(dep.store)
    # As a WSGI server hands the header over: its bytes read as latin-1.
    header = cookie.encode().decode("latin-1")
    away = browser.get(SHOP + "/orders", cookie=header)
    assert away.status == 302 and away.location
    assert away.location.startswith(remote_login_prefix(SHOP))
    assert not [c for c in away.cookies() if c.startswith("sessionshare=")]
    at_idp = browser.get(IDP + "/", cookie=header)
    assert at_idp.passed and at_idp.user is None
    assert snapshot(dep.store) == before


def test_forged_session_cookies_end_to_end(dep: Deployment, store: SessionStore) -> None:
    # The header as each shell reads it: non-ASCII bytes, a quoted value, a long one.
    for cookie in (FORGED_COOKIES[0], FORGED_COOKIES[3], FORGED_COOKIES[4], FORGED_COOKIES[7]):
        before = _store_snapshot(store)
        reply = call(dep.shop, environ_for("GET", "/orders",
                                           cookie=cookie.encode().decode("latin-1")))
        assert reply.status == 302 and reply.location.startswith(remote_login_prefix(SHOP))
        assert not [c for c in reply.cookies() if c.startswith("sessionshare=")]
        idp = call(dep.idp, environ_for("GET", "/", host="id.test",
                                        cookie=cookie.encode().decode("latin-1")))
        assert idp.status == 200 and idp.body == b"idp home user=None"
        assert _store_snapshot(store) == before


def test_session_id_in_the_url_is_never_used() -> None:
    dep = _core()
    browser = CoreBrowser(dep)
    browser.sign_in_at(SHOP + "/orders")
    sid = browser.cookie("shop.test")
    stranger = CoreBrowser(dep)
    assert stranger.get(f"{SHOP}/orders?sessionshare={sid}").status == 302
    assert stranger.get(f"{SHOP}/orders;sessionshare={sid}").status == 302


# -- store dumps: no usable secret at rest ------------------------------------------------------


def test_a_store_dump_holds_no_session_id_ticket_or_token(redis_url: str,
                                                          clock: Callable[[], float]) -> None:
    store = RedisStore.from_url(redis_url)
    dep = security_deployment(store, clock)
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")  # a live ticket in the store
    _, token = _split(url)
    sid = browser.cookie("id.test")
    assert sid is not None
    claims = open_token(SyncKey.parse(dep.key), token, audience=SHOP, issuer=IDP, ttl=60,
                        now=clock())
    dump = repr(_store_snapshot(store)).encode()
    secrets = [sid.encode(), token.encode(), claims.ticket, claims.ticket.hex().encode(),
               base64.urlsafe_b64encode(claims.ticket).rstrip(b"=")]
    for secret in secrets:
        assert secret not in dump
    assert browser.get(url).status_int == 303  # and the hand-off still works
    store.close()
