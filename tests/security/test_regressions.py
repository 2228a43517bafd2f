"""One test per bug the security suite found and that was fixed (see the issue 6 report).

Each test fails on the code before its fix and says what it guards. A bug of a
protocol decision is tested where the decision is made, on the core's sides
driven by hand (tests/coreflow.py); a bug of the shells' plumbing (changes
while a body streams, an error page after the start) through the WSGI
middleware, on memory and real Redis.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import is_dead, live_session_keys
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import (
    BLOG,
    IDP,
    LOGIN,
    PASSWORDS,
    SHOP,
    Browser,
    Deployment,
    idp_app,
    remote_app,
)

from sessionshare import (
    AllowList,
    CallbackRejected,
    IdpAuthMiddleware,
    MemoryStore,
    RemoteSessionMiddleware,
    SessionStore,
    SyncKey,
)
from sessionshare.core.pending import MAX_PENDING, PENDING_KEY

from .deploy import Events
from .harness import call, environ_for

CB = "/_sessionshare/callback"


# -- 1. Unicode callbacks the browser reads as another host ---------------------------------
# Found by the Chromium differential: the allow-list punycoded U+AB70 (Cherokee small
# letter a) as it stood, while UTS 46 -- and so every browser -- first folds it to U+13A0:
# the token's audience and the host the browser resolved were two different names. Right-to-
# left labels failed the bidi rule in the browser but passed here, and Hangul fillers were
# "alphanumeric" to Python but dropped by the browser.


@pytest.mark.parametrize(
    "host",
    [
        "\uab70.partner.test",  # Cherokee small a: Chrome says xn--58d, Python said xn--kz9a
        "\u00df.partner.test",  # sharp s: "ss" or xn--zca depending on the IDNA version
        "\u03c2.partner.test",  # final sigma: folds to sigma
        "a\u0662.partner.test",  # Arabic-Indic digit after a Latin letter: bidi rule
        "\u0661.partner.test",  # Arabic-Indic digit alone
        "\u05d0.partner.test",  # Hebrew letter
        "\u115fa.partner.test",  # Hangul choseong filler: dropped by the browser
        "a\u1160.partner.test",  # Hangul jungseong filler
        # Found later by the generated differential batches: a Unicode label that starts
        # with "xn--" became "xn--xn--..." here; UTS 46 forbids it and Chrome refuses it.
        "xn--b\u00fccher.partner.test",
        "xn--\u00fc.partner.test",
        # And an A-label that is no valid punycode, or decodes to nothing a browser accepts:
        # Chrome checks it as soon as another label of the host is Unicode.
        "xn--0.\u0101.partner.test",
        "xn--0.partner.test",
        "xn--a.partner.test",  # decodes to U+0080, a control character
        "xn--abc-.partner.test",  # decodes to plain "abc"
        "xn--kz9a.partner.test",  # Cherokee small a, the A-label of fix 1's first case
        "xn--4gbrim.partner.test",  # Arabic: right-to-left
    ],
)
def test_unicode_labels_browsers_read_differently_are_refused(host: str) -> None:
    allow = AllowList(["*.partner.test"])
    with pytest.raises(CallbackRejected) as caught:
        allow.check_callback(f"https://{host}{CB}")
    assert caught.value.reason == "bad_host"


def test_unicode_labels_browsers_agree_on_still_pass() -> None:
    allow = AllowList(["*.partner.test", "b\u00fccher.test"])
    assert allow.check_callback(f"https://b\u00fccher.partner.test{CB}").url == (
        f"https://xn--bcher-kva.partner.test{CB}"
    )
    a_labels = ("xn--bcher-kva", "XN--BCHER-KVA", "xn--mnchen-3ya", "xn--e1afmkfd", "xn--r8jz45g")
    for a_label in a_labels:
        assert allow.is_allowed_callback(f"https://{a_label}.partner.test{CB}"), a_label
    assert allow.check_callback(f"https://b\u00fccher.test{CB}").origin == (
        "https://xn--bcher-kva.test"
    )


# -- 2. The state cookie aged by the wall clock, not the middleware's --------------------------
# itsdangerous timestamps with time.time(); the token, the ticket and the pending hand-offs use
# the middleware's clock. With an injected clock the state cookie never expired.


def test_state_cookie_expires_by_the_middleware_clock() -> None:
    dep = CoreDeployment()
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    dep.clock.advance(10 * 60 + 1)  # past state_ttl, wall clock unmoved
    url = browser.sign_in(login_url).location
    assert url is not None
    refused = browser.get(url)
    assert refused.status == 403 and refused.reason == "bad_state"


def test_state_cookie_within_its_lifetime_still_works() -> None:
    dep = CoreDeployment()
    browser = CoreBrowser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    dep.clock.advance(10 * 60 - 5)
    url = browser.sign_in(login_url).location
    assert url is not None and browser.get(url).status == 303


# -- 3. A comma inside another cookie's value read as a cookie separator ---------------------
# Browsers join cookies with "; " only and accept commas inside values. Reading "," as a
# separator let a cookie *value* carry a second cookie: a sibling host that can toss a
# harmless-looking `foo=x,__Host-sessionshare=<its own session>` cookie (Domain=parent) got its
# session adopted, defeating the __Host- prefix that exists to stop exactly that (session
# fixation / login CSRF through cookie tossing).


def _https_remote(store: SessionStore, key: str, clock: Callable[[], float]) -> object:
    return RemoteSessionMiddleware(
        remote_app, store=store, key=key, app_url="https://shop.test",
        idp_url="https://id.test/login", cookie_name="__Host-sessionshare", clock=clock,
    )


def _session_of(store: SessionStore, key: str, clock: Callable[[], float], user: str) -> str:
    """``user``'s session, signed in at the IdP and joined by the remote of
    :func:`_https_remote`: that remote's own cookie value for it."""
    idp = IdpAuthMiddleware(idp_app, store=store, key=key, app_url="https://id.test",
                            known_remote_hosts=["shop.test"], cookie_name="__Host-sessionshare",
                            clock=clock)
    body = f"username={user}&password={'wonderland' if user == 'alice' else 'builder'}".encode()
    reply = call(idp, environ_for("POST", "/login", host="id.test", extra={
        "wsgi.url_scheme": "https", "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}))
    (cookie,) = [c for c in reply.cookies() if c.startswith("__Host-sessionshare=")]
    sid = idp.side.lifecycle.session_id_in(cookie.split(";", 1)[0])
    assert sid is not None
    remote = _https_remote(store, key, clock).side.lifecycle
    assert store.mark(remote.session_key(sid), {"o:https://shop.test": int(clock())}, 60)
    return remote.cookie_value(sid)


@pytest.mark.parametrize("separator", [",", ", "])
def test_cookie_inside_another_cookies_value_is_not_a_cookie(clock: Callable[[], float],
                                                              separator: str) -> None:
    store, key = MemoryStore(clock=clock), SyncKey.generate()
    remote = _https_remote(store, key, clock)
    victim = _session_of(store, key, clock, "alice")
    attacker = _session_of(store, key, clock, "bob")
    header = f"foo=x{separator}__Host-sessionshare={attacker}; __Host-sessionshare={victim}"
    reply = call(remote, environ_for("GET", "/orders", cookie=header,  # type: ignore[arg-type]
                                     extra={"wsgi.url_scheme": "https"}))
    assert reply.status == 200
    assert b'"user": "alice"' in reply.body


def test_session_cookie_is_still_found_among_others(clock: Callable[[], float]) -> None:
    store, key = MemoryStore(clock=clock), SyncKey.generate()
    remote = _https_remote(store, key, clock)
    sid = _session_of(store, key, clock, "alice")
    for header in (f"__Host-sessionshare={sid}", f"a=1; __Host-sessionshare={sid}; b=2",
                   f'a=1;__Host-sessionshare="{sid}"', f"  __Host-sessionshare={sid}  ;x=y"):
        reply = call(remote, environ_for("GET", "/orders", cookie=header,  # type: ignore[arg-type]
                                         extra={"wsgi.url_scheme": "https"}))
        assert b'"user": "alice"' in reply.body, header


def test_state_cookie_inside_another_cookies_value_is_not_a_state_cookie() -> None:
    # Login CSRF variant: the attacker's own signed state cookie smuggled in a value.
    dep = CoreDeployment()
    attacker = CoreBrowser(dep)
    url = attacker.token_url_for(SHOP + "/orders", user="bob")
    name, value = attacker.state_cookie()
    victim = CoreBrowser(dep)
    refused = victim.get(url, cookie=f"lang=en,{name}={value}")
    assert refused.status == 403 and refused.reason == "bad_state"
    # The control: the same cookie on its own is the attacker's state (and spent now).
    assert victim.get(url, cookie=f"lang=en; {name}={value}").reason == "replayed"


# -- 4. Prefix protection bypassed by an equivalent spelling of the path ----------------------
# protect=["/orders"] compared the raw PATH_INFO, but Flask (werkzeug) routes "//orders" and
# "///orders/5" to the /orders views: the page ran without the sign-in the middleware is
# there to enforce (path-equivalence, CWE-41; the "//" bypass of prefix-based access rules).


def _flask_shop() -> object:
    import flask

    app = flask.Flask("shop")

    @app.route("/orders")
    def orders() -> str:
        return f"ORDERS for {flask.request.environ.get('REMOTE_USER')}"

    @app.route("/orders/<int:number>")
    def order(number: int) -> str:
        return f"ORDER {number} for {flask.request.environ.get('REMOTE_USER')}"

    @app.route("/about")
    def about() -> str:
        return "public"

    return app


@pytest.mark.parametrize("path", ["//orders", "///orders/5", "/./orders", "/x/../orders",
                                  "/orders/./5", "//orders/../orders"])
def test_protected_prefix_holds_for_equivalent_paths(clock: Callable[[], float],
                                                     path: str) -> None:
    remote = RemoteSessionMiddleware(
        _flask_shop().wsgi_app, store=MemoryStore(clock=clock), key=SyncKey.generate(),  # type: ignore[attr-defined]
        app_url=SHOP, idp_url=LOGIN, protect=["/orders"], cookie_secure=False, clock=clock,
    )
    reply = call(remote, environ_for("GET", path))
    assert reply.status == 302 and reply.location is not None
    assert reply.location.startswith(LOGIN + "?callback=")
    assert b"ORDER" not in reply.body


def test_unprotected_paths_stay_public(clock: Callable[[], float]) -> None:
    remote = RemoteSessionMiddleware(
        _flask_shop().wsgi_app, store=MemoryStore(clock=clock), key=SyncKey.generate(),  # type: ignore[attr-defined]
        app_url=SHOP, idp_url=LOGIN, protect=["/orders"], cookie_secure=False, clock=clock,
    )
    for path in ("/about", "//about"):
        reply = call(remote, environ_for("GET", path))
        assert reply.status == 200 and reply.body == b"public", path
    # Not sent to sign in (Flask itself does not resolve dot segments: 404).
    reply = call(remote, environ_for("GET", "/x/../about"))
    assert reply.status == 404 and reply.location is None


# -- 5. A token refused for its state stayed redeemable by whoever holds that state -----------
# Login-URL injection (the OAuth "authorization code injection" class, RFC 9700 section 4.5):
# the attacker starts a login at the remote in their own browser (and so holds the state
# cookie for S), then has the victim open the genuine IdP link `/login?callback=...&state=S`.
# The victim, signed in, is sent back with a token for *their* session bound to S; their
# browser has no cookie for S, so the remote refuses it (bad_state) -- but left the ticket
# live. The token now sits in the remote's access log and the victim's history, which is
# exactly where DESIGN says tokens end up; with it the attacker redeemed the victim's session.


def test_token_refused_for_its_state_cannot_be_redeemed_elsewhere() -> None:
    dep = CoreDeployment()
    attacker, victim = CoreBrowser(dep), CoreBrowser(dep)
    injected_login_url = attacker.start_login(SHOP + "/orders")  # attacker holds S's cookie
    victim.sign_in_at(SHOP + "/orders")  # the victim is signed in everywhere
    handed = victim.get(injected_login_url)  # the victim follows the attacker's link
    assert handed.status == 303 and handed.location is not None
    token_url = handed.location
    refused = victim.get(token_url)
    assert refused.status == 403 and refused.reason == "bad_state"
    # The attacker reads the token from a log and presents it with the state cookie.
    stolen = attacker.get(token_url)
    assert stolen.status == 403 and stolen.reason == "replayed"
    assert attacker.cookie("shop.test") is None
    assert attacker.get(SHOP + "/orders").status == 302


def test_a_state_mismatch_does_not_burn_tokens_that_fail_earlier() -> None:
    # Only a genuine token is spent: a forged or foreign one never reaches the store.
    browser = CoreBrowser(CoreDeployment())
    url = browser.token_url_for(SHOP + "/orders")
    base, _, token = url.partition("?token=")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert browser.get(f"{base}?token={tampered}").status == 403
    assert browser.get(url).status == 303


# -- 6. A malformed pending record made every later sign-in of the session a 500 --------------
# Issue 16, finding 6. The IdP app shares the session with the middleware and can write
# `sessionshare.pending` (a bug, a migration, a "reset" helper). The middleware sorted the
# entries and took `max()` of them before checking a single one: a short list raised
# IndexError, a string or a None TypeError, on every sign-in of that session from then on.

_MALFORMED_PENDING: dict[str, object] = {
    "a-list": ["x", "y"],
    "a-string": "garbage",
    "a-number": 5,
    "short-lists": {f"state{i:02d}" + "x" * 20: [SHOP + CB] for i in range(MAX_PENDING + 1)},
    "a-string-entry": {"a" * 43: [SHOP + CB, SHOP, 1], "b" * 43: "abc"},
    "a-none-entry": {"c" * 43: None},
    "mixed-times": {"d" * 43: [SHOP + CB, SHOP, "later"], "e" * 43: [SHOP + CB, SHOP, 1]},
    "nested-time": {"f" * 43: [SHOP + CB, SHOP, [1]]},
    "bad-key": {"no": [SHOP + CB, SHOP, 1], "g" * 43: [SHOP + CB, SHOP, None]},
}


def _plant(browser: CoreBrowser, shape: str) -> None:
    """The IdP app writes ``shape`` under the pending key of this browser's session."""
    def app(session: Any) -> None:
        session[PENDING_KEY] = _MALFORMED_PENDING[shape]

    assert browser.get(IDP + "/plant", app=app).passed


@pytest.mark.parametrize("shape", sorted(_MALFORMED_PENDING))
def test_a_malformed_pending_record_is_dropped_not_a_500(shape: str) -> None:
    dep = CoreDeployment(idp_options={"known_remote_hosts": [SHOP]})
    # A plain sign-in (no state in the URL) reads every pending entry to pick the newest.
    browser = CoreBrowser(dep)
    browser.get(browser.start_login(SHOP + "/orders"))
    _plant(browser, shape)
    answer = browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.passed and answer.location is None, answer
    assert browser.get(IDP + "/").user == "alice"
    # A new login request adds to (and trims) the pending record; its sign-in still works.
    other = CoreBrowser(dep)
    other.get(other.start_login(SHOP + "/orders"))
    _plant(other, shape)
    login_url = other.start_login(SHOP + "/orders?again=1")
    assert other.get(login_url).passed  # the form
    answer = other.post(login_url, {"username": "alice", "password": "wonderland"})
    assert answer.status == 303 and answer.location is not None
    assert answer.location.startswith(SHOP + CB + "?token=")
    back = other.get(answer.location)
    assert back.status == 303 and back.location == "/orders?again=1"


# -- 10. Signing in as another user over a signed-in session kept the session id -------------
# Issue 16, finding 10. Only anonymous -> signed in rotated the id. An attacker signs in
# as bob and plants that session id in the victim's browser (a sibling subdomain can set
# the cookie); the victim signs in as alice without getting a new cookie, and the
# attacker's browser, still holding the id, is alice at the IdP -- and through a hand-off
# at every remote.


def test_signing_in_as_another_user_rotates_the_session_id() -> None:
    dep = CoreDeployment()
    attacker, victim = CoreBrowser(dep), CoreBrowser(dep)
    attacker.sign_in(LOGIN, user="bob")
    bob_sid = attacker.cookie("id.test")
    assert bob_sid is not None
    (bob_key,) = dep.store.sessions()
    victim.set_cookie(IDP, "sessionshare", bob_sid)  # the planted cookie
    assert victim.get(IDP + "/").user == "bob"
    answer = victim.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.passed
    alice_sid = victim.cookie("id.test")
    assert alice_sid is not None and alice_sid != bob_sid
    assert victim.get(IDP + "/").user == "alice"
    # bob's id is dead: the attacker's browser is nobody, not alice.
    assert is_dead(dep.store.load(bob_key, 60))
    assert attacker.get(IDP + "/").user is None
    assert attacker.get(attacker.start_login(SHOP + "/orders")).passed  # the form


def test_signing_in_again_as_the_same_user_keeps_the_session() -> None:
    browser = CoreBrowser(CoreDeployment())
    browser.sign_in(LOGIN)
    before = browser.cookie("id.test")
    browser.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert browser.cookie("id.test") == before


# -- 3. Login CSRF with a leaked state --------------------------------------------------------
# Issue 16, finding 3. The state of a login attempt is a bearer value at the remote: whoever
# holds it can have the IdP mint a token for it (for their own session) and get the victim's
# browser, which holds the state cookie, to open that token -- the victim is then signed in
# at the shop as the attacker. The pending record of the anonymous IdP session held the
# state in plain text, readable by the IdP app (debug pages, logs) and in a store dump.


def test_a_pending_record_holds_no_usable_state() -> None:
    dep = CoreDeployment(idp_options={"known_remote_hosts": [SHOP]})
    victim = CoreBrowser(dep)
    login_url = victim.start_login(SHOP + "/orders")
    state = parse_qs(urlsplit(login_url).query)["state"][0]
    assert victim.get(login_url).passed  # the form: the hand-off is pending
    shown: dict[str, Any] = {}
    victim.get(IDP + "/debug", app=lambda session: shown.update(session))  # what the app sees
    assert PENDING_KEY in shown and state not in json.dumps(shown)
    # The sign-in still completes, with the state back from the URL or the sealed copy.
    answer = victim.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.status == 303 and answer.location is not None
    back = victim.get(answer.location)
    assert back.status == 303 and back.location == "/orders"


def test_a_leaked_state_gets_no_token_for_another_session() -> None:
    dep = CoreDeployment()
    victim, mallory = CoreBrowser(dep), CoreBrowser(dep)
    login_url = victim.start_login(SHOP + "/orders")
    assert victim.get(login_url).passed  # the victim sits at the login form
    mallory.sign_in(LOGIN, user="bob")  # the attacker's own account at the IdP
    minted = mallory.get(login_url)  # the leaked login URL (a log, the history)
    # The victim's browser presented the state first: no token for anybody else.
    assert minted.status == 403 and minted.reason == "state_taken", minted
    assert "?token=" not in (minted.location or "")
    assert victim.cookie("shop.test") is None
    # The victim's own sign-in still goes through.
    answer = victim.post(login_url, {"username": "alice", "password": "wonderland"})
    assert answer.location is not None and victim.get(answer.location).status == 303


# -- 11. Session changes after the headers went out -------------------------------------------
# Security review finding 11. Changes made while a body streams are persisted when it closes,
# when no cookie can reach the browser any more, yet that persist ran the ordinary plan:
# regenerate() deleted the id the browser held and sent none (every app then sent the user to
# sign in, the data sat under an id nobody held); a sign-in was saved under the pre-login id
# -- one another browser may hold, planted -- with no rotation and no sign-in time (session
# fixation); a new visitor's first write vanished without a word. And a second start_response
# (exc_info: an error page after the start, which PEP 3333 allows) persisted again and sent
# headers without the cookie the first ones carried.

Change = Callable[[Any, dict[str, Any]], object]


def _streaming(app: Callable[..., Any], late: dict[str, Change]) -> Callable[..., Any]:
    """``app``, except that for a ``"METHOD /path"`` of ``late`` the answer starts first and
    ``late[...](session, environ)`` changes the session while the body streams."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        change = late.get(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        if change is None:
            return app(environ, start_response)

        def body() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first part, "
            change(environ["sessionshare.session"], environ)
            yield b"second part"

        return body()

    return wrapped


def _failing_after_start(app: Callable[..., Any], when: str) -> Callable[..., Any]:
    """``app``, whose answer to ``when`` (``"METHOD /path"``) then breaks: an error page
    replaces its headers, with ``exc_info``, before any byte of the body went out."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = app(environ, start_response)
        if f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}" != when:
            return body
        getattr(body, "close", lambda: None)()
        try:
            raise RuntimeError("the page broke after its headers were set")
        except RuntimeError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"something went wrong"]

    return wrapped


def _shop_serving(dep: Deployment, app: Callable[..., Any]) -> RemoteSessionMiddleware:
    """The deployment's shop (the same options) around another app."""
    return RemoteSessionMiddleware(
        app, store=dep.store, key=dep.key, app_url=SHOP, idp_url=LOGIN,
        protect=["/orders", "/read", "/write"], cookie_secure=False, clock=dep.clock,
    )


def _idp_serving(dep: Deployment, app: Callable[..., Any]) -> IdpAuthMiddleware:
    """The deployment's IdP (the same options) around another app."""
    return IdpAuthMiddleware(app, store=dep.store, key=dep.key, app_url=IDP,
                             known_remote_hosts=[SHOP, BLOG], cookie_secure=False, clock=dep.clock)


def _sign_in_from_the_form(session: Any, environ: dict[str, Any]) -> None:
    form = parse_qs(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])).decode())
    name = form["username"][0]
    if PASSWORDS.get(name) == form["password"][0]:
        session["user"] = name


