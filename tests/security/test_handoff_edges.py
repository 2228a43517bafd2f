"""Issue 22's hand-off edges and issue 23's key-rotation finding: each test failed on the
code before its fix.

- a claim on a login state lives as long as the state it guards (``state_ttl``);
- an IdP app that signs users in on the GET of the login URL (SPNEGO, client
  certificates) hands off a browser that had no browser-id cookie yet;
- two tabs on a browser's first IdP visit are both handed off, while a leaked
  state still gets nobody else a token;
- a passive page serves a client that keeps no cookies as a guest: no 403, no loop;
- a callback whose answer was lost (a stall past the store's retries) is
  answered when the same browser retries it, and to nobody else;
- a ticket the store lost (a failover, a restart) restarts the hand-off; a
  ticket in another store is still named a misconfiguration;
- during a key rotation (``OLD,NEW`` and ``NEW,OLD`` in any order) the claims
  and the step-up requirement are read under every configured key.

The flows run end to end on MemoryStore and real Redis, under the WSGI and the
ASGI shell; the tables of their decisions (the orderings of two tabs, which
client is bounced) on the sides driven by hand (tests/coreflow.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http.cookiejar import Cookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import FakeClock
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import (
    BLOG,
    CALLBACK,
    IDP,
    LOGIN,
    OPEN_ASYNC_STORES,
    SHOP,
    Browser,
    Deployment,
    asgi_idp_app,
    async_twin,
    idp_app,
    reason_of,
)

from sessionshare import (
    AsyncRedisStore,
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SessionStore,
    StoreUnavailable,
    SyncKey,
    asgi,
)
from sessionshare.core.claims import CLAIM_TTL, state_tag
from sessionshare.core.loginstate import MAX_STATE_TTL, LoginStates
from sessionshare.core.stepup import GRACE

PASSWORD = {"username": "alice", "password": "wonderland"}


def _state_of(login_url: str) -> str:
    return parse_qs(urlsplit(login_url).query)["state"][0]


def _landed(browser: Browser, callback_url: str) -> str:
    """Open a callback URL; the page it sends the browser back to (asserting a 303)."""
    back = browser.get(callback_url)
    assert back.status_int == 303 and not back.location.startswith("http"), (
        back.status, back.text[:300])
    return str(back.location)


# -- a claim lives as long as its state -------------------------------------------------------


def test_a_claim_lasts_as_long_as_the_state_it_guards(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # A remote whose sign-ins may take an hour: its state cookie lives an hour, and so must
    # the IdP's claim on the state, or the state read from a log after ten minutes gets the
    # attacker a token that the victim's browser, still holding the state cookie, accepts.
    dep = Deployment(store, clock, shell=shell, remote_options={"state_ttl": 3600})
    victim, mallory = Browser(dep), Browser(dep)
    login_url = victim.start_login(SHOP + "/orders")
    assert victim.get(login_url).status_int == 200  # the form: the state is claimed
    claim = dep.idp.side.claims.claim_key(_state_of(login_url))
    if isinstance(store, RedisStore):
        # Redis expires by its own clock: the claim's lifetime is what it was given.
        assert store.client.ttl(claim) > 3600 - 30
    clock.advance(11 * 60)
    mallory.sign_in(LOGIN, user="bob")
    minted = mallory.get(login_url)  # the state, read from the IdP's access log
    assert minted.status_int == 403 and reason_of(minted) == "state_taken", minted
    # The victim's own sign-in, eleven minutes later, still goes through.
    answer = victim.post(login_url, PASSWORD)
    assert answer.status_int == 303
    assert _landed(victim, answer.location) == "/orders"
    assert victim.get(SHOP + "/orders").json["user"] == "alice"


def test_a_claims_lifetime_is_read_only_from_an_intact_state(clock: FakeClock) -> None:
    # The state comes from the remote, through the browser: the IdP takes a lifetime from it
    # only under the sync key's tag, and never past the bound a remote may ask for.
    dep = Deployment(MemoryStore(clock=clock), clock)
    claims = dep.idp.side.claims
    now = int(clock())
    assert claims.ttl_of("S" * 43, now=now) == CLAIM_TTL  # an ordinary state
    foreign = LoginStates(SyncKey.parse(SyncKey.generate()))  # another deployment's key
    assert claims.ttl_of(foreign.make(expires=now + 3600), now=now) == CLAIM_TTL
    own = LoginStates(dep.idp.side.key)
    assert claims.ttl_of(own.make(expires=now + 3600), now=now) >= 3600
    assert claims.ttl_of(own.make(expires=now + 60), now=now) == CLAIM_TTL  # never shorter
    far = own.make(expires=now + 10 * MAX_STATE_TTL)
    assert claims.ttl_of(far, now=now) <= MAX_STATE_TTL + 60


def test_a_state_ttl_past_the_bound_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="state_ttl"):
        RemoteSessionMiddleware(lambda e, s: [], store=MemoryStore(), key=SyncKey.generate(),
                                app_url=SHOP, idp_url=LOGIN, cookie_secure=False,
                                state_ttl=MAX_STATE_TTL + 1)


# -- signing in on the GET of the login URL ----------------------------------------------------


def _negotiating_idp(shell: str) -> Callable[..., Any]:
    """flow's IdP, except that a GET of /login carrying ``X-Negotiate: <user>`` signs that
    user in at once (as SPNEGO or a client certificate would), with no form."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        user = environ.get("HTTP_X_NEGOTIATE")
        if environ["PATH_INFO"] == "/login" and environ["REQUEST_METHOD"] == "GET" and user:
            environ["sessionshare.session"]["user"] = user
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"signed in by negotiation"]
        return idp_app(environ, start_response)

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        user = headers.get(b"x-negotiate")
        if scope["path"] == "/login" and scope["method"] == "GET" and user:
            scope["session"]["user"] = user.decode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"signed in by negotiation"})
            return
        await asgi_idp_app(scope, receive, send)

    return asgi_app if shell == "asgi" else app


