"""Issue 16, findings 4 and 8: one test (or a few) per defect, each failing before its fix.

Where a store is involved the test runs on MemoryStore and on real Redis (the
``store`` fixture). Test names are the ones SECURITY.md's threat table cites.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pytest
from conftest import live_session_keys
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import CALLBACK, HTML, IDP, SHOP, Browser, Deployment, idp_app, reason_of, remote_app

from sessionshare import (
    AllowList,
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    Session,
    SessionStore,
    SessionTooLarge,
    SyncKey,
)
from sessionshare.core.configure import read_environ
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.lifecycle import Lifecycle
from sessionshare.core.session import state_of
from sessionshare.core.steps import run
from sessionshare.store.base import SessionRecord

from .corpus import ALLOWED
from .deploy import STATE, security_deployment

# -- 8a. A damaged store record is no session, not a 500 --------------------------------------
# Valid JSON of the wrong shape (another writer, a bug in an older version, a hand edit)
# raised AttributeError/TypeError on every request that presented the session's cookie.

DAMAGED = [
    '{"d": [], "m": "x"}',
    '{"d": {"user": 5}, "m": {}}',
    '{"d": {"user": "\\"alice\\""}, "m": {"c": "soon"}}',
    '{"d": "user", "m": []}',
    '{"d": {"user": null}, "m": {"c": true}}',
]


class _DamagingStore:
    """A store whose every session read returns one damaged record (any backend can)."""

    def __init__(self, inner: SessionStore, damaged: str) -> None:
        self.inner = inner
        self.damaged = json.loads(damaged)
        self.damage = False

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        record = self.inner.load(key, idle_ttl)
        if record is not None and self.damage:
            return SessionRecord(self.damaged["d"], self.damaged["m"])
        return record

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        return self.inner.save(key, changed=changed, deleted=deleted, meta=meta, ttl=ttl,
                               create=create)

    def mark(self, key: str, meta: Mapping[str, int], idle_ttl: int,
             once: str | None = None, once_ttl: int = 0) -> SessionRecord | None:
        record = self.inner.mark(key, meta, idle_ttl, once, once_ttl)
        if record is not None and self.damage:
            return SessionRecord(self.damaged["d"], self.damaged["m"])
        return record

    def move(self, key: str, new_key: str, **kwargs: Any) -> bool:
        return self.inner.move(key, new_key, **kwargs)

    def delete(self, key: str, *, census: str | None = None) -> None:
        self.inner.delete(key, census=census)

    def claim_state(
        self,
        key: str,
        owners: str | Sequence[str],
        ttl: int,
        ticket: tuple[str, str, int] | None = None,
    ) -> bool:
        return self.inner.claim_state(key, owners, ttl, ticket)

    def take_ticket(self, key: str, nonce: str | None = None) -> str | None:
        return self.inner.take_ticket(key, nonce)

    def store_identity(self, key: str, candidate: str) -> str:
        return self.inner.store_identity(key, candidate)

    def peek(self, key: str) -> SessionRecord | None:
        return self.inner.peek(key)

    def index_put(self, key: str, ref: str, entry: str, *, ttl: int, now: int,
                  drop: Collection[str] = (), live: str | None = None,
                  census: str | None = None) -> dict[str, str]:
        return self.inner.index_put(key, ref, entry, ttl=ttl, now=now, drop=drop, live=live,
                                    census=census)

    def index_read(self, key: str) -> dict[str, str]:
        return self.inner.index_read(key)

    def index_drop(self, key: str, refs: Collection[str]) -> None:
        self.inner.index_drop(key, refs)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def _session_keys(store: SessionStore) -> list[str]:
    """The live sessions' keys (a moved id's short-lived marker is no session)."""
    return live_session_keys(store)


@pytest.mark.parametrize("damaged", DAMAGED)
def test_damaged_store_record_reads_as_no_session(
    store: SessionStore, clock: Callable[[], float], damaged: str
) -> None:
    wrapped = _DamagingStore(store, damaged)
    dep = security_deployment(wrapped, clock)  # type: ignore[arg-type]
    browser = Browser(dep)
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    if isinstance(store, RedisStore):
        # The real thing: the bytes in Redis are damaged, the parser meets them.
        for key in _session_keys(store):
            store.client.set(key, damaged, keepttl=True)
    else:
        wrapped.damage = True
    for url in (SHOP + "/orders", SHOP + "/about", "http://id.test/"):
        page = browser.get(url)
        assert page.status_int < 500, (url, page.status)
    assert browser.get(SHOP + "/orders").status_int == 302  # signed out: sent to sign in
    assert browser.get(SHOP + "/write?cart=1").status_int == 302


# -- 8b. A user of "", False or 0 is nobody ----------------------------------------------------
# An app that "signs out" with session["user"] = "" (or False, 0) left the session signed in as
# nobody: every remote served its protected pages (REMOTE_USER "" or "false"), and the IdP's
# sign-in detection treated the empty value as a sign-in.

NOBODY = ["", False, 0, True, None, [], {}]


# On the sides driven by hand (tests/coreflow.py): who is signed in is the core's decision.


def _core_signed_in_as(user: object) -> CoreBrowser:
    """A browser signed in at the shop, whose stored user the IdP app then set to ``user``."""
    dep = CoreDeployment(idp_options={"known_remote_hosts": ALLOWED})
    browser = CoreBrowser(dep)
    assert browser.sign_in_at(SHOP + "/orders").user == "alice"
    for key in _session_keys(dep.store):
        assert dep.store.save(key, changed={"user": json.dumps(user)}, ttl=600)
    return browser


@pytest.mark.parametrize("nobody", NOBODY, ids=repr)
def test_empty_or_flag_user_is_not_signed_in(nobody: object) -> None:
    browser = _core_signed_in_as(nobody)
    assert browser.get(SHOP + "/orders").status == 302  # sent to sign in again
    assert browser.get("http://blog.test/x").status == 302
    at_idp = browser.get("http://id.test/")
    assert at_idp.passed and at_idp.user is None


@pytest.mark.parametrize("nobody", ["", False, 0], ids=repr)
def test_idp_does_not_take_an_empty_user_for_a_sign_in(nobody: object) -> None:
    # The IdP app writes an empty user on the login POST: no hand-off, no token minted.
    dep = CoreDeployment(idp_options={"known_remote_hosts": [SHOP]})
    browser = CoreBrowser(dep)
    login = f"{IDP}/login?callback={SHOP}{CALLBACK}&state={STATE}"
    assert browser.get(login).passed  # pending hand-off kept
    reply = browser.post(login, app=lambda session: session.__setitem__("user", nobody))
    assert reply.passed and reply.location is None  # no 303 to the remote with a token
    assert dep.count("ticket_issued") == 0 and dep.count("login") == 0
    # The control: a real user on the same POST is a sign-in, handed off.
    done = browser.post(login, app=lambda session: session.__setitem__("user", "alice"))
    assert done.status == 303 and (done.location or "").startswith(SHOP + CALLBACK)


@pytest.mark.parametrize(
    ("user", "expected"), [("alice", "alice"), (7, "7"), ({"id": 7}, '{"id": 7}')]
)
def test_real_users_still_sign_in(user: object, expected: str) -> None:
    assert _core_signed_in_as(user).get(SHOP + "/orders").user == expected


# -- 8c. A deeply nested value is the documented TypeError -------------------------------------
# Session.__setitem__ promises TypeError for a value JSON cannot hold; 5,000 nested lists (from
# a request body an app stores as is) raised RecursionError instead, past handlers that catch
# TypeError, as a 500.


def _nested(depth: int, leaf: Callable[[object], object]) -> object:
    value: object = 1
    for _ in range(depth):
        value = leaf(value)
    return value


@pytest.mark.parametrize("leaf", [lambda v: [v], lambda v: {"k": v}], ids=["list", "dict"])
def test_deeply_nested_value_is_a_type_error(leaf: Callable[[object], object]) -> None:
    session = Session()
    with pytest.raises(TypeError, match="nested too deeply") as caught:
        session["deep"] = _nested(5_000, leaf)
    assert "deep" not in session and caught.value.__suppress_context__
    # The same value put in place by mutation: refused when the session is persisted.
    session["box"] = []
    session["box"].append(_nested(5_000, leaf))
    with pytest.raises(TypeError, match="nested too deeply"):
        state_of(session).write_plan(0.0)
    session["fine"] = _nested(50, leaf)  # ordinary nesting still stores


# -- 8d. Logout must come from the app's own origin ---------------------------------------------
# SameSite=Lax keeps a cross-*site* POST cookieless, but a sibling subdomain (evil.shop.test,
# a user-content host) is same-site: its auto-submitting form posted a logout with the cookie
# attached and signed the user out everywhere (logout CSRF).

CROSS_ORIGIN_HEADERS = [
    {"Origin": "http://evil.shop.test"},
    {"Origin": "http://shop.test:8080"},
    {"Origin": "https://shop.test"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://shop.test"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.shop.test"},
]


def _request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``Origin`` / ``Sec-Fetch-Site`` as the request fields a shell fills from them."""
    names = {"Origin": "origin", "Sec-Fetch-Site": "fetch_site"}
    return {names[name]: value for name, value in headers.items()}


