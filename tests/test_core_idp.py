"""The IdP's side: pending hand-offs, their limits, and what the app may not forge.

Driven by hand on a memory store (tests/coreflow.py): each decision here is
the core's, made once for both shells. Where a shell takes part -- the app's
own ``Set-Cookie`` carried onto the 303 that replaces its answer -- the test
runs under each shell.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from conftest import FakeClock, is_dead, live_session_keys
from coreflow import Answer, CoreDeployment
from coreflow import Browser as CoreBrowser
from flow import BLOG, CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment
from flow import idp_app as flow_idp_app

from sessionshare import MemoryStore
from sessionshare.core.pending import MAX_PENDING, PENDING_KEY, PENDING_TTL
from sessionshare.core.remote import RemoteSide
from sessionshare.core.session import Session


def _login_query(callback: str, state: str) -> str:
    return f"{LOGIN}?callback={quote(callback, safe='')}&state={state}"


def _own_page(answer: Answer) -> bool:
    """The request went on to the IdP app: no answer of the library's, no redirect."""
    return answer.passed and answer.location is None


def test_pending_hand_off_expires(clock: FakeClock) -> None:
    browser = CoreBrowser(CoreDeployment(clock))
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the form: the hand-off is now pending
    clock.advance(PENDING_TTL + 1)
    # Signing in much later from a plain form (no state in the URL): no stale redirect.
    assert _own_page(browser.post(LOGIN, {"username": "alice", "password": "wonderland"}))


def test_at_most_a_few_pending_hand_offs_newest_kept(clock: FakeClock) -> None:
    dep = CoreDeployment(clock)
    browser = CoreBrowser(dep)
    states = []
    for i in range(MAX_PENDING + 3):
        clock.advance(1)
        state = f"state{i:02d}" + "x" * 20
        states.append(state)
        browser.get(_login_query(SHOP + CALLBACK, state))
    (key,) = list(dep.store.sessions())
    record = dep.store.load(key, 60)
    assert record is not None

    pending = json.loads(record.fields[PENDING_KEY])
    # Pending hand-offs are named by a keyed digest of their state (issue 16, finding 3).
    assert sorted(pending) == sorted(dep.idp.pending.name(s) for s in states[-MAX_PENDING:])


def test_a_forged_pending_entry_is_never_redirected_to(clock: FakeClock) -> None:
    """The IdP app can write the pending key too; the side checks it again."""
    dep = CoreDeployment(clock)
    store = dep.store
    browser = CoreBrowser(dep)
    browser.get(_login_query(SHOP + CALLBACK, "s" * 43))
    (key,) = list(store.sessions())
    forged = {
        "s" * 43: ["https://evil.test/_sessionshare/callback", SHOP, clock()],
        "t" * 43: "not even a list",
        "u" * 43: [SHOP + CALLBACK, SHOP, "not a time"],
    }

    for state in forged:
        store.save(key, changed={PENDING_KEY: json.dumps({state: forged[state]})}, ttl=600)
        # A plain form post: the pending entry (the forged one) is all there is.
        answer = browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
        assert _own_page(answer), state
        browser.post(IDP + "/_sessionshare/logout")
        browser.get(_login_query(SHOP + CALLBACK, "s" * 43))
        (key,) = live_session_keys(store)
    # The control: an honest entry is redirected to.
    answer = browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.status == 303 and (answer.location or "").startswith(SHOP + CALLBACK)


def test_the_audience_comes_from_the_checked_callback(clock: FakeClock) -> None:
    """A pending entry whose stored origin was changed still seals for its callback's origin."""
    dep = CoreDeployment(clock)
    store = dep.store
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)
    (key,) = list(store.sessions())

    record = store.load(key, 60)
    assert record is not None
    pending = json.loads(record.fields[PENDING_KEY])
    for entry in pending.values():
        entry[1] = BLOG  # a wrong audience written behind the side's back
    store.save(key, changed={PENDING_KEY: json.dumps(pending)}, ttl=600)
    answer = browser.sign_in(login_url)
    assert answer.location is not None and answer.location.startswith(SHOP + CALLBACK)
    back = browser.get(answer.location)
    assert back.status == 303 and back.location == "/orders"


def test_signed_in_user_without_callback_just_sees_the_app(clock: FakeClock) -> None:
    browser = CoreBrowser(CoreDeployment(clock))
    browser.sign_in(LOGIN)
    assert browser.get(IDP + "/").user == "alice"
    assert _own_page(browser.get(LOGIN))