def test_a_sign_in_on_the_login_get_hands_off_a_first_time_browser(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_negotiating_idp(shell))
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    assert browser.cookie("id.test", "sessionshare_browser") is None  # a first IdP visit
    answer = browser.get(login_url, headers={"Accept": "text/html", "X-Negotiate": "alice"})
    assert answer.status_int == 303, (answer.status, answer.text[:300])
    assert answer.location.startswith(SHOP + CALLBACK + "?token=")
    assert _landed(browser, answer.location) == "/orders"
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


# -- two tabs on a browser's first IdP visit ---------------------------------------------------
# Which browser a claim belongs to, and the receipt a cookieless claim leaves, are the IdP's
# decisions: every ordering runs on the sides driven by hand (tests/coreflow.py), one end to
# end per shell and store.


def _cookies(browser: Browser, host: str) -> list[Cookie]:
    return list(browser.apps[host].cookiejar)


def _open_both_at_once(browser: Browser, urls: list[str], kept_last: int) -> None:
    """Open ``urls`` at the IdP as two tabs do when neither answer has arrived before the
    other request left: both without the IdP's cookies. The answer of ``urls[kept_last]``
    arrives last, so its cookies win where both set the same name."""
    jar = browser.apps["id.test"].cookiejar
    answers: list[list[Cookie]] = []
    for url in urls:
        jar.clear()
        page = browser.get(url)
        assert page.status_int == 200 and "login form" in page.text, page
        answers.append(_cookies(browser, "id.test"))
    jar.clear()
    for index in [i for i in range(len(urls)) if i != kept_last] + [kept_last]:
        for cookie in answers[index]:
            jar.set_cookie(cookie)


def _core_open_both_at_once(browser: CoreBrowser, urls: list[str], kept_last: int) -> None:
    """:func:`_open_both_at_once` for a browser of tests/coreflow.py."""
    jar = browser.jar(IDP)
    answers: list[dict[str, Any]] = []
    for url in urls:
        jar.clear()
        assert browser.get(url).passed  # the login form
        answers.append(dict(jar))
    jar.clear()
    for index in [i for i in range(len(urls)) if i != kept_last] + [kept_last]:
        jar.update(answers[index])


def _core_landed(browser: CoreBrowser, callback_url: str | None) -> str:
    assert callback_url is not None
    back = browser.get(callback_url)
    assert back.status == 303 and back.location and not back.location.startswith("http"), back
    return back.location


@pytest.mark.parametrize("kept_last", [0, 1], ids=["first-answer-last", "second-answer-last"])
@pytest.mark.parametrize("signs_in_first", [0, 1],
                         ids=["first-tab-signs-in", "second-tab-signs-in"])