def _session_keys(store: SessionStore, dep: Deployment) -> list[str]:
    """The live sessions' keys (a moved id's short-lived marker is no session)."""
    return live_session_keys(store, dep.idp.side.lifecycle.key_prefix)


def _refusals(events: Events) -> list[str]:
    return [m for m in events.messages if m.startswith("late_change_refused ")]


def test_regenerate_while_streaming_keeps_the_session_and_its_cookie(
    store: SessionStore, clock: Callable[[], float], events: Events
) -> None:
    # At the IdP, which moves its sessions on regenerate() (a remote keeps the id of a
    # session it joined anyway: finding 9, tests/security/test_session_binding.py).
    dep = Deployment(store, clock)
    dep.idp = _idp_serving(dep, _streaming(idp_app, {
        "GET /regenerate-late": lambda session, environ: session.regenerate(),
    }))
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    idp_cookie = browser.cookie("id.test")
    events.clear()
    page = browser.get(IDP + "/regenerate-late")
    assert page.status_int == 200 and page.body == b"first part, second part"
    assert "Set-Cookie" not in page.headers and browser.cookie("id.test") == idp_cookie
    # Still signed in, here and at the shop: the id both cookies name is alive.
    assert browser.get(IDP + "/").text == "idp home user=alice"
    orders = browser.get(SHOP + "/orders")
    assert orders.status_int == 200 and orders.json["user"] == "alice"
    assert store.load(browser.store_key("id.test"), 60) is not None
    (refused,) = _refusals(events)
    assert "reason=regenerate" in refused and "before start_response" in refused