def _key(dep: CoreDeployment, idp_cookie: str | None) -> str:
    """The store key of the session the IdP's cookie value names."""
    lifecycle = dep.idp.lifecycle
    sid = lifecycle.session_id_in(f"{lifecycle.cookie.name}={idp_cookie}")
    assert sid is not None, "not a genuine IdP cookie"
    return lifecycle.session_key(sid)  # type: ignore[no-any-return]


def test_login_rotates_id_even_without_a_hand_off(clock: FakeClock) -> None:
    dep = CoreDeployment(clock)
    browser = CoreBrowser(dep)
    browser.get(_login_query(SHOP + CALLBACK, "s" * 43))
    before = browser.cookie("id.test")
    browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
    after = browser.cookie("id.test")
    assert before and after and before != after
    assert is_dead(dep.store.load(_key(dep, before), 60))
    record = dep.store.load(_key(dep, after), 60)
    assert record is not None and record.meta["a"] == int(clock())


@pytest.mark.parametrize("user", ["bob", "alice"], ids=["someone else", "the same user"])
def test_invalidate_then_sign_in_is_a_sign_in(clock: FakeClock, user: str) -> None:
    dep = CoreDeployment(clock, idp_options={"known_remote_hosts": [SHOP]})
    browser = CoreBrowser(dep)
    browser.sign_in(LOGIN)
    alice_sid = browser.cookie("id.test")
    clock.advance(100)

    def switch_user(session: Session) -> None:
        session.invalidate()
        session["user"] = user

    browser.get(IDP + "/switch", app=switch_user)
    new_sid = browser.cookie("id.test")
    assert new_sid and new_sid != alice_sid
    assert dep.store.load(_key(dep, alice_sid), 60) is None
    record = dep.store.load(_key(dep, new_sid), 60)
    assert record is not None and record.fields["user"] == json.dumps(user)
    assert record.meta["a"] == int(clock()) and PENDING_KEY not in record.fields


def test_absolute_lifetime_counts_from_the_sign_in(clock: FakeClock) -> None:
    dep = CoreDeployment(clock, idp_options={"absolute_timeout": 3600},
                         remote_options={"absolute_timeout": 3600})
    browser = CoreBrowser(dep)
    browser.get(browser.start_login(SHOP + "/orders"))  # an anonymous IdP session...
    anonymous = browser.cookie("id.test")
    for _ in range(5):
        clock.advance(600)  # ...kept alive for 50 minutes by fresh login attempts
        login_url = browser.start_login(SHOP + "/orders")
        browser.get(login_url)
    assert browser.cookie("id.test") == anonymous
    token_url = browser.sign_in(login_url).location
    assert token_url is not None
    back = browser.get(token_url)
    assert browser.get(SHOP + (back.location or "")).user == "alice"
    clock.advance(1200)  # 70 min after the first visit, 20 min after signing in
    assert browser.get(SHOP + "/orders").user == "alice"
    clock.advance(2500)  # past an hour since the sign-in: over
    assert browser.get(SHOP + "/orders").status == 302


def test_the_apps_own_cookies_ride_on_the_replacement_303(clock: FakeClock, shell: str) -> None:
    # The shell collects the app's headers and hands them to the side: under each shell.
    from flow import asgi_idp_app, idp_app

    def idp_with_a_cookie(environ: dict[str, object], start_response: Any) -> object:
        # The sign-in response sets a cookie of the app's own (a "remember my name" or
        # CSRF cookie): the browser must get it even though the middleware swaps the
        # response for its 303.
        def with_cookie(status: str, headers: list[tuple[str, str]], *exc: object) -> object:
            return start_response(status, [*headers, ("Set-Cookie", "app_pref=dark; Path=/")])

        return idp_app(environ, with_cookie)  # type: ignore[arg-type]

    async def asgi_idp_with_a_cookie(scope: Any, receive: Any, send: Any) -> None:
        async def with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"],
                                                  (b"set-cookie", b"app_pref=dark; Path=/")]}
            await send(message)

        await asgi_idp_app(scope, receive, with_cookie)

    app = asgi_idp_with_a_cookie if shell == "asgi" else idp_with_a_cookie
    dep = Deployment(MemoryStore(clock=clock), clock, shell=shell, idp=app)
    browser = Browser(dep)
    answer = browser.sign_in(browser.start_login(SHOP + "/orders"))
    assert answer.status_int == 303 and answer.location.startswith(SHOP + CALLBACK)
    cookies = answer.headers.getall("Set-Cookie")
    assert "app_pref=dark; Path=/" in cookies
    assert any(c.startswith("sessionshare=") for c in cookies)  # the session's, too
    assert answer.body == b""