def test_two_tabs_on_a_first_idp_visit_are_both_handed_off(kept_last: int,
                                                           signs_in_first: int) -> None:
    browser = CoreBrowser(CoreDeployment())
    pages = ["/orders?tab=1", "/orders?tab=2"]
    login_urls = [browser.start_login(SHOP + page) for page in pages]
    _core_open_both_at_once(browser, login_urls, kept_last)
    order = [signs_in_first, 1 - signs_in_first]
    for tab in order:  # the user types the password in one tab, then in the other
        answer = browser.post(login_urls[tab], PASSWORD)
        assert answer.status == 303, (tab, answer)
        assert (answer.location or "").startswith(SHOP + CALLBACK + "?token=")
        assert _core_landed(browser, answer.location) == pages[tab]
    assert browser.get(SHOP + "/orders").user == "alice"


def test_two_tabs_on_a_first_idp_visit_end_to_end(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell)
    browser = Browser(dep)
    pages = ["/orders?tab=1", "/orders?tab=2"]
    login_urls = [browser.start_login(SHOP + page) for page in pages]
    _open_both_at_once(browser, login_urls, kept_last=1)
    for tab in (0, 1):  # the first tab's answer was overwritten: its receipt carries it
        answer = browser.post(login_urls[tab], PASSWORD)
        assert answer.status_int == 303, (tab, answer.status, answer.text[:300])
        assert answer.location.startswith(SHOP + CALLBACK + "?token=")
        assert _landed(browser, answer.location) == pages[tab]
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_a_tab_reloaded_after_the_other_signed_in_is_handed_off_too() -> None:
    browser = CoreBrowser(CoreDeployment())
    login_urls = [browser.start_login(SHOP + p) for p in ("/orders?tab=1", "/orders?tab=2")]
    _core_open_both_at_once(browser, login_urls, kept_last=1)
    answer = browser.post(login_urls[0], PASSWORD)
    assert answer.status == 303, answer
    assert _core_landed(browser, answer.location) == "/orders?tab=1"
    again = browser.get(login_urls[1])  # signed in now: straight back, with a token
    assert again.status == 303 and "?token=" in (again.location or ""), again
    assert _core_landed(browser, again.location) == "/orders?tab=2"


def test_a_state_leaked_from_a_first_visit_still_gets_nobody_else_a_token() -> None:
    # The victim's browser had no browser-id cookie when it claimed the state: the claim
    # is as firm as any. A signed-in attacker presenting the state gets no token, whether
    # it comes with a cookie of its own or with none.
    dep = CoreDeployment()
    victim = CoreBrowser(dep)
    login_url = victim.start_login(SHOP + "/orders")
    assert victim.get(login_url).passed  # claimed, by a cookieless request
    mallory = CoreBrowser(dep)
    mallory.sign_in(LOGIN, user="bob")
    minted = mallory.get(login_url)
    assert minted.status == 403 and minted.reason == "state_taken", minted
    mallory.jar(IDP).clear()  # ...nor with no cookie at all
    mallory.get(LOGIN)
    assert mallory.post(login_url, {"username": "bob", "password": "builder"}).status == 403
    answer = victim.post(login_url, PASSWORD)
    assert _core_landed(victim, answer.location) == "/orders"


def test_a_receipt_of_another_state_proves_nothing() -> None:
    # The cookie a cookieless claim leaves names its own state: the attacker's receipt for a
    # state of their own, copied under the victim's state's name, is another browser's id.
    dep = CoreDeployment()
    victim, mallory = CoreBrowser(dep), CoreBrowser(dep)
    victim_url = victim.start_login(SHOP + "/orders")
    assert victim.get(victim_url).passed
    own_url = mallory.start_login(SHOP + "/orders")
    assert mallory.get(own_url).passed
    claims = dep.idp.claims
    jar = mallory.jar(IDP)
    jar[claims.receipt_name(_state_of(victim_url))] = jar.pop(
        claims.receipt_name(_state_of(own_url)))
    refused = mallory.post(victim_url, {"username": "bob", "password": "builder"})
    assert refused.status == 403 and refused.reason == "state_taken"


# -- passive pages and clients that keep no cookies --------------------------------------------