@pytest.mark.parametrize("headers", CROSS_ORIGIN_HEADERS, ids=str)
def test_logout_from_another_origin_is_refused(headers: dict[str, str]) -> None:
    dep = CoreDeployment(idp_options={"known_remote_hosts": ALLOWED})
    browser = CoreBrowser(dep)
    browser.sign_in_at(SHOP + "/orders")
    for url in (SHOP + "/_sessionshare/logout", "http://id.test/_sessionshare/logout"):
        refused = browser.post(url, **_request_headers(headers))
        assert refused.status == 403 and refused.reason == "cross_origin", url
    assert browser.get(SHOP + "/orders").user == "alice"  # still signed in
    assert len(_session_keys(dep.store)) == 1


@pytest.mark.parametrize("headers", [
    {"Origin": "http://shop.test"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://shop.test"},
    {},  # neither header: curl, or a browser from before 2020 -- accepted, as documented
], ids=str)
def test_logout_from_the_apps_own_page_still_works(headers: dict[str, str]) -> None:
    dep = CoreDeployment(idp_options={"known_remote_hosts": ALLOWED})
    browser = CoreBrowser(dep)
    browser.sign_in_at(SHOP + "/orders")
    signed_out = browser.post(SHOP + "/_sessionshare/logout", **_request_headers(headers))
    assert signed_out.status == 303
    assert _session_keys(dep.store) == []
    assert browser.get(SHOP + "/orders").status == 302


def test_logout_origin_check_end_to_end(store: SessionStore, clock: Callable[[], float],
                                        shell: str) -> None:
    # Each shell reads Origin and Sec-Fetch-Site into the request the core checks.
    dep = security_deployment(store, clock, shell=shell)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    for headers in ({"Origin": "http://evil.shop.test"}, {"Sec-Fetch-Site": "same-site"}):
        refused = browser.post(SHOP + "/_sessionshare/logout", headers={**HTML, **headers})
        assert refused.status_int == 403 and reason_of(refused) == "cross_origin", headers
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    signed_out = browser.post(SHOP + "/_sessionshare/logout", headers={
        **HTML, "Sec-Fetch-Site": "same-origin", "Origin": SHOP})
    assert signed_out.status_int == 303
    assert _session_keys(store) == []


# -- 4. Insecure cookie settings on https origins are refused unless opted into ------------------
# An https remote with cookie_secure=False started silently (its cookie then also travels over
# plain http: SSL stripping reads it), and an https IdP accepted an http:// allow-list entry
# (the token and that remote's cookie travel in clear).

KEY = SyncKey.generate()


def _remote(**options: Any) -> RemoteSessionMiddleware:
    return RemoteSessionMiddleware(
        remote_app, store=MemoryStore(), key=KEY, **{
            "app_url": "https://shop.example", "idp_url": "https://id.example/login", **options})


def _idp(**options: Any) -> IdpAuthMiddleware:
    return IdpAuthMiddleware(
        idp_app, store=MemoryStore(), key=KEY, **{
            "app_url": "https://id.example", "known_remote_hosts": ["shop.example"], **options})


@pytest.mark.parametrize("build", [_remote, _idp], ids=["remote", "idp"])
def test_https_app_with_insecure_cookie_is_refused(build: Callable[..., object]) -> None:
    with pytest.raises(ConfigurationError, match="cookie_secure=False on https app_url") as caught:
        build(cookie_secure=False)
    assert "allow_insecure=True" in str(caught.value)
    build(cookie_secure=False, allow_insecure=True)  # said out loud: accepted


@pytest.mark.parametrize("hosts", [
    ["shop.example", "http://blog.example"],
    "shop.example, http://blog.example:8080",
    AllowList(["http://blog.example"]),
    iter(["http://blog.example"]),
], ids=["list", "text", "AllowList", "iterator"])
def test_https_idp_with_plain_http_remote_is_refused(hosts: Any) -> None:
    with pytest.raises(ConfigurationError, match="allows plain http callbacks") as caught:
        _idp(known_remote_hosts=hosts)
    assert "http://blog.example" in str(caught.value) and "allow_insecure" in str(caught.value)


def test_https_idp_with_plain_http_remote_opted_in_still_works() -> None:
    idp = _idp(known_remote_hosts=iter(["shop.example", "http://blog.example"]),
               allow_insecure=True)
    assert idp.side.allow_list.is_allowed_callback("http://blog.example" + CALLBACK)


def test_http_demo_needs_no_opt_in(clock: Callable[[], float]) -> None:
    # Every origin http: nothing is sent in clear that was ever protected by Secure.
    dep = security_deployment(MemoryStore(clock=clock), clock)
    assert Browser(dep).sign_in_at(SHOP + "/orders").json["user"] == "alice"


def test_from_env_and_check_report_insecure_settings() -> None:
    env = {
        "SESSIONSHARE_SYNC_KEY": KEY, "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example,http://blog.example",
        "SESSIONSHARE_COOKIE_SECURE": "false",
    }
    _, problems = read_environ("idp", env)
    assert any(p.startswith("SESSIONSHARE_COOKIE_SECURE: cookie_secure=False") for p in problems)
    assert any(p.startswith("SESSIONSHARE_KNOWN_REMOTE_HOSTS: known_remote_hosts allows")
               for p in problems)
    with pytest.raises(ConfigurationError):
        IdpAuthMiddleware.from_env(idp_app, env)
    checked = subprocess.run(
        [sys.executable, "-m", "sessionshare", "check", "idp"], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=60, check=False,
    )
    assert checked.returncode == 1
    assert "cookie_secure=False" in checked.stdout and "http://blog.example" in checked.stdout
    opted_in = IdpAuthMiddleware.from_env(idp_app, {**env, "SESSIONSHARE_ALLOW_INSECURE": "true"})
    assert opted_in.side.origin == "https://id.example"


# -- 8e. The shared session has a size cap ------------------------------------------------------
# Nothing bounded a session: one app storing a 20 MB blob made every read of it, at every app,
# cost Redis 40-80 ms. A write past max_session_bytes now raises SessionTooLarge naming the
# size, before anything reaches the store: the stored session stays exactly as it was.


def _stored(store: SessionStore) -> list[dict[str, str]]:
    return [record.fields for record in (store.load(k, 600) for k in _session_keys(store))
            if record is not None]


@pytest.mark.parametrize("limit", [None, 2_000], ids=["default 64 KiB", "2000"])
def test_oversized_session_write_is_refused_whole(
    store: SessionStore, clock: Callable[[], float], limit: int | None
) -> None:
    options = {} if limit is None else {"max_session_bytes": limit}
    dep = Deployment(store, clock, idp_options={"known_remote_hosts": ALLOWED},
                     remote_options=options)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    assert browser.get(SHOP + "/write?cart=1").status_int == 200
    before = _stored(store)
    big = "x" * ((limit or 64 * 1024) + 1)
    with pytest.raises(SessionTooLarge) as caught:
        browser.get(SHOP + f"/write?cart=2&big={big}")
    assert caught.value.limit == (limit or 65_536) and caught.value.size > caught.value.limit
    assert f"{caught.value.size:,} bytes" in str(caught.value)
    assert _stored(store) == before  # not even the small key of that write
    page = browser.get(SHOP + "/read").json
    assert page["user"] == "alice" and page["session"]["cart"] == "1"
    assert browser.get(SHOP + "/write?cart=3").status_int == 200  # within the cap: written


def test_session_size_counts_what_the_store_would_hold() -> None:
    session = Session()
    session["a"] = "x" * 10
    plan = state_of(session).write_plan(0.0)
    assert state_of(session).size_after(plan) == len("a") + len('"xxxxxxxxxx"')
    state_of(session).mark_written(plan)
    del session["a"]
    session["é"] = 1
    assert state_of(session).size_after(state_of(session).write_plan(0.0)) == len("é".encode()) + 1


def test_invalidate_still_deletes_when_the_new_data_is_too_large(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    # A logout must not hinge on the write after it: the old session goes, then the error.
    lifecycle = Lifecycle(cookie=CookieSpec("sessionshare"), key=SyncKey.parse(SyncKey.generate()),
                          audience="https://app.test", max_session_bytes=100, clock=clock,
                          idle_timeout=1800, absolute_timeout=28800, key_prefix="sessionshare:")

    def loader(sid: str) -> SessionRecord | None:
        return run(lifecycle.read(sid), store)

    first = Session(loader)
    first["user"] = "alice"
    plan = state_of(first).write_plan(clock(), new_id=lifecycle.ids.new)
    run(lifecycle.write(first, plan), store)
    assert plan.save_to is not None and len(_session_keys(store)) == 1
    again = Session(loader, sid=plan.save_to)
    again.invalidate()
    again["big"] = "x" * 200
    with pytest.raises(SessionTooLarge):
        run(lifecycle.persist(again), store)
    assert _session_keys(store) == []


# -- 8f. A store whose client has no socket timeout warns ---------------------------------------
# RedisStore(redis.Redis.from_url(url)) -- or a Sentinel master, or socket_timeout=None -- waits
# for a reply forever: a Redis that accepts connections but stops answering hangs every worker
# instead of the quick 503 the middleware gives when it gets an error.


def _timeout_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sessionshare" and r.getMessage().startswith("store_without_timeout")]


def test_redis_store_without_socket_timeout_warns(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    caplog.set_level(logging.WARNING, logger="sessionshare")
    for client in (redis.Redis.from_url(redis_url), redis.Redis(socket_timeout=None)):
        caplog.clear()
        RedisStore(client).close()
        (message,) = _timeout_warnings(caplog)
        assert "socket_timeout" in message and "blocks requests forever" in message
    caplog.clear()
    RedisStore(redis.Redis.from_url(redis_url, socket_timeout=1)).close()
    RedisStore(redis.Redis(socket_timeout=2)).close()
    RedisStore.from_url(redis_url).close()
    assert _timeout_warnings(caplog) == []


def test_async_redis_store_without_socket_timeout_warns(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    from sessionshare import AsyncRedisStore

    caplog.set_level(logging.WARNING, logger="sessionshare")
    AsyncRedisStore(aioredis.Redis.from_url(redis_url))
    (message,) = _timeout_warnings(caplog)
    assert "AsyncRedisStore" in message
    caplog.clear()
    AsyncRedisStore.from_url(redis_url)
    AsyncRedisStore(aioredis.Redis.from_url(redis_url, socket_timeout=1))
    assert _timeout_warnings(caplog) == []
