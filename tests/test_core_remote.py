"""sessionshare.core.remote: protected paths, configuration, state.

The decisions run on the remote's side driven by hand (tests/coreflow.py);
what a shell reads for the core -- the mount point, the Host header -- and
a store's identity run end to end under each shell.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import webtest
from conftest import FakeClock
from coredrive import visit
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import IDP, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import ConfigurationError, MemoryStore, RemoteSessionMiddleware, SyncKey


@pytest.fixture
def dep(clock: FakeClock, shell: str) -> Deployment:
    return Deployment(MemoryStore(clock=clock), clock, shell=shell)


def _remote(clock: FakeClock, **options: Any) -> webtest.TestApp:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(environ.get("REMOTE_USER")).encode()]

    middleware = RemoteSessionMiddleware(
        app, store=MemoryStore(clock=clock), key=SyncKey.generate(), app_url=SHOP,
        idp_url=LOGIN, cookie_secure=False, clock=clock, **options,
    )
    return webtest.TestApp(middleware, extra_environ={"HTTP_HOST": "shop.test"})


@pytest.mark.parametrize(
    ("protect", "protected", "public"),
    [
        (True, ["/", "/a", "/public"], []),
        (False, [], ["/", "/a", "/account/x"]),
        (["/account/", "/admin"], ["/account/x", "/admin", "/admin/y"], ["/", "/accounts"]),
        (lambda environ: environ["PATH_INFO"].endswith(".html"), ["/a.html"], ["/a.json"]),
        # A prefix is whole path segments: /shop protects /shop and below, not /shopping;
        # a trailing slash changes nothing (/account/ protects /account too). A format
        # suffix or path parameters stay protected (routers that serve /shop there).
        (["/shop", "/account/"],
         ["/shop", "/shop/", "/shop/x", "//shop/x", "/x/../shop", "/account", "/account/x",
          "/shop.json", "/shop;v=1", "/account.html"],
         ["/shopping", "/shop-old", "/shopping/x", "/accounts", "/", "/x/shop"]),
        (["/"], ["/", "/a", "/a/b"], []),
    ],
    ids=["everything", "nothing", "prefixes", "predicate", "whole segments", "root"],
)
def test_protect_forms(clock: FakeClock, protect: Any, protected: list[str],
                       public: list[str]) -> None:
    app = _remote(clock, protect=protect)
    for path in protected:
        assert app.get(path, headers={"Accept": "text/html"}, status="*").status_int == 302, path
    for path in public:
        assert app.get(path, headers={"Accept": "text/html"}).text == "None", path


@pytest.mark.parametrize("protect", ["/account", ["account"], [3]])
def test_bad_protect_values(clock: FakeClock, protect: Any) -> None:
    with pytest.raises(ConfigurationError, match="protect"):
        _remote(clock, protect=protect)


@pytest.mark.parametrize(
    "options",
    [{"protect": ["/caf%C3%A9"]}, {"protect": ["/a%20b/"]}, {"passive": ["/news%2Fx"]},
     {"max_auth_age": {"/admin%2f": 60}}],
)
def test_a_percent_encoded_prefix_is_refused(clock: FakeClock, options: dict[str, Any]) -> None:
    # Paths are compared decoded (as routers see them): "/caf%C3%A9" could never match a
    # request, and the page it was meant to protect would be served to nobody.
    with pytest.raises(ConfigurationError, match="percent-encoded.*decoded"):
        _remote(clock, **options)
    _remote(clock, protect=["/100%off", "/café"])  # a literal "%", and a decoded prefix


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idp_url": "https://id.example/login#x"}, "idp_url"),
        ({"idp_url": "ftp://id.example/login"}, "idp_url"),
        ({"callback_path": "cb"}, "callback_path"),
        ({"callback_path": "/_sessionshare/logout"}, "callback_path"),
        ({"state_ttl": 0}, "state_ttl"),
        ({"token_ttl": 0}, "token_ttl"),
        ({"logout_redirect": "javascript:alert(1)"}, "logout_redirect"),
        ({"key": "short"}, "keygen"),
    ],
)
def test_bad_configuration(clock: FakeClock, options: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "store": MemoryStore(), "key": SyncKey.generate(), "app_url": SHOP, "idp_url": LOGIN,
        "cookie_secure": False,
    }
    with pytest.raises(ConfigurationError, match=message):
        RemoteSessionMiddleware(lambda e, s: [b""], **{**base, **options})


def test_state_cookie_is_scoped_to_the_callback() -> None:
    response = CoreBrowser(CoreDeployment()).get(SHOP + "/orders")
    (cookie,) = [c for c in response.cookies() if c.startswith("sessionshare_state-")]
    for flag in ("Path=/_sessionshare/callback", "HttpOnly", "SameSite=Lax", "Max-Age=600"):
        assert flag in cookie
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Referrer-Policy") == "no-referrer"


def test_a_client_refusing_html_gets_401_json_not_a_redirect() -> None:
    # q=0 is "not acceptable" (RFC 9110): this is a script, which a cross-origin
    # redirect to a login page would only break.
    browser = CoreBrowser(CoreDeployment())
    refused = browser.get(SHOP + "/orders", accept="application/json, text/html;q=0")
    assert refused.status == 401 and refused.location is None
    assert refused.json["error"] == "not_authenticated" and refused.json["login_url"] == LOGIN
    page = browser.get(SHOP + "/orders", accept="application/json, text/html")
    assert page.status == 302  # the control: HTML acceptable, a page load


# -- the state cookie's return path is checked again when it comes back ----------------------


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ("//evil.test/x", "/"),
        ("/\\evil.test", "/"),
        ("https://evil.test/", "/"),
        ("/%2fevil.test", "/"),
        ("/orders?page=2", "/orders?page=2"),
    ],
    ids=["scheme-relative", "backslash", "absolute", "encoded slash", "control: safe path"],
)
def test_unsafe_return_path_in_a_validly_signed_state_still_lands_here(
    clock: FakeClock, saved: str, expected: str
) -> None:
    # The path is checked when the cookie is written; the callback checks it again, so a
    # signed cookie holding another path (an older release, a leaked key, a bug in the
    # writer) still cannot turn the hand-off into an open redirect.
    dep = CoreDeployment(clock)
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    state = unquote(urlsplit(login_url).query.rpartition("state=")[2])
    name, _ = browser.state_cookie()
    cookie = browser.jar(SHOP)[name]

    # Signed as the remote signs it (same key, purpose, salt and clock): only the path differs.
    signer = SyncKey.parse(dep.key).serializer("state-cookie", salt="sessionshare.state",
                                                clock=clock)
    cookie.value = signer.dumps([state, saved])  # in place: same name and path
    answer = browser.sign_in(login_url)
    assert answer.location is not None
    back = browser.get(answer.location)
    assert back.status == 303, back
    assert back.location == expected


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_an_idp_on_another_store_is_named_not_called_a_replay(
    request: pytest.FixtureRequest, clock: FakeClock, backend: str,
    caplog: pytest.LogCaptureFixture, shell: str) -> None:
    """Issue 13: `memory://` in each process, or two Redis databases, used to say `replayed`.

    End to end: each store's identity is a command of its own (both backends), read
    through each shell."""
    if backend == "memory":
        idp_store, shop_store = MemoryStore(clock=clock), MemoryStore(clock=clock)
    else:
        import time

        from sessionshare import RedisStore

        url = request.getfixturevalue("redis_url")
        idp_store, shop_store = RedisStore.from_url(url), RedisStore.from_url(url[:-1] + "1")
        shop_store.client.flushdb()
        clock = time.time  # type: ignore[assignment]  # Redis expires by its own clock
    dep = Deployment(idp_store, clock, shell=shell)
    # The shop's own, separate store.
    alone = Deployment(shop_store, clock, key=dep.key, shell=shell)
    browser = Browser(dep)
    browser.apps["shop.test"] = Browser(alone).apps["shop.test"]
    # The shop's store has never been written by an IdP: it might be one that lost
    # everything (a restart), so the first failure starts the hand-off again, once, and
    # takes an identity for that store; the next one meets another store's identity.
    first = browser.get(browser.token_url_for(SHOP + "/orders"))
    assert first.status_int == 303 and first.location == "/orders", first
    page = browser.get(browser.token_url_for(SHOP + "/orders"))
    assert page.status_int == 403 and "Location" not in page.headers
    assert reason_of(page) == "unknown_ticket"
    assert "same session store" in page.text and "SESSIONSHARE_STORE_URL" in page.text
    assert "try again" not in page.text  # retrying can never help here
    assert any("reason=unknown_ticket" in r.getMessage() and "SESSIONSHARE_STORE_URL"
               in r.getMessage() for r in caplog.records)
    # The control: the same flow on one shared store signs in.
    shared = Browser(dep)
    assert shared.get(shared.token_url_for(SHOP + "/orders")).status_int == 303


def test_different_sync_keys_name_both_fingerprints_not_a_retry(
    clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13: `Reason: unknown_key` told the user to try again."""
    dep = CoreDeployment(clock)
    other = CoreDeployment(clock, store=dep.store)  # the shop was given a key of its own
    browser = CoreBrowser(dep)
    browser.sides[SHOP] = other.shop
    page = browser.get(browser.token_url_for(SHOP + "/orders"))
    text = page.body.decode()
    assert page.status == 403 and page.reason == "unknown_key"
    assert "the sites are misconfigured" in text and "try again" not in text
    assert "same SESSIONSHARE_SYNC_KEY on both" in text
    assert "python -m sessionshare fingerprint" in text
    (line,) = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("token_rejected reason=unknown_key")]
    idp_print, shop_print = SyncKey.parse(dep.key).fingerprint, SyncKey.parse(other.key).fingerprint
    assert f"token_key_fingerprint={idp_print} app_key_fingerprints={shop_print}" in line
    assert "SESSIONSHARE_SYNC_KEY" in line and "fingerprint" in line