@pytest.mark.parametrize("newest", [SHOP, BLOG])
def test_a_plain_sign_in_goes_to_the_newest_pending_hand_off(clock: FakeClock,
                                                             newest: str) -> None:
    # Two sign-ins pending in one IdP session (two tabs), then the form is posted to a
    # login URL with no state (a bookmarked /login): the newest attempt wins, whichever
    # order the pending entries sit in the session.
    browser = CoreBrowser(CoreDeployment(clock))
    older = BLOG if newest == SHOP else SHOP
    browser.get(_login_query(older + CALLBACK, "o" * 43))
    clock.advance(5)
    browser.get(_login_query(newest + CALLBACK, "n" * 43))
    answer = browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.status == 303
    assert (answer.location or "").startswith(newest + CALLBACK + "?token=")


# -- first mistakes: messages that say what to do (issue 13) ------------------------------


def _messages(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(event + " ")]


@pytest.mark.parametrize("entry", ["shop.test", "shop.test:80"], ids=["bare host", "host:port"])
def test_an_http_remote_listed_without_its_scheme_is_named_with_the_entry_to_write(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, entry: str) -> None:
    """The user signed in and stayed on the IdP; the log named no origin."""
    browser = CoreBrowser(CoreDeployment(clock, idp_options={"known_remote_hosts": [entry, BLOG]}))
    page = browser.get(browser.start_login(SHOP + "/orders"))
    assert page.location is None  # no hand-off, as before
    if entry == "shop.test":
        assert page.passed  # the login form
    else:
        # A bare host:port names a development server: the page says why, not the form
        # that would sign the user in and leave them on the IdP (the first-hour trial).
        text = page.body.decode()
        assert page.status == 400 and page.reason == "scheme_not_allowed"
        assert "&#x27;shop.test:80&#x27; for https only" in text
        assert "list it as http://shop.test in SESSIONSHARE_KNOWN_REMOTE_HOSTS" in text
    (line,) = _messages(caplog, "callback_rejected")
    assert "reason=scheme_not_allowed origin='http://shop.test'" in line
    assert ("list it as http://shop.test in known_remote_hosts "
            "(SESSIONSHARE_KNOWN_REMOTE_HOSTS) to allow plain http") in line


@pytest.mark.parametrize(
    ("callback", "reason", "hint"),
    [
        ("http://other.test" + CALLBACK, "host_not_allowed",
         "if it is one of your sites, list it as http://other.test in known_remote_hosts"),
        ("http://shop.test:8001" + CALLBACK, "port_not_allowed",
         "list it as http://shop.test:8001 in known_remote_hosts"),
        ("http://shop.test/cb", "path_not_allowed",
         "callbacks must go to /_sessionshare/callback: give the remote the same "
         "callback_path as the IdP"),
    ],
    ids=["host", "port", "path"],
)
def test_each_allow_list_miss_names_the_origin_and_the_fix(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, callback: str, reason: str, hint: str,
) -> None:
    browser = CoreBrowser(CoreDeployment(clock))
    assert browser.get(_login_query(callback, "s" * 43)).passed
    (line,) = _messages(caplog, "callback_rejected")
    origin = "/".join(callback.split("/")[:3])
    assert f"reason={reason} origin='{origin}' hint=" in line and hint in line


