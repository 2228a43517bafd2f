"""The per-user index and SessionAdmin: list a user's sessions, end one, all, or all others.

Over the three apps of ``flow.Deployment`` (IdP, shop, blog), on MemoryStore
and a real Redis (``store``), and on a Redis Cluster (tests/reliability
borrows every test here that uses ``store``, with the WSGI shell). A
revocation must take effect on the very next request, in every app, WSGI
and ASGI (``shell``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from conftest import FakeClock, looks_secret
from flow import BLOG, IDP, SHOP, Browser, Deployment, idp_app
from servers import counting_client

from sessionshare import (
    AsyncRedisStore,
    AsyncSessionAdmin,
    ConfigurationError,
    RedisStore,
    SessionAdmin,
    SessionStore,
    SyncKey,
)
from sessionshare.admin import Reconciled, is_ref
from sessionshare.core.steps import run
from sessionshare.store.base import member_of

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148"


def idp_with_device_page(admin: Callable[[], SessionAdmin]) -> Callable[..., Iterable[bytes]]:
    """The test IdP, plus ``POST /others``: "log out my other devices"."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/others" and environ.get("REMOTE_USER"):
            ended = admin().revoke_all(environ["REMOTE_USER"],
                                       except_current=environ["sessionshare.session"])
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"ended {ended}".encode()]
        return idp_app(environ, start_response)

    return app


@pytest.fixture
def dep(store: SessionStore, clock: FakeClock) -> Deployment:
    holder: list[SessionAdmin] = []
    deployment = Deployment(store, clock, idp=idp_with_device_page(lambda: holder[0]))
    holder.append(SessionAdmin(store, deployment.key, clock=clock))
    return deployment


@pytest.fixture
def admin(dep: Deployment, clock: FakeClock) -> SessionAdmin:
    return SessionAdmin(dep.store, dep.key, clock=clock)


def browser_as(dep: Deployment, agent: str) -> Browser:
    browser = Browser(dep)
    for app in browser.apps.values():
        app.extra_environ["HTTP_USER_AGENT"] = agent
    return browser


def signed_out_everywhere(browser: Browser) -> bool:
    idp = browser.get(IDP + "/").text == "idp home user=None"
    shop = browser.get(SHOP + "/orders").status_int == 302
    blog = browser.get(BLOG + "/x").status_int == 302
    return idp and shop and blog


def signed_in_everywhere(browser: Browser) -> bool:
    return (browser.get(IDP + "/").text == "idp home user=alice"
            and browser.get(SHOP + "/orders").json["user"] == "alice"
            and browser.get(BLOG + "/x").json["user"] == "alice")


def test_a_user_lists_each_browser_signed_in(
    dep: Deployment, admin: SessionAdmin, clock: FakeClock
) -> None:
    laptop = browser_as(dep, FIREFOX)
    laptop.sign_in_at(SHOP + "/orders")
    clock.advance(60)
    laptop.sign_in_at(BLOG + "/x")
    clock.advance(60)
    phone = browser_as(dep, PHONE + "\x00\n" + "x" * 400)
    phone.sign_in_at(SHOP + "/orders")
    browser_as(dep, FIREFOX).sign_in_at(SHOP + "/orders", user="bob")

    first, second = admin.sessions("alice")
    assert all(is_ref(info.ref) for info in (first, second)) and first.ref != second.ref
    assert first.user_agent == FIREFOX and first.apps == (BLOG, SHOP)
    assert second.user_agent.startswith(PHONE + "x") and len(second.user_agent) == 200
    assert second.apps == (SHOP,)
    assert first.created == int(clock() - 120) and second.created == int(clock())
    assert first.last_seen == int(clock() - 60)  # the blog's hand-off
    assert first.expires == first.created + 8 * 3600
    assert [info.apps for info in admin.sessions("bob")] == [(SHOP,)]
    assert admin.sessions("carol") == []


