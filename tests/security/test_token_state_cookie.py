"""Token, state and cookie manipulations, grouped by the attack they replay.

Each case runs the real flow up to the IdP's redirect back (the browser holds
a fresh token URL and its state cookie), then changes one thing an attacker
controls and presents it to the remote's callback. The answer must be a 403
with the expected reason code, no ``Location``, no cookie, no change to any
stored session, and the browser must not be signed in afterwards.

Where the token itself was changed, the genuine token is redeemed afterwards
and must work: a forged or foreign token never reaches the store, so it
cannot burn the ticket of the browser it was taken from (and the test
proves it could pass). Where the *state* was wrong, the genuine token must
be spent instead: whoever holds the state it was issued for cannot use it
later (login-URL injection, fix 5 in test_regressions.py).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import webtest
from flow import BLOG, IDP, SHOP, Browser, Deployment, idp_app, reason_of

from sessionshare import IdpAuthMiddleware, MemoryStore, RedisStore, SessionStore, SyncKey
from sessionshare.crypto import open_token

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


def _snapshot(store: SessionStore, *, tickets: bool = True) -> dict[str, object]:
    """Every stored session (and ticket), TTLs aside: nothing may change on a rejection."""
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
    return {
        **{k: (v.fields, v.meta) for k, v in store.sessions().items()},
        **({k: v.value for k, v in store.tickets().items()} if tickets else {}),
    }


def _state_cookie(browser: Browser, host: str = "shop.test") -> tuple[str, str]:
    jar = browser.apps[host].cookies
    (name,) = [k for k in jar if k.startswith("sessionshare_state")]
    return name, jar[name]


def _assert_refused(response: webtest.TestResponse, reason: str) -> None:
    assert response.status_int == 403, response
    assert reason_of(response) == reason, response.text
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def _assert_signed_out_at(browser: Browser, origin: str) -> None:
    page = browser.get(origin + ("/orders" if origin == SHOP else "/x"))
    assert page.status_int == 302 and page.location.startswith(remote_login_prefix(origin))


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
    Mangle("token-encoding", "empty", lambda t: "", "malformed"),
]


@pytest.mark.parametrize("mangle", TOKEN_MANGLES, ids=lambda m: f"{m.group}:{m.name}")
def test_mangled_token(dep: Deployment, store: SessionStore, events: Events,
                       mangle: Mangle) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    changed = mangle.change(token)
    assert changed != token
    before = _snapshot(store)
    _assert_refused(browser.get(f"{base}?token={changed}"), mangle.reason)
    assert _snapshot(store) == before
    _assert_signed_out_at(browser, SHOP)
    assert events.count("ticket_redeemed") == 0
    # The genuine token was not burnt by the failed attempt.
    assert browser.get(f"{base}?token={token}").status_int == 303
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


# -- binding: audience, issuer, key (OAuth mix-up / confused deputy, RFC 9700 4.4) ------------


def test_token_for_shop_presented_at_blog(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    browser.start_login(BLOG + "/x")  # blog holds a state cookie of its own
    before = _snapshot(store)
    _assert_refused(browser.get(f"{BLOG}{CB}?token={token}"), "wrong_audience")
    assert _snapshot(store) == before
    _assert_signed_out_at(browser, BLOG)
    assert browser.get(f"{base}?token={token}").status_int == 303


def test_token_sealed_with_another_sync_key(store: SessionStore,
                                           clock: Callable[[], float]) -> None:
    # Key mismatch: an app with another key (a stale deployment, or an attacker's IdP).
    dep = security_deployment(store, clock)
    other = security_deployment(store, clock)
    assert SyncKey.parse(other.key).fingerprint != SyncKey.parse(dep.key).fingerprint
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.apps["id.test"] = Browser(other).apps["id.test"]
    url = browser.sign_in(login_url).location
    _assert_refused(browser.get(url), "unknown_key")
    _assert_signed_out_at(browser, SHOP)


def test_token_from_a_rogue_idp_with_the_right_key(store: SessionStore,
                                                   clock: Callable[[], float]) -> None:
    dep = security_deployment(store, clock)
    rogue = IdpAuthMiddleware(idp_app, store=store, key=dep.key, app_url="http://id.test.evil.com",
                              known_remote_hosts=[SHOP], cookie_secure=False, clock=clock)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.apps["id.test"] = webtest.TestApp(rogue, extra_environ={"HTTP_HOST": "id.test"})
    _assert_refused(browser.get(browser.sign_in(login_url).location), "wrong_issuer")
    _assert_signed_out_at(browser, SHOP)


def test_token_for_the_https_twin_of_the_remote(store: SessionStore,
                                                clock: Callable[[], float]) -> None:
    # The audience is the full origin: a token minted for https://shop.test is
    # refused by http://shop.test (and the other way round).
    dep = security_deployment(store, clock, known_remote_hosts=["https://shop.test", "http://shop.test"])
    browser = Browser(dep)
    browser.start_login(SHOP + "/orders")
    _, state_value = _state_cookie(browser)
    state = dep.shop.side.state_signer.loads(state_value)[0]
    browser.get(f"{IDP}/login")
    browser.post(f"{IDP}/login", {"username": "alice", "password": "wonderland"})
    answer = browser.get(f"{IDP}/login?callback=https%3A%2F%2Fshop.test{CB.replace('/', '%2F')}"
                         f"&state={state}")
    assert answer.status_int == 303 and answer.location.startswith("https://shop.test" + CB)
    _, token = _split(answer.location)
    _assert_refused(browser.get(f"{SHOP}{CB}?token={token}"), "wrong_audience")


# -- lifetime --------------------------------------------------------------------------------


def test_expired_token(dep: Deployment, store: SessionStore, clock: object) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    clock.advance(60 + 5 + 1)  # type: ignore[attr-defined]
    before = _snapshot(store)
    _assert_refused(browser.get(url), "expired")
    assert _snapshot(store) == before


def test_token_from_the_future(dep: Deployment, clock: object) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    clock.advance(-(5 + 1))  # type: ignore[attr-defined]  # the remote's clock is behind
    _assert_refused(browser.get(url), "not_yet_valid")


# -- replay (the PHP bundle's tokens could be replayed) ---------------------------------------


def test_replay_with_a_stolen_state_cookie(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    name, value = _state_cookie(browser)
    assert browser.get(url).status_int == 303
    attacker = Browser(dep)
    attacker.apps["shop.test"].set_cookie(name, value)
    before = _snapshot(store)
    _assert_refused(attacker.get(url), "replayed")
    assert _snapshot(store) == before
    _assert_signed_out_at(attacker, SHOP)


def test_replay_in_the_same_browser(dep: Deployment) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(url).status_int == 303
    # The state cookie was cleared by the first redemption.
    _assert_refused(browser.get(url), "bad_state")


def test_parallel_replay_has_one_winner(dep: Deployment) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    name, value = _state_cookie(browser)
    environ = environ_for("GET", CB, f"token={token}", cookie=f"{name}={value}")
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


def test_token_after_logout(dep: Deployment, store: SessionStore) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.post(IDP + "/_sessionshare/logout").status_int == 303
    _assert_refused(browser.get(url), "session_gone")
    _assert_signed_out_at(browser, SHOP)


# -- state and login CSRF (RFC 6749 section 10.12, CWE-352) ------------------------------------


def _forge_state(browser: Browser, dep: Deployment, variant: str) -> None:
    name, value = _state_cookie(browser)
    app = browser.apps["shop.test"]
    app.cookiejar.clear()  # the shop jar held only this state cookie
    forged: str | None
    if variant == "missing":
        forged = None
    elif variant == "another login's cookie":
        other = Browser(dep)
        other.start_login(SHOP + "/orders")
        forged = _state_cookie(other)[1]
    elif variant == "signature tampered":
        forged = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    elif variant == "payload swapped, signature kept":
        payload = base64.urlsafe_b64encode(b'["' + b"A" * 43 + b'","/"]').decode().rstrip("=")
        forged = payload + "." + value.partition(".")[2]
    elif variant == "signed with another key":
        state = dep.shop.side.state_signer.loads(value)[0]
        other_key = SyncKey.parse(SyncKey.generate())
        forged = other_key.serializer("state-cookie", salt="sessionshare.state").dumps([state, "/"])
    elif variant == "signed for another purpose":
        state = dep.shop.side.state_signer.loads(value)[0]
        token_signer = dep.shop.side.key.serializer("token", salt="sessionshare.state")
        forged = token_signer.dumps([state, "/"])
    elif variant == "garbage":
        forged = "not-a-signed-value"
    elif variant == "forged copy first":
        # Two cookies of one name (one planted from a sibling host): the first one counts.
        app.extra_environ["HTTP_COOKIE"] = f"{name}={value[:-4]}AAAA; {name}={value}"
        forged = None
    else:  # "renamed to another state"
        name, forged = "sessionshare_state-AAAAAAAAAAAA", value
    if forged is not None:
        app.set_cookie(name, forged)


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
def test_state_cookie_manipulation(dep: Deployment, store: SessionStore, variant: str) -> None:
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    genuine = _state_cookie(browser)
    _forge_state(browser, dep, variant)
    before = _snapshot(store, tickets=False)
    _assert_refused(browser.get(url), "bad_state")
    assert _snapshot(store, tickets=False) == before
    app = browser.apps["shop.test"]
    app.extra_environ.pop("HTTP_COOKIE", None)
    _assert_signed_out_at(browser, SHOP)
    # A genuine token refused for its state is spent: whoever holds the right state
    # cookie cannot redeem it afterwards (login-URL injection, see test_regressions.py).
    app.cookiejar.clear()
    app.set_cookie(*genuine)
    _assert_refused(browser.get(url), "replayed")


def test_expired_state_cookie(dep: Deployment, clock: object) -> None:
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    clock.advance(10 * 60 + 1)  # type: ignore[attr-defined]  # past state_ttl; the token is fresh
    url = browser.sign_in(login_url).location
    _assert_refused(browser.get(url), "bad_state")


def test_login_csrf_attackers_token_in_victims_browser(dep: Deployment,
                                                       store: SessionStore) -> None:
    victim = Browser(dep)
    assert victim.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    attacker = Browser(dep)
    url = attacker.token_url_for(SHOP + "/orders", user="bob")
    before = _snapshot(store, tickets=False)
    _assert_refused(victim.get(url), "bad_state")
    assert _snapshot(store, tickets=False) == before
    assert victim.get(SHOP + "/orders").json["user"] == "alice"
    _assert_refused(attacker.get(url), "replayed")  # and the token is spent


# -- method and parameters (HTTP parameter pollution, OWASP WSTG-INPV-04) ----------------------


@pytest.mark.parametrize(
    ("method", "query", "reason"),
    [
        ("POST", "token={t}", "bad_method"),
        ("HEAD", "token={t}", "bad_method"),
        ("PUT", "token={t}", "bad_method"),
        ("GET", "token={t}&token={t}", "malformed"),
        ("GET", "", "malformed"),
        ("GET", "tokens={t}", "malformed"),
        ("GET", "token={t}&" + "x=1&" * 70, "malformed"),
        ("GET", "token={t}&pad=" + "A" * 5000, "malformed"),
    ],
    ids=["POST", "HEAD", "PUT", "duplicated", "missing", "misnamed", "too many fields",
         "oversized query"],
)
def test_callback_request_shape(dep: Deployment, store: SessionStore, method: str, query: str,
                                reason: str) -> None:
    browser = Browser(dep)
    base, token = _split(browser.token_url_for(SHOP + "/orders"))
    app = browser.apps["shop.test"]
    url = f"{CB}?{query.format(t=token)}" if query else CB
    response = app.request(url, method=method, headers={"Accept": "text/html"}, status="*")
    assert response.status_int == 403 and "Location" not in response.headers
    if method != "HEAD":
        assert reason_of(response) == reason
    assert "Set-Cookie" not in response.headers
    assert browser.get(f"{base}?token={token}").status_int == 303


# -- session cookies and fixation (CWE-384) ---------------------------------------------------


def test_planted_session_id_dies_at_login(dep: Deployment, store: SessionStore) -> None:
    attacker = Browser(dep)
    attacker.get(attacker.start_login(SHOP + "/orders"))  # an anonymous IdP session exists
    planted = attacker.cookie("id.test")
    assert planted is not None
    victim = Browser(dep)
    victim.apps["id.test"].set_cookie("sessionshare", planted)
    login_url = victim.start_login(SHOP + "/orders")
    answer = victim.sign_in(login_url)
    assert answer.status_int == 303
    assert victim.cookie("id.test") not in (None, planted)
    # The planted id is dead: the attacker's browser is not signed in anywhere.
    assert attacker.get(IDP + "/").text == "idp home user=None"


@pytest.mark.parametrize(
    "cookie",
    [
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
    ],
    ids=lambda c: repr(c)[:40],
)
def test_forged_session_cookie_is_ignored(dep: Deployment, store: SessionStore,
                                          cookie: str) -> None:
    before = _snapshot(store)
    reply = call(dep.shop, environ_for("GET", "/orders", cookie=cookie.encode().decode("latin-1")))
    assert reply.status == 302 and reply.location.startswith(remote_login_prefix(SHOP))
    assert not [c for c in reply.cookies() if c.startswith("sessionshare=")]
    idp = call(dep.idp, environ_for("GET", "/", host="id.test", cookie=cookie))
    assert idp.status == 200 and idp.body == b"idp home user=None"
    assert _snapshot(store) == before


def test_session_id_in_the_url_is_never_used(dep: Deployment) -> None:
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    sid = browser.cookie("shop.test")
    stranger = Browser(dep)
    page = stranger.get(f"{SHOP}/orders?sessionshare={sid}")
    assert page.status_int == 302
    page = stranger.get(f"{SHOP}/orders;sessionshare={sid}")
    assert page.status_int == 302


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
    dump = repr(_snapshot(store)).encode()
    secrets = [sid.encode(), token.encode(), claims.ticket, claims.ticket.hex().encode(),
               base64.urlsafe_b64encode(claims.ticket).rstrip(b"=")]
    for secret in secrets:
        assert secret not in dump
    assert browser.get(url).status_int == 303  # and the hand-off still works
    store.close()