def test_a_user_key_mismatch_says_both_sites_need_the_same_user_key(
    clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """The IdP signs in under session["user"]; a remote reading "account" sees nobody."""
    browser = CoreBrowser(CoreDeployment(clock, remote_options={"user_key": "account"}))
    page = browser.get(browser.token_url_for(SHOP + "/orders"))
    text = page.body.decode()
    assert page.status == 403 and page.reason == "not_authenticated"
    assert "the sites are misconfigured" in text and "try again" not in text
    assert "same user_key" in text and "SESSIONSHARE_USER_KEY" in text
    (line,) = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("token_rejected reason=not_authenticated")]
    assert "user_key='account'" in line and "SESSIONSHARE_USER_KEY" in line


def test_a_remote_behind_a_path_prefix_sends_the_browser_to_its_own_urls_under_it(
    clock: FakeClock, shell: str
) -> None:
    # A remote mounted at /news (WSGI SCRIPT_NAME, ASGI root_path: a prefix-stripping proxy
    # in front) made its callback, its state cookies' path and its sign-out form's action
    # without the prefix: the IdP sent the browser to https://shop/_sessionshare/callback,
    # which the proxy never routes to the app, and the state cookie would not have reached
    # /news/_sessionshare/callback anyway. The library's own URLs now carry the mount point.
    mounted_callback = SHOP + "/news/_sessionshare/callback"
    dep = Deployment(MemoryStore(clock=clock), clock, shell=shell,
                     idp_options={"known_remote_hosts": [mounted_callback]})
    browser = Browser(dep)
    news = webtest.TestApp(dep.wsgi(dep.shop),
                           extra_environ={"HTTP_HOST": "shop.test", "SCRIPT_NAME": "/news"})
    html = {"Accept": "text/html"}
    start = news.get("/orders?page=2", headers=html, status=302)
    location = urlsplit(start.location)
    assert start.location.startswith(LOGIN + "?")
    assert unquote(location.query.split("callback=", 1)[1].split("&", 1)[0]) == mounted_callback
    state_cookie = next(value for name, value in start.headerlist
                        if name == "Set-Cookie" and value.startswith("sessionshare_state-"))
    assert "; Path=/news/_sessionshare/callback;" in state_cookie
    # The IdP accepts that callback (listed by its full URL) and sends the token there...
    token_url = browser.sign_in(start.location)
    assert token_url.status_int == 303 and token_url.location.startswith(mounted_callback + "?")
    # ...where the app under the prefix redeems it and returns to the page, prefix and all.
    back = news.get("/_sessionshare/callback?" + urlsplit(token_url.location).query,
                    headers=html, status=303)
    assert back.location.endswith("/news/orders?page=2")
    assert any(value.startswith("sessionshare_state-0=;") and
               "; Path=/news/_sessionshare/callback;" in value
               for name, value in back.headerlist if name == "Set-Cookie")  # cleared, same path
    assert news.get("/orders", headers=html).json["user"] == "alice"
    # Its sign-out page posts to the sign-out path under the prefix.
    form = news.get("/_sessionshare/logout", headers=html)
    assert 'action="/news/_sessionshare/logout"' in form.text
    # A mount point that is no plain path cannot smuggle attributes into the cookie.
    odd = webtest.TestApp(dep.wsgi(dep.shop), extra_environ={
        "HTTP_HOST": "shop.test", "SCRIPT_NAME": "/a;Domain=test"})
    cookies = odd.get("/orders", headers=html, status=302).headers.getall("Set-Cookie")
    assert not any(";Domain" in cookie or "; Domain" in cookie for cookie in cookies), cookies
    assert any("; Path=/a%3BDomain=test/_sessionshare/callback;" in c for c in cookies), cookies