def _follow_without_cookies(browser: Browser, url: str, headers: dict[str, str],
                            limit: int = 10) -> tuple[Any, list[str]]:
    """GET ``url`` and follow redirects as a crawler does: no cookie is ever kept."""
    seen = [url]
    for _ in range(limit):
        for app in browser.apps.values():
            app.cookiejar.clear()
        page = browser.get(url, headers=headers)
        if page.status_int not in (301, 302, 303, 307, 308):
            return page, seen
        location = page.location
        url = location if location.startswith("http") else (
            f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{location}")
        seen.append(url)
    raise AssertionError(f"a redirect loop: {seen}")


def _core_follow_without_cookies(browser: CoreBrowser, url: str, limit: int = 10,
                                 **headers: Any) -> tuple[Any, list[str]]:
    seen = [url]
    for _ in range(limit):
        page = browser.get(url, cookie="", **headers)  # no cookie is ever kept
        if page.status not in (301, 302, 303, 307, 308):
            return page, seen
        location = page.location or ""
        url = location if location.startswith("http") else (
            f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{location}")
        seen.append(url)
    raise AssertionError(f"a redirect loop: {seen}")


def test_a_client_that_keeps_no_cookies_gets_the_passive_page_as_a_guest() -> None:
    # Crawlers and link previewers: Accept: text/html, no cookies, no fetch metadata.
    browser = CoreBrowser(CoreDeployment(remote_options={"passive": True}))
    page, hops = _core_follow_without_cookies(browser, SHOP + "/news?id=7")
    assert page.passed and page.user is None, hops
    assert hops == [SHOP + "/news?id=7"]  # not even bounced


def test_a_browser_that_comes_back_without_its_state_cookie_gets_no_403_and_no_loop(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # A browser (it sends fetch metadata) that keeps no cookies for the site: bounced, it
    # comes back with a valid answer and no cookie at all. Not an attack, not a loop.
    # End to end under each shell and store; the decisions below on the sides by hand.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    nav = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
    page, hops = _follow_without_cookies(Browser(dep), SHOP + "/news", nav)
    assert page.status_int == 200, (page.status, hops)
    assert "Set-Cookie" not in page.headers or "_checked=1" not in page.headers["Set-Cookie"]


def _follow_blocking(browser: Browser, url: str, headers: dict[str, str], *, blocked: str,
                     limit: int = 10) -> tuple[Any, list[str]]:
    """GET ``url`` and follow redirects as a browser that blocks ``blocked``'s cookies does:
    it keeps every other site's (the IdP's) and never one of that site."""
    seen = [url]
    for _ in range(limit):
        browser.apps[blocked].cookiejar.clear()
        page = browser.get(url, headers=headers)
        if page.status_int not in (301, 302, 303, 307, 308):
            return page, seen
        location = page.location
        url = location if location.startswith("http") else (
            f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{location}")
        seen.append(url)
    raise AssertionError(f"a redirect loop: {seen}")


#: A link followed from another site's page, by a browser that sends fetch metadata.
_CROSS_SITE = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate",
               "Sec-Fetch-Site": "cross-site", "Sec-Fetch-User": "?1"}


@pytest.mark.parametrize("signed_in_at_idp", [False, True], ids=["anonymous", "signed-in-at-idp"])
def test_a_browser_that_blocks_the_sites_cookies_gets_the_page_it_asked_for(
    store: SessionStore, clock: FakeClock, shell: str, signed_in_at_idp: bool
) -> None:
    # A browser (fetch metadata) blocking every cookie of the shop opens a passive page from
    # another site: bounced once, it comes back with an answer (or, signed in at the IdP, a
    # token) and no state cookie. It must end on the page it asked for, as a guest, with
    # the app seeing that page's own path and query -- not a notice, not a loop.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    browser = Browser(dep)
    if signed_in_at_idp:
        browser.sign_in(LOGIN)
    page, hops = _follow_blocking(browser, SHOP + "/news?id=7&lang=en", _CROSS_SITE,
                                  blocked="shop.test")
    assert page.status_int == 200 and page.content_type == "application/json", (
        page.status, page.text[:300], hops)
    assert page.json == {"user": None, "path": "/news", "query": "id=7&lang=en"}, hops
    # Bounced once: the page, the IdP, the callback, the page again -- and served there.
    assert [urlsplit(hop).hostname for hop in hops] == [
        "shop.test", "id.test", "shop.test", "shop.test"], hops
    assert urlsplit(hops[-1]).path == "/news", hops
    assert "Set-Cookie" not in page.headers, page.headers
    # A reload of that very address (within passive_ttl) is served at once, and so is a
    # reload long after (bounced once more, back on the page again): never a loop.
    again, reload_hops = _follow_blocking(browser, hops[-1], _CROSS_SITE, blocked="shop.test")
    assert again.status_int == 200 and reload_hops == hops[-1:], reload_hops
    clock.advance(3600)
    later, later_hops = _follow_blocking(browser, hops[-1], _CROSS_SITE, blocked="shop.test")
    assert later.status_int == 200 and len(later_hops) == 4, later_hops
    assert later.json == {"user": None, "path": "/news", "query": "id=7&lang=en"}, later_hops


@pytest.mark.parametrize(("headers", "bounced"), [
    ({"fetch_mode": "navigate"}, True),  # a browser, first visit
    ({"cookie": "theme=dark"}, True),  # it keeps this site's cookies
    ({}, False),  # neither: a crawler, a link previewer, curl
], ids=["fetch-metadata", "a-cookie", "neither"])
def test_only_a_client_that_will_come_back_with_cookies_is_bounced(
    headers: dict[str, str], bounced: bool
) -> None:
    browser = CoreBrowser(CoreDeployment(remote_options={"passive": True}))
    page = browser.get(SHOP + "/news", **headers)
    if bounced:
        assert page.status == 302 and "passive=1" in (page.location or "")
    else:
        assert page.passed and page.user is None


# -- a lost answer, retried by the same browser ------------------------------------------------


class _DropsOneAnswer:
    """Mixin: the next ``take_ticket`` runs in the store, then its answer is lost (a stall
    past the client's retries: the server ran the script, the client saw a timeout)."""

    armed = False

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        answer = super().take_ticket(key, *([] if nonce is None else [nonce]))  # type: ignore[misc]
        if type(self).armed and answer:
            type(self).armed = False
            raise StoreUnavailable("the answer was lost on the way back")
        return answer  # type: ignore[no-any-return]


def _dropping_deployment(store: SessionStore, clock: Any, shell: str,
                         request: pytest.FixtureRequest) -> tuple[Deployment, type]:
    if isinstance(store, RedisStore):
        url = request.getfixturevalue("redis_url")
        sync_cls = type("Dropping", (_DropsOneAnswer, RedisStore), {})
        dropping = sync_cls.from_url(url)
        if shell == "asgi":
            async_cls = type("AsyncDropping", (_AsyncDropsOneAnswer, AsyncRedisStore), {})
            twin = async_cls.from_url(url)
            OPEN_ASYNC_STORES.append(twin)
            return Deployment(dropping, clock, shell=shell, async_store=twin), async_cls
        return Deployment(dropping, clock, shell=shell), sync_cls
    sync_cls = type("Dropping", (_DropsOneAnswer, MemoryStore), {})
    return Deployment(sync_cls(clock=clock), clock, shell=shell), sync_cls


class _AsyncDropsOneAnswer:
    armed = False

    async def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        answer = await super().take_ticket(key, *([] if nonce is None else [nonce]))  # type: ignore[misc]
        if type(self).armed and answer:
            type(self).armed = False
            raise StoreUnavailable("the answer was lost on the way back")
        return answer  # type: ignore[no-any-return]


def test_a_callback_whose_answer_was_lost_signs_in_when_the_browser_retries_it(
    store: SessionStore, clock: FakeClock, shell: str, request: pytest.FixtureRequest
) -> None:
    dep, dropping = _dropping_deployment(store, clock, shell, request)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    dropping.armed = True
    lost = browser.get(token_url)
    assert lost.status_int == 503 and not dropping.armed  # it ran, its answer never came
    assert _landed(browser, token_url) == "/orders"  # the same browser's retry: signed in
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_a_lost_answer_is_nobody_elses_to_take(
    store: SessionStore, clock: FakeClock, shell: str, request: pytest.FixtureRequest
) -> None:
    dep, dropping = _dropping_deployment(store, clock, shell, request)
    browser = Browser(dep)
    token_url = browser.token_url_for(SHOP + "/orders")
    (name, value), = [(k, v) for k, v in browser.apps["shop.test"].cookies.items()
                      if k.startswith("sessionshare_state-")]
    dropping.armed = True
    assert browser.get(token_url).status_int == 503
    # Another browser holding the URL (history, logs) has no state cookie for its login.
    refused = Browser(dep).get(token_url)
    assert refused.status_int == 403 and reason_of(refused) == "bad_state"
    # One holding a valid state cookie for the same state that is not this browser's
    # (written by the remote itself: the strongest case) is another redemption.
    forged = Browser(dep)
    token_state = _state_of_token(dep, token_url)
    forged.apps["shop.test"].set_cookie(name, dep.shop.side.state_signer.dumps([token_state, "/"]))
    other = forged.get(token_url)
    assert other.status_int == 403 and reason_of(other) == "replayed"
    # This browser's own retry is the same redemption: signed in.
    assert _landed(browser, token_url) == "/orders"
    # Once completed, a copy of its token and state cookie replayed elsewhere is a replay.
    thief = Browser(dep)
    thief.apps["shop.test"].set_cookie(name, value)
    stolen = thief.get(token_url)
    assert stolen.status_int == 403 and reason_of(stolen) == "replayed"
    assert thief.get(SHOP + "/orders").status_int == 302  # not signed in there


def _state_of_token(dep: Deployment, token_url: str) -> str:
    from sessionshare.crypto import open_token

    side = dep.shop.side
    token = parse_qs(urlsplit(token_url).query)["token"][0]
    return open_token(side.key, token, audience=SHOP, issuer=IDP, ttl=60,
                      now=side.clock()).state


# -- a ticket the store lost ---------------------------------------------------------------------


class _LosesTickets(MemoryStore):
    """A MemoryStore that, while ``losing``, keeps each claim but loses the ticket written
    with it (the write that a failover to a replica not yet sent it, or an eviction, loses)."""

    losing = False

    def claim_state(self, key: str, owners: Any, ttl: int,
                    ticket: tuple[str, str, int] | None = None) -> bool:
        return super().claim_state(key, owners, ttl, None if self.losing else ticket)


def _losing_deployment(store: SessionStore, clock: Any, shell: str) -> Deployment:
    return Deployment(store if isinstance(store, RedisStore) else _LosesTickets(clock=clock),
                      clock, shell=shell)


def _lost_ticket_url(dep: Deployment, browser: Browser, login_url: str) -> str:
    """Open ``login_url`` signed in: the callback URL of a ticket the store then lost."""
    if isinstance(dep.store, _LosesTickets):
        dep.store.losing = True
    try:
        answer = browser.get(login_url)
    finally:
        if isinstance(dep.store, _LosesTickets):
            dep.store.losing = False
    assert answer.status_int == 303 and "?token=" in answer.location, answer
    if isinstance(dep.store, RedisStore):
        # In Redis itself, as a failover to a replica that never got the write loses it.
        tag = state_tag(_state_of(login_url))
        (key,) = dep.store.client.keys(f"sessionshare:t:{{{tag}}}*")
        dep.store.client.delete(key)
    return str(answer.location)


def test_a_ticket_the_store_lost_restarts_the_hand_off(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    dep = _losing_deployment(store, clock, shell)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")  # signed in at the IdP
    token_url = _lost_ticket_url(dep, browser, browser.start_login(BLOG + "/x"))
    back = browser.get(token_url)
    # Not a dead end: back to the page, which starts the hand-off again.
    assert back.status_int == 303 and back.location == "/x", (back.status, back.text[:300])
    again = browser.get(BLOG + "/x")
    assert again.status_int == 302 and again.location.startswith(LOGIN + "?")
    token = browser.get(again.location)
    assert token.status_int == 303
    assert _landed(browser, token.location) == "/x"
    assert browser.get(BLOG + "/x").json["user"] == "alice"


def test_a_ticket_lost_by_a_store_restart_restarts_the_hand_off(
    redis_url: str, clock: FakeClock, shell: str
) -> None:
    store = RedisStore.from_url(redis_url)
    store.client.flushdb()
    dep = Deployment(store, clock, shell=shell)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    login_url = browser.start_login(BLOG + "/x")
    token_url = browser.get(login_url).location
    store.client.flushdb()  # a restart without persistence: the session is gone too
    back = browser.get(token_url)
    assert back.status_int == 303 and back.location == "/x", (back.status, back.text[:300])
    again = browser.get(BLOG + "/x")
    form = browser.get(again.location)
    assert form.status_int == 200 and "login form" in form.text  # signed out: sign in again
    answer = browser.post(again.location, PASSWORD)
    assert _landed(browser, answer.location) == "/x"
    store.close()


def test_a_ticket_lost_twice_in_a_row_is_a_store_problem_not_a_loop(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    dep = _losing_deployment(store, clock, shell)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    first = browser.get(_lost_ticket_url(dep, browser, browser.start_login(BLOG + "/x")))
    assert first.status_int == 303 and first.location == "/x"
    second = browser.get(_lost_ticket_url(dep, browser, browser.start_login(BLOG + "/x")))
    assert second.status_int == 503 and reason_of(second) == "ticket_lost", second
    assert "Location" not in second.headers


def test_a_ticket_in_another_store_is_still_a_misconfiguration(
    request: pytest.FixtureRequest, clock: FakeClock, shell: str
) -> None:
    # Two Redis databases, each of which an IdP of this deployment has written to (each has
    # a store identity): a token from the one is never a lost ticket of the other.
    import time

    url = request.getfixturevalue("redis_url")
    idp_store, shop_store = RedisStore.from_url(url), RedisStore.from_url(url[:-1] + "2")
    shop_store.client.flushdb()
    dep = Deployment(idp_store, time.time, shell=shell)
    alone = Deployment(shop_store, time.time, key=dep.key, shell=shell)
    Browser(alone).sign_in_at(SHOP + "/orders")  # the shop's store has an IdP of its own
    browser = Browser(dep)
    browser.apps["shop.test"] = Browser(alone).apps["shop.test"]
    page = browser.get(browser.token_url_for(SHOP + "/orders"))
    assert page.status_int == 403 and reason_of(page) == "unknown_ticket"
    assert "SESSIONSHARE_STORE_URL" in page.text
    shop_store.client.flushdb()
    idp_store.close()
    shop_store.close()


# -- key rotation in any order ---------------------------------------------------------------


def _rotation_keys() -> tuple[str, str]:
    return SyncKey.generate(), SyncKey.generate()


def _idp_on(dep: Deployment, key: str, shell: str) -> Any:
    """Another IdP worker of ``dep`` (same store, app and settings) holding ``key``."""
    cls = asgi.IdpAuthMiddleware if shell == "asgi" else IdpAuthMiddleware
    app = asgi_idp_app if shell == "asgi" else idp_app
    return cls(app, store=_store_of(dep), key=key, app_url=IDP,
               known_remote_hosts=[SHOP, "http://blog.test"], cookie_secure=False,
               clock=dep.clock)


def _store_of(dep: Deployment) -> Any:
    return async_twin(dep.store) if dep.shell == "asgi" else dep.store


def test_a_login_across_idp_workers_rotating_keys_in_either_order_signs_in(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    old, new = _rotation_keys()
    dep = Deployment(store, clock, shell=shell, key=f"{new},{old}")
    old_first = _idp_on(dep, f"{old},{new}", shell)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    idp = browser.apps["id.test"]
    idp.app = dep.wsgi(old_first)  # the GET reaches a worker not switched yet
    assert browser.get(login_url).status_int == 200
    idp.app = dep.wsgi(dep.idp)  # the POST one that is
    answer = browser.post(login_url, PASSWORD)
    assert answer.status_int == 303, (answer.status, answer.text[:300])
    assert _landed(browser, answer.location) == "/orders"


def test_a_step_up_asked_under_the_new_key_is_read_by_an_idp_on_the_old_one_first(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    old, new = _rotation_keys()
    dep = Deployment(store, clock, shell=shell, key=f"{new},{old}",
                     remote_options={"max_auth_age": 300})
    browser = Browser(dep)
    browser.apps["id.test"].app = dep.wsgi(_idp_on(dep, f"{old},{new}", shell))
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    clock.advance(300 + GRACE + 1)
    away = browser.get(SHOP + "/orders")
    assert away.status_int == 302
    form = browser.get(away.location)  # signed in too long ago: the password again
    assert form.status_int == 200 and "login form" in form.text, (form.status, form.text[:200])
    answer = browser.post(away.location, PASSWORD)
    assert _landed(browser, answer.location) == "/orders"