def test_revoking_one_session_signs_that_browser_out_of_every_app(
    dep: Deployment, admin: SessionAdmin
) -> None:
    laptop, phone = browser_as(dep, FIREFOX), browser_as(dep, PHONE)
    for browser in (laptop, phone):
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
    ref = next(info.ref for info in admin.sessions("alice") if info.user_agent == PHONE)
    assert admin.revoke("alice", ref) is True
    assert signed_out_everywhere(phone)
    assert signed_in_everywhere(laptop)
    assert [info.user_agent for info in admin.sessions("alice")] == [FIREFOX]
    assert admin.revoke("alice", ref) is False
    assert admin.revoke("bob", admin.sessions("alice")[0].ref) is False  # not bob's
    assert admin.revoke("alice", "0" * 16) is False


def test_revocation_takes_effect_at_the_next_request_of_each_shell(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Under "asgi" the IdP, the shop and the blog are the ASGI middlewares, reading the
    # same records (an AsyncRedisStore on the same Redis; the MemoryStore awaited).
    dep = Deployment(store, clock, shell=shell)
    admin = SessionAdmin(store, dep.key, clock=clock)
    laptop, phone = browser_as(dep, FIREFOX), browser_as(dep, PHONE)
    for browser in (laptop, phone):
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
        assert signed_in_everywhere(browser)
    ref = next(info.ref for info in admin.sessions("alice") if info.user_agent == PHONE)
    assert admin.revoke("alice", ref) is True
    # The very next request, in every app: no cache of the session anywhere.
    assert phone.get(SHOP + "/orders").status_int == 302
    assert signed_out_everywhere(phone)
    assert signed_in_everywhere(laptop)
    assert admin.revoke_all("alice") == 1
    assert laptop.get(BLOG + "/x").status_int == 302
    assert signed_out_everywhere(laptop)


def _expiry(store: SessionStore, key: str) -> float:
    if isinstance(store, RedisStore):
        return float(store.client.ttl(key))
    return store.sessions()[key].expires  # type: ignore[attr-defined, no-any-return]


def test_withdrawing_a_remote_stops_it_at_its_next_request(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    # Issue 23, finding 9: the operator takes the blog away from alice in the authorize
    # hook; the blog kept serving her live sessions, and withdraw() worked only inside
    # one of her own requests. SessionAdmin.withdraw does it from outside, at once.
    allowed = {SHOP, BLOG}
    events: list[tuple[str, dict[str, Any]]] = []
    dep = Deployment(store, clock, shell=shell,
                     idp_options={"authorize": lambda session, origin: origin in allowed})
    admin = SessionAdmin(store, dep.key, clock=clock,
                         on_event=lambda name, fields: events.append((name, fields)))
    laptop, phone, shop_only = (browser_as(dep, agent) for agent in (FIREFOX, PHONE, "shop"))
    for browser in (laptop, phone):
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
    shop_only.sign_in_at(SHOP + "/orders")
    key = laptop.store_key("id.test")
    before = _expiry(store, key)
    allowed.discard(BLOG)  # the operator's decision...
    assert admin.withdraw("alice", "HTTP://Blog.Test:80/") == 2  # ...made effective now
    for browser in (laptop, phone):
        away = browser.get(BLOG + "/x")  # its very next request: back through the IdP,
        assert away.status_int == 302
        refused = browser.get(away.location)  # where the hook says no
        assert refused.status_int == 403 and "not_authorized" in refused.text
        assert browser.get(SHOP + "/orders").json["user"] == "alice"  # the shop still serves
    assert ("session_withdrawn", {"origin": BLOG, "count": 2, "user": "alice"}) in events
    assert 0 <= before - _expiry(store, key) <= 1  # its life neither extended nor cut
    assert admin.withdraw("alice", BLOG) == 0
    assert [info.apps for info in admin.sessions("alice")] == [(SHOP,)] * 3
    with pytest.raises(ConfigurationError, match="origin must be"):
        admin.withdraw("alice", "blog")


def test_the_async_admin_withdraws_too(redis_url: str, clock: FakeClock) -> None:
    dep = Deployment(RedisStore.from_url(redis_url), clock)
    browser = Browser(dep)
    browser.sign_in_at(BLOG + "/x")

    async def withdraw() -> int:
        admin = AsyncSessionAdmin(AsyncRedisStore.from_url(redis_url), dep.key, clock=clock)
        try:
            return await admin.withdraw("alice", BLOG)
        finally:
            await admin.store.close()

    assert asyncio.run(withdraw()) == 1
    assert browser.get(BLOG + "/x").status_int == 302


def test_revoke_all_ends_every_session_of_the_user_only(
    dep: Deployment, admin: SessionAdmin
) -> None:
    browsers = [browser_as(dep, agent) for agent in (FIREFOX, PHONE, "curl/8")]
    for browser in browsers:
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
    bob = Browser(dep)
    bob.sign_in_at(SHOP + "/orders", user="bob")
    assert admin.revoke_all("alice") == 3
    assert all(signed_out_everywhere(browser) for browser in browsers)
    assert admin.sessions("alice") == []
    assert bob.get(SHOP + "/orders").json["user"] == "bob"
    assert admin.revoke_all("alice") == 0


def test_the_current_session_ends_the_users_other_sessions(
    dep: Deployment, admin: SessionAdmin
) -> None:
    laptop, phone, tablet = (browser_as(dep, agent) for agent in (FIREFOX, PHONE, "tablet"))
    for browser in (laptop, phone, tablet):
        browser.sign_in_at(SHOP + "/orders")
        browser.sign_in_at(BLOG + "/x")
    page = laptop.post(IDP + "/others")
    assert page.text == "ended 2"
    assert signed_in_everywhere(laptop)
    assert signed_out_everywhere(phone) and signed_out_everywhere(tablet)
    assert [info.user_agent for info in admin.sessions("alice")] == [FIREFOX]


def test_revoke_all_but_a_reference(dep: Deployment, admin: SessionAdmin) -> None:
    laptop, phone = browser_as(dep, FIREFOX), browser_as(dep, PHONE)
    laptop.sign_in_at(SHOP + "/orders")
    phone.sign_in_at(SHOP + "/orders")
    keep = next(info.ref for info in admin.sessions("alice") if info.user_agent == PHONE)
    assert admin.revoke_all("alice", except_current=keep) == 1
    assert signed_out_everywhere(laptop)
    assert phone.get(SHOP + "/orders").json["user"] == "alice"


def test_signing_in_past_max_sessions_ends_the_oldest(
    store: SessionStore, clock: FakeClock
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    dep = Deployment(store, clock, idp_options={
        "max_sessions_per_user": 2, "on_event": lambda name, f: events.append((name, f))})
    admin = SessionAdmin(store, dep.key, clock=clock)
    first, second, third = (browser_as(dep, agent) for agent in ("one", "two", "three"))
    for browser in (first, second):
        browser.sign_in_at(SHOP + "/orders")
        clock.advance(10)
    assert [e for e in events if e[0] == "session_revoked"] == []
    third.sign_in_at(SHOP + "/orders")
    assert signed_out_everywhere(first)
    assert second.get(SHOP + "/orders").json["user"] == "alice"
    assert [info.user_agent for info in admin.sessions("alice")] == ["two", "three"]
    assert ("session_revoked", {"reason": "max_sessions", "count": 1, "user": "alice"}) in events
    # A signed-out browser does not count: signing in again ends nobody.
    second.post(IDP + "/_sessionshare/logout")
    clock.advance(10)
    first.sign_in_at(SHOP + "/orders")
    assert third.get(SHOP + "/orders").json["user"] == "alice"
    assert [info.user_agent for info in admin.sessions("alice")] == ["three", "one"]


def test_max_sessions_counts_the_sessions_made_under_an_older_key(
    store: SessionStore, clock: FakeClock
) -> None:
    # Issue 23, finding 4: with keys NEW,OLD and a limit of 1, a session made under OLD
    # stayed alive after a sign-in under NEW -- the index is per key, and the cap counted
    # only the newest key's. A rotation lasts up to absolute_timeout (30 days remembered).
    old_key = SyncKey.generate()
    before = Deployment(store, clock, key=old_key, idp_options={"max_sessions_per_user": 1})
    laptop = browser_as(before, "laptop")
    laptop.sign_in_at(SHOP + "/orders")
    clock.advance(10)
    rotated = Deployment(store, clock, key=f"{SyncKey.generate()},{old_key}",
                         idp_options={"max_sessions_per_user": 1})
    assert Browser(rotated).get(IDP + "/", headers={
        "Cookie": f"sessionshare={laptop.cookie('id.test')}"}).text == "idp home user=alice"
    phone = browser_as(rotated, "phone")
    phone.sign_in_at(SHOP + "/orders")  # under the new key
    assert phone.get(SHOP + "/orders").json["user"] == "alice"
    laptop_now = Browser(rotated)
    laptop_now.apps["id.test"].set_cookie("sessionshare", laptop.cookie("id.test") or "")
    assert laptop_now.get(IDP + "/").text == "idp home user=None"  # ended: one session only
    admin = SessionAdmin(store, rotated.key, clock=clock)
    assert [info.user_agent for info in admin.sessions("alice")] == ["phone"]


def test_another_deployment_on_the_same_store_and_prefix_is_not_counted(
    store: SessionStore, clock: FakeClock
) -> None:
    # Issue 23, finding 6: the index keys carried no key id, so staging (another sync key,
    # the same store and prefix) counted production's sessions in its gauge.
    production, staging = Deployment(store, clock), Deployment(store, clock)
    Browser(production).sign_in_at(SHOP + "/orders")
    Browser(production).sign_in_at(SHOP + "/orders", user="bob")
    Browser(staging).sign_in_at(SHOP + "/orders", user="bob")
    assert SessionAdmin(store, production.key, clock=clock).count_sessions() == 2
    assert SessionAdmin(store, staging.key, clock=clock).count_sessions() == 1
    prefixes = SessionAdmin(store, staging.key, clock=clock).index.index_prefixes
    assert not any(key.startswith(tuple(prefixes))
                   for key in SessionAdmin(store, production.key).index.index_keys("bob"))


def test_the_index_is_pruned_after_expiry_and_logout(
    dep: Deployment, admin: SessionAdmin, clock: FakeClock
) -> None:
    key = admin.index.index_keys("alice")[0]
    laptop, phone = browser_as(dep, FIREFOX), browser_as(dep, PHONE)
    laptop.sign_in_at(SHOP + "/orders")
    phone.sign_in_at(SHOP + "/orders")
    phone.post(IDP + "/_sessionshare/logout")
    assert len(dep.store.index_read(key)) == 2  # pruned lazily: not by the logout
    assert [info.user_agent for info in admin.sessions("alice")] == [FIREFOX]
    assert len(dep.store.index_read(key)) == 1
    clock.advance(8 * 3600 + 1)  # past the absolute timeout
    assert admin.sessions("alice") == []
    assert dep.store.index_read(key) == {}


def test_a_regenerated_session_stays_listed_under_its_new_id(
    store: SessionStore, clock: FakeClock
) -> None:
    def regenerating(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] == "/regenerate":
            environ["sessionshare.session"].regenerate()
        return idp_app(environ, start_response)

    dep = Deployment(store, clock, idp=regenerating)
    admin = SessionAdmin(store, dep.key, clock=clock)
    browser = browser_as(dep, FIREFOX)
    browser.sign_in_at(SHOP + "/orders")
    (before,) = admin.sessions("alice")
    browser.get(IDP + "/regenerate")
    (after,) = admin.sessions("alice")
    assert after.ref != before.ref and after.created == before.created
    assert len(store.index_read(admin.index.index_keys("alice")[0])) == 1
    assert admin.revoke_all("alice") == 1
    assert browser.get(IDP + "/").text == "idp home user=None"


def test_the_index_holds_no_cookie_and_no_user_name(dep: Deployment, admin: SessionAdmin) -> None:
    browser = browser_as(dep, FIREFOX)
    browser.sign_in_at(SHOP + "/orders")
    sid = browser.session_id("id.test")
    assert sid is not None
    (key,) = admin.index.index_keys("alice")
    assert "alice" not in key and re.fullmatch(r"sessionshare:u:[0-9a-f]{12}:\{[0-9a-f]{32}\}", key)
    text = json.dumps(dep.store.index_read(key))
    cookies = [browser.cookie(host) for host in ("id.test", "shop.test", "blog.test")]
    for secret in [sid, sid.split(".")[0], *(c for c in cookies if c)]:
        assert secret not in text
    (ref,) = dep.store.index_read(key)
    assert not looks_secret(ref)  # a reference may be shown and logged


def test_revocations_are_events_without_identifiers(store: SessionStore, clock: FakeClock) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    dep = Deployment(store, clock)
    admin = SessionAdmin(store, dep.key, clock=clock,
                         on_event=lambda name, fields: events.append((name, fields)))
    Browser(dep).sign_in_at(SHOP + "/orders")
    Browser(dep).sign_in_at(SHOP + "/orders")
    admin.revoke("alice", admin.sessions("alice")[0].ref)
    admin.revoke_all("alice")
    assert events == [
        ("session_revoked", {"reason": "revoked", "count": 1, "user": "alice"}),
        ("session_revoked", {"reason": "revoked_all", "count": 1, "user": "alice"}),
    ]
    assert not looks_secret(json.dumps(events))


def test_a_sign_in_costs_one_round_trip_more_for_the_index(
    redis_url: str, clock: FakeClock
) -> None:
    client, counts = counting_client(redis_url)
    dep = Deployment(RedisStore(client), clock)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)
    Browser(dep).sign_in_at(SHOP + "/orders")  # the scripts are loaded: EVALSHA from here
    before = counts["round_trips"]
    signed_in = browser.post(login_url, {"username": "alice", "password": "wonderland"})
    assert signed_in.status_int == 303
    # Read, move to the new id (one conditional step), claim + ticket (3), the index (+1,
    # checked against the session in the same step).
    assert counts["round_trips"] - before == 4
    before = counts["round_trips"]
    assert browser.get(signed_in.location).status_int == 303
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert counts["round_trips"] - before == 3  # callback (take + join), then ONE read


def test_the_async_admin_reads_the_same_index(redis_url: str, clock: FakeClock) -> None:
    store = RedisStore.from_url(redis_url)
    dep = Deployment(store, clock)
    laptop, phone = browser_as(dep, FIREFOX), browser_as(dep, PHONE)
    laptop.sign_in_at(SHOP + "/orders")
    clock.advance(10)  # oldest first: the laptop, then the phone
    phone.sign_in_at(BLOG + "/x")

    async def scenario() -> tuple[list[str], int, bool]:
        admin = AsyncSessionAdmin(AsyncRedisStore.from_url(redis_url), dep.key, clock=clock)
        agents = [info.user_agent for info in await admin.sessions("alice")]
        ref = (await admin.sessions("alice"))[1].ref
        ended = await admin.revoke_all("alice", except_current=ref)
        missing = await admin.revoke("alice", "f" * 16)
        await admin.store.close()
        return agents, ended, missing

    agents, ended, missing = asyncio.run(scenario())
    assert agents == [FIREFOX, PHONE] and ended == 1 and missing is False
    assert signed_out_everywhere(laptop)
    assert phone.get(BLOG + "/x").json["user"] == "alice"
    store.close()


def test_count_sessions_counts_every_users_live_sessions(
    dep: Deployment, admin: SessionAdmin, store: SessionStore, clock: FakeClock
) -> None:
    """All users together, as the index names them and the store still holds them: a
    logout, a revocation and another deployment's sessions (another prefix) are not
    counted. On a cluster the scan covers every master."""
    assert admin.count_sessions() == 0
    browsers = {}
    for name, user in (("alice1", "alice"), ("alice2", "alice"), ("alice3", "alice"),
                       ("bob", "bob")):
        browsers[name] = Browser(dep)
        browsers[name].sign_in_at(SHOP + "/orders", user=user)
        clock.advance(10)  # oldest first: alice1's session is the first listed
    assert admin.count_sessions() == 4
    other = Deployment(store, clock, key=dep.key, idp_options={"key_prefix": "other[*]:"},
                       remote_options={"key_prefix": "other[*]:"})
    Browser(other).sign_in_at(SHOP + "/orders", user="bob")
    elsewhere = SessionAdmin(store, dep.key, key_prefix="other[*]:", clock=clock)
    assert admin.count_sessions() == 4 and elsewhere.count_sessions() == 1
    assert admin.revoke("alice", admin.sessions("alice")[0].ref)
    assert admin.count_sessions() == 3
    assert browsers["alice2"].post(IDP + "/_sessionshare/logout").status_int == 303
    assert admin.count_sessions() == 2
    # Gone from the store by no step of the library's (as if its key had been lost): the
    # census learns it at its check time; the scan of a reconcile at once, and repairs it.
    store.delete(browsers["bob"].store_key("id.test"))
    assert admin.count_sessions() == 2 and admin.scan_sessions() == 1  # nothing repaired
    assert admin.count_sessions() == 2
    repaired = admin.reconcile_sessions()
    assert (repaired.sessions, repaired.counted_before, repaired.counted) == (1, 2, 1)
    assert admin.count_sessions() == 1  # ...though its index entry is still there
    assert len(admin.sessions("alice")) == 1


def _ref(browser: Browser) -> str:
    """The reference of the session ``browser`` holds (its digest's first 16 characters)."""
    return member_of(browser.store_key("id.test"))[:16]


def _idled_out(store: SessionStore, browsers: Iterable[Browser]) -> None:
    """The sessions of ``browsers`` expire unread. The memory store follows the test's
    clock; a real Redis expires by its own, so their keys are cut short there."""
    if isinstance(store, RedisStore):
        for browser in browsers:
            store.client.pexpire(browser.store_key("id.test"), 1)
        time.sleep(0.01)


def test_the_count_is_exact_after_every_end_and_within_its_bound_after_idle_expiry(
    dep: Deployment, admin: SessionAdmin, store: SessionStore, clock: FakeClock
) -> None:
    """The census counts sign-ins, logouts and revocations exactly, at once; a session
    that idles out unread stays counted only until the next sweep -- never fewer than
    the live sessions, more by at most the sessions that expired since the last sweep."""

    def truth() -> int:
        return sum(len(admin.sessions(user)) for user in ("alice", "bob"))

    def unswept() -> int:  # what a count reads when another process swept just now
        return admin.count_sessions(sweep_every=0)

    browsers = [Browser(dep) for _ in range(8)]
    for number, browser in enumerate(browsers):
        browser.sign_in_at(SHOP + "/orders", user=("alice", "bob")[number % 2])
    assert unswept() == truth() == 8
    assert browsers[0].post(IDP + "/_sessionshare/logout").status_int == 303  # alice
    assert unswept() == truth() == 7
    assert admin.revoke("bob", _ref(browsers[1]))
    assert unswept() == truth() == 6
    assert admin.withdraw("alice", SHOP) == 3  # ends nothing: the sessions live on
    assert unswept() == truth() == 6
    assert admin.revoke_all("bob", except_current=_ref(browsers[3])) == 2  # 5 and 7
    assert unswept() == truth() == 4
    # alice's 2, 4 and 6 and bob's 3 are left. 2 and 3 are read now and then (each read
    # slides the idle expiry, and touches no census); 4 and 6 idle out.
    clock.advance(20 * 60)
    assert browsers[2].get(IDP + "/").text == "idp home user=alice"
    assert browsers[3].get(IDP + "/").text == "idp home user=bob"
    clock.advance(15 * 60)  # 35 minutes after the sign-ins: past 4's and 6's idle timeout
    _idled_out(store, browsers[4:7:2])
    assert truth() == 2
    # Before a sweep: within the bound (the two expired since the last sweep, at most).
    assert 2 <= unswept() <= 2 + 2
    assert admin.count_sessions() == 2  # this count sweeps: exact again
    # Another process counting now reads the same figure.
    assert SessionAdmin(store, dep.key, clock=clock).count_sessions() == 2
    # The sessions read go on being counted past the expiry the last sweep recorded.
    clock.advance(5 * 60)
    assert browsers[2].get(IDP + "/").text == "idp home user=alice"
    assert browsers[3].get(IDP + "/").text == "idp home user=bob"
    clock.advance(11 * 60)  # 31 minutes after that sweep, 11 after these reads
    assert run(admin.census.sweep(), store) == 0  # both due, both found live
    assert admin.count_sessions(sweep_every=0) == truth() == 2


def test_a_reconcile_repairs_the_census_after_a_crash_between_steps_or_a_rotation(
    store: SessionStore, clock: FakeClock
) -> None:
    """On a cluster an end keeps the census by a second command; a process that dies in
    between leaves it one too high. Sessions made under the key before a rotation sit in
    the old key's census. The scan of a reconcile counts them all and repairs both."""
    old_key = SyncKey.generate()
    before = Deployment(store, clock, key=old_key)
    for user in ("alice", "bob"):
        Browser(before).sign_in_at(SHOP + "/orders", user=user)
    dep = Deployment(store, clock, key=f"{SyncKey.generate()},{old_key}")
    admin = SessionAdmin(store, dep.key, clock=clock)
    browsers = [Browser(dep) for _ in range(3)]
    for browser in browsers:
        browser.sign_in_at(SHOP + "/orders")
    assert admin.count_sessions(sweep_every=0) == 3  # the old key's two are not in it
    store.delete(browsers[0].store_key("id.test"))  # ended; its census step never ran
    assert admin.count_sessions(sweep_every=0) == 3
    repaired = admin.reconcile_sessions()
    assert repaired == Reconciled(sessions=4, counted_before=3, counted=4, added=2, removed=1)
    assert admin.count_sessions(sweep_every=0) == 4
    assert admin.reconcile_sessions() == Reconciled(4, 4, 4, 0, 0)  # nothing left to repair
    # The census goes on being kept from there: an end takes its session out at once.
    assert browsers[1].post(IDP + "/_sessionshare/logout").status_int == 303
    assert admin.count_sessions(sweep_every=0) == 3


def test_the_count_is_one_round_trip_whatever_the_number_of_sessions(
    redis_url: str, clock: FakeClock
) -> None:
    client, counts = counting_client(redis_url)
    store = RedisStore(client)
    dep = Deployment(store, clock)
    admin = SessionAdmin(store, dep.key, clock=clock)
    trips = []
    for sessions in (1, 10):
        while admin.count_sessions(sweep_every=0) < sessions:
            Browser(dep).sign_in_at(SHOP + "/orders")
        before = counts["round_trips"]
        assert admin.count_sessions(sweep_every=0) == sessions
        trips.append(counts["round_trips"] - before)
    assert trips == [1, 1]
    # A count that sweeps (nothing due): one round trip more.
    before = counts["round_trips"]
    assert admin.count_sessions(sweep_every=60) == 10
    assert counts["round_trips"] - before == 2
    store.close()
