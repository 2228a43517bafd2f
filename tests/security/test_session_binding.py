"""Issue 16's session-binding findings: each test fails on the code before its fix.

- finding 1: an app's cookie is its own, and a remote serves a protected path
  only to a session its origin joined through an authorized hand-off;
- finding 5: the IdP's idle and absolute limits travel with the session;
- finding 7: sessions belong to a deployment (store keys keyed by the sync key);
- finding 9: ``regenerate()`` at a remote keeps the one shared session;
- finding 10: the default cookie name is ``__Host-`` where the origin allows it.

Every test runs on MemoryStore and on real Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment, idp_app, reason_of, remote_app
from webtest import TestApp

from sessionshare import (
    IdpAuthMiddleware,
    MemoryStore,
    RemoteSessionMiddleware,
    SessionStore,
    SyncKey,
)
from sessionshare.core.lifecycle import Lifecycle

COOKIE = "sessionshare"


def sid_at(app: Any, cookie_value: str | None) -> str | None:
    """The session id an app reads from its own cookie value (None: not genuine there)."""
    lifecycle: Lifecycle = app.side.lifecycle
    return lifecycle.session_id_in(f"{COOKIE}={cookie_value}") if cookie_value else None


def stored_ttl(store: SessionStore, key: str, clock: Callable[[], float]) -> float:
    """Seconds until the store drops ``key`` (Redis TTL, or MemoryStore's expiry by ``clock``,
    the clock the fixture gave it)."""
    if isinstance(store, MemoryStore):
        return store.sessions()[key].expires - clock()
    return float(store.client.ttl(key))  # type: ignore[attr-defined]


# -- finding 1: a copied cookie opens nothing; authorization is checked per request ------


def _refusing(origin: str) -> Callable[[Any, str], bool]:
    return lambda session, remote: remote != origin


@pytest.mark.parametrize("source", ["shop.test", "id.test"])
def test_a_cookie_copied_from_another_app_is_worthless_there(
    store: SessionStore, clock: Callable[[], float], source: str
) -> None:
    # The review's attack: the IdP refuses blog to alice, so she pastes her shop (or IdP)
    # cookie into blog. Before: 200 as alice at blog. Now: blog does not know the cookie,
    # sends her through the hand-off, and the IdP's authorize hook says no.
    dep = Deployment(store, clock, idp_options={"authorize": _refusing(BLOG)})
    browser = Browser(dep)
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    stolen = browser.cookie(source)
    assert stolen is not None
    browser.apps["blog.test"].set_cookie(COOKIE, stolen)
    page = browser.get(BLOG + "/private")
    assert page.status_int == 302 and page.location.startswith(LOGIN + "?"), page
    refused = browser.get(page.location)
    assert refused.status_int == 403 and reason_of(refused) == "not_authorized"
    # And an API call with the copied cookie is not served either.
    api = browser.apps["blog.test"].get("/private", headers={"Accept": "application/json"},
                                        status="*")
    assert api.status_int == 401 and api.json["error"] == "not_authenticated"


def test_each_app_holds_its_own_cookie_value_for_the_one_session(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    browser.sign_in_at(BLOG + "/x")
    values = {host: browser.cookie(host) for host in ("id.test", "shop.test", "blog.test")}
    assert len(set(values.values())) == 3, "every app has a value of its own"
    ids = {sid_at(app, values[host]) for host, app in
           (("id.test", dep.idp), ("shop.test", dep.shop), ("blog.test", dep.blog))}
    assert len(ids) == 1 and None not in ids, "and all of them name the one shared session"
    # Each value is genuine only where it was made.
    assert sid_at(dep.blog, values["shop.test"]) is None
    assert sid_at(dep.shop, values["id.test"]) is None


def test_the_session_records_which_remotes_joined_and_when(
    store: SessionStore, clock: Any
) -> None:
    seen: dict[str, Any] = {}

    def idp_with_apps(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] == "/apps":
            seen.update(environ["sessionshare.session"].apps)
        return idp_app(environ, start_response)

    dep = Deployment(store, clock, idp=idp_with_apps)
    browser = Browser(dep)
    joined_shop = int(clock())
    browser.sign_in_at(SHOP + "/orders")
    clock.advance(7)
    browser.sign_in_at(BLOG + "/x")
    browser.get(IDP + "/apps")
    assert seen == {SHOP: joined_shop, BLOG: joined_shop + 7}


def test_a_withdrawn_remote_stops_serving_on_its_next_request(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    allowed = {SHOP, BLOG}

    def idp_withdrawing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] == "/withdraw-blog":
            allowed.discard(BLOG)
            environ["sessionshare.session"].withdraw(BLOG)
        return idp_app(environ, start_response)

    dep = Deployment(store, clock, idp=idp_withdrawing,
                     idp_options={"authorize": lambda session, origin: origin in allowed})
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    assert browser.sign_in_at(BLOG + "/x").json["user"] == "alice"
    assert browser.get(BLOG + "/x").status_int == 200
    browser.get(IDP + "/withdraw-blog")
    # The very next request at blog, with blog's own genuine cookie, is not served...
    again = browser.get(BLOG + "/x")
    assert again.status_int == 302 and again.location.startswith(LOGIN + "?")
    # ...and the hand-off it starts asks the hook, which now refuses.
    assert reason_of(browser.get(again.location)) == "not_authorized"
    # The shop is unaffected.
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_a_remote_serves_a_signed_in_session_it_never_joined_only_after_a_handoff(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # A session that is signed in but that this origin never joined -- as a remote
    # would see it if its own cookie pointed at one -- goes to the IdP, never to the app.
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    sid = sid_at(dep.shop, browser.cookie("shop.test"))
    assert sid is not None
    forged = dep.blog.side.lifecycle.cookie_value(sid)  # as if blog had made it
    browser.apps["blog.test"].set_cookie(COOKIE, forged)
    page = browser.get(BLOG + "/x")
    assert page.status_int == 302 and page.location.startswith(LOGIN + "?")


# -- finding 5: the IdP's limits travel with the session ----------------------------------


def _strict_idp(store: SessionStore, clock: Callable[[], float]) -> Deployment:
    return Deployment(store, clock,
                      idp_options={"idle_timeout": 300, "absolute_timeout": 3600},
                      remote_options={"idle_timeout": 1800, "absolute_timeout": 28800})


def test_a_remote_slides_the_idle_expiry_only_as_far_as_the_idps_limit(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = _strict_idp(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    assert browser.get(SHOP + "/orders").status_int == 200  # a read that slides the expiry
    sid = sid_at(dep.shop, browser.cookie("shop.test"))
    assert sid is not None
    ttl = stored_ttl(store, dep.shop.side.lifecycle.session_key(sid), clock)
    assert 0 < ttl <= 300, f"the shop slid the session to {ttl} s, past the IdP's 300"


def test_after_the_idps_idle_limit_nobody_sees_the_user(clock: Any) -> None:
    # Memory store only: its expiry follows the test clock (Redis keeps real time).
    store = MemoryStore(clock=clock)
    dep = _strict_idp(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    assert browser.get(SHOP + "/orders").status_int == 200
    clock.advance(20 * 60)  # idle 20 minutes: past the IdP's 5, within the shop's 30
    assert "user=None" in browser.get(IDP + "/").text
    assert browser.get(SHOP + "/orders").status_int == 302


def test_a_remote_ends_the_session_at_the_idps_absolute_limit(
    store: SessionStore, clock: Any
) -> None:
    dep = _strict_idp(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    for _ in range(14):  # active every 4 minutes: the idle limit never strikes
        clock.advance(240)
        assert browser.get(SHOP + "/orders").status_int == 200
    clock.advance(240)  # 60 minutes after the sign-in: the IdP's absolute limit
    assert browser.get(SHOP + "/orders").status_int == 302
    assert "user=None" in browser.get(IDP + "/").text


# -- finding 7: sessions belong to a deployment ----------------------------------------


def test_another_deployments_sessions_are_absent(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    staging = Deployment(store, clock, key=SyncKey.generate())
    production = Deployment(store, clock, key=SyncKey.generate())  # same store and prefix
    browser = Browser(staging)
    browser.sign_in_at(SHOP + "/orders", user="bob")
    sid = sid_at(staging.shop, browser.cookie("shop.test"))
    assert sid is not None
    staging_rules, production_rules = staging.shop.side.lifecycle, production.shop.side.lifecycle
    # Production cannot even name the key staging stored the session under...
    assert production_rules.session_id_in(f"{COOKIE}={browser.cookie('shop.test')}") is None
    assert not production_rules.ids.is_known(sid)
    # ...and its own keys for the same id text would be other keys.
    same_text = production_rules.ids.new().split(".")[1]
    relabelled = sid.replace(sid.split(".")[1], same_text)
    assert production_rules.session_key(relabelled) != staging_rules.session_key(sid)
    # A staging cookie planted at production opens nothing there.
    other = Browser(production)
    other.apps["shop.test"].set_cookie(COOKIE, browser.cookie("shop.test") or "")
    assert other.get(SHOP + "/orders").status_int == 302


def test_a_new_key_in_front_keeps_sessions_made_under_the_old_one(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    old_key, new_key = SyncKey.generate(), SyncKey.generate()
    before = Deployment(store, clock, key=old_key)
    browser = Browser(before)
    browser.sign_in_at(SHOP + "/orders")
    rotated = Deployment(store, clock, key=f"{new_key},{old_key}")
    jar = Browser(rotated)
    for host in ("id.test", "shop.test"):
        jar.apps[host].set_cookie(COOKIE, browser.cookie(host) or "")
    assert jar.get(SHOP + "/orders").json["user"] == "alice", "rotation signs nobody out"
    assert "user=alice" in jar.get(IDP + "/").text
    retired = Deployment(store, clock, key=new_key)  # the old key removed
    gone = Browser(retired)
    gone.apps["shop.test"].set_cookie(COOKIE, browser.cookie("shop.test") or "")
    assert gone.get(SHOP + "/orders").status_int == 302


def test_a_store_dump_holds_neither_ids_nor_cookie_values(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    browser.sign_in_at(BLOG + "/x")
    sid = sid_at(dep.shop, browser.cookie("shop.test"))
    assert sid is not None
    if isinstance(store, MemoryStore):
        dump = json.dumps([list(store.sessions()), [list(r) for r in store.sessions().values()],
                           list(store.tickets())])
    else:
        client = store.client  # type: ignore[attr-defined]
        dump = repr([(key, client.dump(key)) for key in client.keys("*")])
    secret = sid.split(".")[0]
    assert secret not in dump
    for host in ("id.test", "shop.test", "blog.test"):
        assert (browser.cookie(host) or "x").split(".")[0] not in dump


# -- finding 9: regenerate at a remote keeps the one shared session --------------------


def _regenerating_remote(environ: dict[str, Any], start_response: Callable[..., Any]
                         ) -> Iterable[bytes]:
    session = environ["sessionshare.session"]
    if environ["PATH_INFO"] == "/note":  # a public path that writes the session
        session["note"] = environ["QUERY_STRING"]
    if environ["PATH_INFO"] == "/regenerate":
        session.regenerate()  # what Django's cycle_key() does
    return remote_app(environ, start_response)


def test_regenerate_at_a_remote_keeps_the_shared_session_reachable_everywhere(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock, remote=_regenerating_remote)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    browser.sign_in_at(BLOG + "/x")
    assert browser.get(SHOP + "/regenerate").status_int == 200
    # The IdP and the blog still see alice: the shop did not split the session off.
    assert "user=alice" in browser.get(IDP + "/").text
    assert browser.get(BLOG + "/x").json["user"] == "alice"
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    # And one logout at the IdP ends it at the shop too: no session is left behind.
    browser.post(IDP + "/_sessionshare/logout", headers={"Origin": IDP})
    assert browser.get(SHOP + "/orders").status_int == 302
    assert browser.get(BLOG + "/x").status_int == 302


def test_regenerate_of_a_remotes_own_anonymous_session_still_moves_it(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock, remote=_regenerating_remote)
    browser = Browser(dep)
    browser.get(SHOP + "/note?cart")  # an anonymous session of the shop's own
    before = sid_at(dep.shop, browser.cookie("shop.test"))
    browser.get(SHOP + "/regenerate")
    after = sid_at(dep.shop, browser.cookie("shop.test"))
    assert before is not None and after is not None and after != before


# -- finding 10: __Host- by default ------------------------------------------------------


def _cookie_name_set_by(app: Any, url: str) -> str:
    response = TestApp(app).get(url, extra_environ={"wsgi.url_scheme": "https"}, status="*")
    (set_cookie,) = [v for k, v in response.headerlist if k == "Set-Cookie"]
    return set_cookie.split("=", 1)[0]


def _writer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["sessionshare.session"]["seen"] = True
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize(("options", "expected"), [
    ({}, "__Host-sessionshare"),
    ({"cookie_domain": "id.example"}, "sessionshare"),
    ({"cookie_name": "sid"}, "sid"),
])
def test_the_idps_cookie_is_a_host_cookie_by_default_where_allowed(
    options: dict[str, Any], expected: str
) -> None:
    idp = IdpAuthMiddleware(_writer, store=MemoryStore(), key=SyncKey.generate(),
                            app_url="https://id.example", known_remote_hosts=["shop.example"],
                            **options)
    assert _cookie_name_set_by(idp, "https://id.example/") == expected
    remote = RemoteSessionMiddleware(_writer, store=MemoryStore(), key=SyncKey.generate(),
                                     app_url="https://shop.example", protect=False,
                                     idp_url="https://id.example/login", **options)
    assert _cookie_name_set_by(remote, "https://shop.example/") == expected


def test_an_http_app_keeps_the_plain_name() -> None:
    idp = IdpAuthMiddleware(_writer, store=MemoryStore(), key=SyncKey.generate(),
                            app_url="http://localhost:8000", cookie_secure=False,
                            known_remote_hosts=["http://localhost:8001"])
    assert _cookie_name_set_by(idp, "http://localhost:8000/") == "sessionshare"


@pytest.mark.parametrize(("origin", "expected"), [
    ("https://id.example", "__Host-sessionshare"), ("http://localhost:8000", "sessionshare"),
])
def test_from_env_without_a_cookie_name_uses_the_default_name(origin: str, expected: str) -> None:
    # The variable unset must mean the option unset -- not a cookie called "None".
    environ = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_APP_URL": origin,
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "http://localhost:8001",
        "SESSIONSHARE_STORE_URL": "memory://", "SESSIONSHARE_ALLOW_INSECURE": "true",
        "SESSIONSHARE_COOKIE_SECURE": "true" if origin.startswith("https") else "false",
    }
    idp = IdpAuthMiddleware.from_env(_writer, environ)
    assert _cookie_name_set_by(idp, origin + "/") == expected


# -- finding 12: a sign-in racing another request of the same browser --------------------
# The sign-in moves the session to a new id and sets its cookie; a request of the same
# browser that came with the old cookie and answers *after* it used to clear that cookie
# (its write found the old id gone) or replace it with a new anonymous session's: the user,
# just signed in, was signed out. Each test runs the racing sign-in inside the slow request
# (WebTest shares one cookie jar), so the slow request's answer is the one that lands last.


def _racing_idp(race: dict[str, Any]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path, session = environ["PATH_INFO"], environ["sessionshare.session"]
        if path in ("/write-then-race", "/race-then-write", "/race-then-read"):
            if path == "/write-then-race":
                session.get("cart")  # read the old id before the sign-in moves it
            race["sign_in"]()
            if path != "/race-then-read":
                session["cart"] = ["teapot"]
            else:
                session.get("cart")
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"done"]
        return idp_app(environ, start_response)

    return app


@pytest.mark.parametrize("path", ["/write-then-race", "/race-then-write", "/race-then-read"])
def test_a_request_racing_the_sign_in_does_not_sign_the_user_out(
    store: SessionStore, clock: Callable[[], float], path: str
) -> None:
    race: dict[str, Any] = {}
    dep = Deployment(store, clock, idp=_racing_idp(race))
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the login form: an anonymous IdP session holds the hand-off
    before = browser.cookie("id.test")
    race["sign_in"] = lambda: browser.post(login_url, {"username": "alice",
                                                       "password": "wonderland"})
    slow = browser.get(IDP + path)
    assert slow.status_int == 200
    assert not [v for k, v in slow.headerlist if k == "Set-Cookie" and v.startswith(COOKIE)]
    assert browser.cookie("id.test") not in (None, before), "the sign-in's new cookie stands"
    assert browser.get(IDP + "/").text == "idp home user=alice"


def test_an_old_id_is_a_marker_only_for_the_grace_window(clock: Any) -> None:
    from sessionshare.core.lifecycle import ROTATION_GRACE

    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)
    old_key = browser.store_key("id.test")
    browser.sign_in(login_url)
    marker = store.sessions()[old_key]  # looked at without sliding its expiry
    assert marker.fields == {}, "the marker holds no data"
    assert 0 < marker.expires - clock() <= ROTATION_GRACE
    clock.advance(ROTATION_GRACE + 1)
    assert store.load(old_key, 60) is None