def test_a_sign_in_while_streaming_is_not_recorded_under_the_pre_login_id(
    store: SessionStore, clock: Callable[[], float], events: Events
) -> None:
    dep = Deployment(store, clock)
    dep.idp = _idp_serving(dep, _streaming(idp_app, {"POST /login": _sign_in_from_the_form}))
    attacker, victim = Browser(dep), Browser(dep)
    attacker.get(attacker.start_login(SHOP + "/orders"))  # the form: an anonymous session
    sid = attacker.cookie("id.test")
    assert sid is not None
    victim.apps["id.test"].set_cookie("sessionshare", sid)  # the planted cookie
    events.clear()
    answer = victim.post(LOGIN, {"username": "alice", "password": "wonderland"})
    assert answer.status_int == 200 and "Set-Cookie" not in answer.headers
    # The attacker's browser, which holds that id, is not alice -- nor is anyone.
    assert attacker.get(IDP + "/").text == "idp home user=None"
    assert victim.get(IDP + "/").text == "idp home user=None"
    record = store.load(attacker.store_key("id.test"), 60)
    assert record is not None and "user" not in record.fields
    assert "a" not in record.meta  # no sign-in time either
    (refused,) = _refusals(events)
    assert "reason=sign_in" in refused and "before start_response" in refused