def test_a_malformed_callback_names_no_origin(
    clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    browser = CoreBrowser(CoreDeployment(clock))
    browser.get(_login_query("http://shop.test\\@evil.test" + CALLBACK, "s" * 43))
    assert _messages(caplog, "callback_rejected") == ["callback_rejected reason=bad_character"]


def test_an_http_idp_whose_allow_list_only_takes_https_warns_at_start_up(
    clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    CoreDeployment(clock, idp_options={
        "known_remote_hosts": ["*.partner.test", "blog.localhost:9101"]})
    (line,) = _messages(caplog, "allow_list_https_only:")
    assert "this IdP (http://id.test) is served over plain http" in line
    assert "list such a remote with its scheme, e.g. http://blog.localhost:9101" in line
    caplog.clear()
    CoreDeployment(clock)  # control: http entries, no warning
    assert _messages(caplog, "allow_list_https_only:") == []


@pytest.mark.parametrize("idp_url", [IDP + "/", IDP + "/signin"], ids=["root", "signin"])
def test_sign_ins_sent_to_another_path_are_named_with_the_idp_url_to_set(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, idp_url: str) -> None:
    """A 404 or 405 from the IdP app, and no log line anywhere, used to be all."""
    dep = CoreDeployment(clock)
    browser = CoreBrowser(dep)
    browser.sides[SHOP] = RemoteSide(key=dep.key, app_url=SHOP, idp_url=idp_url,
                                     cookie_secure=False, clock=clock, quiet_startup=True)
    sent = browser.get(SHOP + "/orders")
    assert sent.status == 302 and (sent.location or "").startswith(idp_url + "?callback=")
    assert _own_page(browser.get(sent.location or ""))  # the IdP app's own answer
    (line,) = _messages(caplog, "wrong_login_path")
    assert f"path={urlsplit(idp_url).path!r}" in line
    assert "not to the login path /login" in line
    assert "set that remote's idp_url (SESSIONSHARE_IDP_URL) to http://id.test/login" in line


def test_the_apps_own_query_strings_raise_no_wrong_path_warning(
    clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    browser = CoreBrowser(CoreDeployment(clock))
    browser.get(IDP + "/oauth/done?code=x&state=" + "s" * 20)  # an OAuth client's own state
    browser.get(IDP + "/?page=2")
    browser.get(_login_query(SHOP + CALLBACK, "s" * 43))  # the login path itself
    assert _messages(caplog, "wrong_login_path") == []
    # The control: a remote's sign-in request on another path is named.
    browser.get(_login_query(SHOP + CALLBACK, "s" * 43).replace("/login?", "/signin?"))
    assert len(_messages(caplog, "wrong_login_path")) == 1


def test_a_bare_host_port_entry_explains_itself_for_a_development_port(clock: FakeClock) -> None:
    """shop.localhost:8001 listed, the shop served over http on that port: the IdP's page
    says to write http://shop.localhost:8001."""
    shop = "http://shop.localhost:8001"
    dep = CoreDeployment(clock, idp_options={"known_remote_hosts": ["shop.localhost:8001"]})
    login = f"{LOGIN}?callback={quote(shop + CALLBACK, safe='')}&state={'s' * 43}"
    page = CoreBrowser(dep).get(login)
    assert page.status == 400 and page.location is None
    assert f"list it as {shop} in SESSIONSHARE_KNOWN_REMOTE_HOSTS" in page.body.decode()
    # Another port of that host is no misconfiguration of this entry: the login page.
    other = login.replace("8001", "8002")
    assert CoreBrowser(dep).get(other).passed


def test_a_sign_in_saved_before_the_response_is_never_stored_under_the_pre_login_id(
    store: Any, clock: FakeClock,
) -> None:
    """``Session.save()`` right after the sign-in: the save applies the sign-in's rules (a
    new id), so the id the browser had before -- which another browser may hold, planted
    -- never holds the user, not even until the response (session fixation)."""
    seen: dict[str, Any] = {}

    def idp(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["sessionshare.session"]
        if environ["REQUEST_METHOD"] == "POST":
            session["user"] = "alice"
            session.save()
            seen["old id dead"] = is_dead(store.load(seen["before"], 60))
            seen["live"] = live_session_keys(store)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"signed in"]
        return flow_idp_app(environ, start_response)

    browser = Browser(Deployment(store, clock, idp=idp))
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the form: the hand-off pending, the session stored
    seen["before"] = browser.store_key("id.test")
    answer = browser.post(login_url, {"username": "alice", "password": "wonderland"})
    assert seen["old id dead"] is True
    assert seen["live"] == [browser.store_key("id.test")] != [seen["before"]]
    # The sign-in recorded at the save still completes the hand-off on the way out.
    assert answer.status_int == 303 and answer.location.startswith(SHOP + CALLBACK)
    back = browser.get(answer.location)
    assert json.loads(browser.get(SHOP + back.location).text)["user"] == "alice"