# -- the first hour: a remote opened at another host, clocks that disagree ---------------------
def _lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


def test_a_remote_opened_at_another_host_than_its_app_url_says_so(
    dep: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    """127.0.0.1:8001 instead of shop.localhost:8001 ended in "Sign-in refused ... bad_state"
    with no hint: the state cookie stays with the host the browser asked. (Under each
    shell: each reads the Host header for the core.)"""
    browser = Browser(dep)
    elsewhere = webtest.TestApp(dep.wsgi(dep.shop), extra_environ={"HTTP_HOST": "127.0.0.1:8001"})
    started = elsewhere.get("/orders", headers={"Accept": "text/html"}, status=302)
    (warning,) = _lines(caplog, "login_redirect_host_mismatch")
    assert "host='127.0.0.1:8001'" in warning and f"app_url={SHOP}" in warning
    assert "bad_state" in warning and "SESSIONSHARE_APP_URL" in warning
    back = browser.sign_in(started.location)  # the IdP sends the browser to the app_url
    assert back.status_int == 303 and back.location.startswith(SHOP + "/_sessionshare/")
    refused = browser.get(back.location)
    assert refused.status_int == 403 and reason_of(refused) == "bad_state"
    assert "another address" in refused.text and SHOP in refused.text
    (line,) = _lines(caplog, "token_rejected reason=bad_state")
    assert "no sign-in started" in line and f"app_url={SHOP}" in line
    # The control: at its app_url the same browser signs in, and nothing is said.
    caplog.clear()
    assert browser.get(browser.token_url_for(SHOP + "/orders")).status_int == 303
    assert not _lines(caplog, "login_redirect_host_mismatch")


def test_a_host_with_the_default_port_written_out_is_the_same_host(
    caplog: pytest.LogCaptureFixture) -> None:
    browser = CoreBrowser(CoreDeployment())
    side, request = browser.request("GET", SHOP + "/orders")
    for host in ("SHOP.test:80", "shop.test", "127.0.0.1:8001"):  # the last: the control
        request.host = host
        assert visit(browser.dep.drive, side, request).status == 302  # type: ignore[union-attr]
    (line,) = _lines(caplog, "login_redirect_host_mismatch")
    assert "host='127.0.0.1:8001'" in line


def test_a_replayed_callback_is_not_called_a_host_mismatch() -> None:
    browser = CoreBrowser(CoreDeployment())
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(url).status == 303
    again = browser.get(url)  # its state cookie went with the first use
    assert again.reason == "bad_state" and b"another address" not in again.body


@pytest.mark.parametrize(("skew", "reason", "said"), [
    (-66 - 30, "expired", "issued 96 s ago"),
    (+30, "not_yet_valid", "issued 30 s in the future"),
], ids=["expired", "not-yet-valid"])
def test_a_token_refused_for_its_time_hints_at_the_clocks(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, skew: int, reason: str,
    said: str) -> None:
    """`expired` and `not_yet_valid` got no hint in the log, unlike the other setup errors."""
    dep = CoreDeployment(clock)
    skewed = CoreDeployment(FakeClock(clock.now + skew), key=dep.key, store=dep.store)
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.sides[IDP] = skewed.idp
    token_url = browser.sign_in(login_url).location
    assert token_url is not None
    refused = browser.get(token_url)
    assert refused.status == 403 and refused.reason == reason
    (line,) = _lines(caplog, f"token_rejected reason={reason}")
    assert said in line and "clock" in line and "NTP" in line