def test_a_sign_in_while_streaming_over_a_signed_in_session_is_not_recorded(
    store: SessionStore, clock: Callable[[], float], events: Events
) -> None:
    # Finding 10's attack through the late path: bob's planted session becomes alice's.
    dep = Deployment(store, clock)
    attacker = Browser(dep)
    attacker.sign_in(LOGIN, user="bob")  # an ordinary sign-in: bob's session exists
    bob_sid = attacker.cookie("id.test")
    assert bob_sid is not None
    dep.idp = _idp_serving(dep, _streaming(idp_app, {"POST /login": _sign_in_from_the_form}))
    victim = Browser(dep)
    victim.apps["id.test"].set_cookie("sessionshare", bob_sid)
    events.clear()
    assert victim.post(LOGIN, {"username": "alice", "password": "wonderland"}).status_int == 200
    assert attacker.get(IDP + "/").text == "idp home user=bob"
    record = store.load(attacker.store_key("id.test"), 60)
    assert record is not None and record.fields["user"] == '"bob"'
    (refused,) = _refusals(events)
    assert "reason=sign_in" in refused


def test_a_first_write_while_streaming_is_not_stored_and_says_why(
    store: SessionStore, clock: Callable[[], float], events: Events
) -> None:
    dep = Deployment(store, clock)
    dep.shop = _shop_serving(dep, _streaming(remote_app, {
        "GET /cart-late": lambda session, environ: session.__setitem__("cart", [1]),
    }))
    browser = Browser(dep)
    page = browser.get(SHOP + "/cart-late")
    assert page.status_int == 200 and "Set-Cookie" not in page.headers
    assert _session_keys(store, dep) == []  # no orphan that no browser holds
    (refused,) = _refusals(events)
    assert "reason=new_session" in refused
    assert "write the session before start_response" in refused


@pytest.mark.parametrize("then_write", [False, True], ids=["logout", "logout then write"])
def test_a_logout_while_streaming_still_ends_the_session_everywhere(
    store: SessionStore, clock: Callable[[], float], events: Events, then_write: bool
) -> None:
    def log_out(session: Any, environ: dict[str, Any]) -> None:
        session.invalidate()
        if then_write:
            session["farewell"] = "bye"  # would start a new session: it has no cookie now

    dep = Deployment(store, clock)
    dep.shop = _shop_serving(dep, _streaming(remote_app, {"GET /logout-late": log_out}))
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    events.clear()
    assert browser.get(SHOP + "/logout-late").status_int == 200
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert browser.get(SHOP + "/orders").status_int == 302
    assert _session_keys(store, dep) == []
    assert [("reason=new_session" in m) for m in _refusals(events)] == ([True] if then_write
                                                                        else [])


def _cart_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["sessionshare.session"]["cart"] = [1]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"added"]


def test_an_error_page_after_the_start_still_sets_the_session_cookie(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock)
    dep.shop = _shop_serving(dep, _failing_after_start(_cart_app, "GET /cart"))
    browser = Browser(dep)
    page = browser.get(SHOP + "/cart")
    assert page.status_int == 500 and page.body == b"something went wrong"
    sid = browser.cookie("shop.test")
    assert sid is not None  # the cookie of the session the first headers announced
    assert page.headers["Vary"] == "Cookie"
    record = store.load(browser.store_key("shop.test"), 60)
    assert record is not None and record.fields == {"cart": "[1]"}
    assert _session_keys(store, dep) == [browser.store_key("shop.test")]  # persisted once


def test_an_error_page_after_a_sign_in_keeps_the_sign_in_and_its_hand_off(
    store: SessionStore, clock: Callable[[], float], events: Events
) -> None:
    dep = Deployment(store, clock)
    dep.idp = _idp_serving(dep, _failing_after_start(idp_app, "POST /login"))
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    assert browser.get(login_url).status_int == 200  # the form: the hand-off is pending
    events.clear()
    answer = browser.post(login_url, {"username": "alice", "password": "wonderland"})
    # The 303 back to the shop that replaced the app's answer stands; it was made once.
    assert answer.status_int == 303 and answer.location.startswith(SHOP + CB + "?token=")
    assert events.count("login") == 1 and events.count("ticket_issued") == 1
    back = browser.get(answer.location)
    assert back.status_int == 303 and back.location == "/orders"
    orders = browser.get(SHOP + "/orders")
    assert orders.status_int == 200 and orders.json["user"] == "alice"
    assert browser.get(IDP + "/").text == "idp home user=alice"


def test_a_state_another_browser_presented_first_is_refused_signed_out_too() -> None:
    # Finding 3, the signed-out path: the claim is made when the login page is first
    # shown, so a second browser opening the same login URL gets no form to sign in with.
    dep = CoreDeployment()
    first, second = CoreBrowser(dep), CoreBrowser(dep)
    login_url = first.start_login(SHOP + "/orders")
    assert first.get(login_url).passed
    taken = second.get(login_url)
    assert taken.status == 403 and taken.reason == "state_taken"
    assert first.get(login_url).passed  # the first browser still may
