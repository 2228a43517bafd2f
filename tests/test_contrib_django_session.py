"""The Django session engine's contract: ``SessionStore`` over a
:class:`~sessionshare.Session` -- without a request, and in requests served by
``get_wsgi_application`` (what needs the store: ``save()``, ``flush()``,
``set_expiry()``) -- and the configuration ``get_wsgi_application`` reads.

What Django's session API does here, what it refuses and with which error,
is listed in ``sessionshare/contrib/django/session.py``; each line of that
list is a test below. Django's own ``SessionTestsMixin`` runs against the
engine too (tests/frameworks/test_django.py); the tests here cover what it
does not: sharing (a logout elsewhere, limits the app cannot lengthen).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import django
import pytest
import webtest
from conftest import FakeClock, live_session_keys
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import path
from django.utils import timezone
from flow import IDP, LOGIN, SHOP
from flow import Browser as FlowBrowser
from flow import idp_app as flow_idp_app

from sessionshare import ConfigurationError, IdpAuthMiddleware, MemoryStore, Session, SyncKey
from sessionshare import SessionStore as Store
from sessionshare.contrib.django.session import SessionStore
from sessionshare.contrib.django.site import NAMESPACE
from sessionshare.contrib.django.wsgi import AppFacts, get_wsgi_application, middleware_options
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.lifecycle import Lifecycle
from sessionshare.core.session import state_of

NOW = 1_800_000_000.0


KEY = SyncKey.parse(SyncKey.generate())


def rules(origin: str = SHOP, idle: int = 1800, absolute: int = 8 * 3600,
          now: float = NOW) -> Lifecycle:
    return Lifecycle(cookie=CookieSpec("sessionshare", secure=False), key=KEY, audience=origin,
                     idle_timeout=idle, absolute_timeout=absolute, key_prefix="t:",
                     max_session_bytes=64 * 1024, clock=lambda: now)


def facts(role: Any = "remote", origin: str = SHOP, idle: int = 1800,
          absolute: int = 8 * 3600, now: float = NOW) -> AppFacts:
    return AppFacts(role=role, origin=origin, user_key="user", idle_timeout=idle,
                    absolute_timeout=absolute, clock=lambda: now,
                    lifecycle=rules(origin, idle, absolute, now))


#: The id of the session :func:`joined` makes (one of this test's key's).
SID = rules().ids.new()


def joined(origin: str = SHOP, user: str = "alice") -> Session:
    """A stored, signed-in session ``origin`` joined, as the middleware loads one."""
    record = Session()
    record["user"] = user
    plan = state_of(record).write_plan(NOW, joined_as=None)
    meta = {**(plan.meta or {}), "o:" + origin: int(NOW)}
    from sessionshare.store.base import SessionRecord

    session = Session(lambda sid: SessionRecord(dict(plan.changed), meta), SID)
    state_of(session).audience = origin  # as the lifecycle that opens it sets it
    assert state_of(session).has_joined(origin)
    return session


def test_it_is_a_django_session_over_the_shared_one() -> None:
    shared = Session()
    store = SessionStore(shared=shared, facts=facts())
    assert isinstance(store, SessionBase)
    assert not store.accessed and not store.modified
    store["cart"] = ["mug"]
    assert shared["cart"] == ["mug"] and store.accessed and store.modified
    store["cart"].append("teapot")  # in place: noticed without modified = True
    assert shared["cart"] == ["mug", "teapot"] and shared.modified
    store.modified = False  # Django code may say so: it holds until the next change...
    assert not store.modified and shared.modified  # ...and the change is persisted anyway
    store["cart"].append("cup")  # in place, after modified = False: noticed again
    assert store.modified
    assert store.get("missing", 1) == 1 and store.setdefault("n", 0) == 0
    store.update({"a": 1})
    assert store.pop("a") == 1 and "a" not in shared
    assert sorted(store.keys()) == ["cart", "n"] and dict(store.items())["n"] == 0
    with pytest.raises(TypeError, match=r"session\['when'\]: only JSON values"):
        store["when"] = datetime.datetime.now()


def test_the_async_twins_go_through_the_same_view() -> None:
    shared = Session()
    store = SessionStore(shared=shared, facts=facts())
    if not hasattr(SessionBase, "aset"):  # Django 4.2 has no async session API
        assert django.VERSION < (5, 0)
        return

    async def use() -> Any:
        await store.aset("cart", ["mug"])
        await store.acycle_key()
        return await store.aget("cart")

    assert asyncio.run(use()) == ["mug"] and shared["cart"] == ["mug"]


def test_djangos_auth_and_csrf_keys_are_this_sites_own() -> None:
    shared = joined()
    forum = SessionStore(shared=shared, facts=facts(origin=SHOP))
    club = SessionStore(shared=shared, facts=facts(origin="http://club.test"))
    forum["_csrftoken"] = "forum-token"
    forum[SESSION_KEY] = "7"  # Django's login() writes these, then sends user_logged_in
    forum.view.bind_sign_in()  # type: ignore[union-attr]
    assert forum[SESSION_KEY] == "7" and forum["_csrftoken"] == "forum-token"
    # Not in the shared namespace, and not seen by another Django site.
    assert SESSION_KEY not in shared and "_csrftoken" not in shared
    assert shared[NAMESPACE + SHOP] == {
        SESSION_KEY: "7", "_csrftoken": "forum-token", "signed_in_as": "alice"}
    assert SESSION_KEY not in club and club.get("_csrftoken") is None
    assert not any(key.startswith(NAMESPACE) for key in club.keys())
    with pytest.raises(KeyError, match="Django sites' own"):
        club[NAMESPACE + SHOP] = {}
    del forum["_csrftoken"]
    assert "_csrftoken" not in shared[NAMESPACE + SHOP]


@pytest.mark.parametrize("change", ["another user", "signed out", "withdrawn"])
def test_djangos_sign_in_lasts_only_as_long_as_the_shared_one(change: str) -> None:
    shared = joined()
    store = SessionStore(shared=shared, facts=facts())
    store[SESSION_KEY] = "7"
    store.view.bind_sign_in()  # type: ignore[union-attr]
    assert SESSION_KEY in store
    if change == "another user":
        shared["user"] = "bob"
    elif change == "signed out":
        del shared["user"]
    else:
        shared.withdraw(SHOP)
    # Django then sees an anonymous user, and RemoteUserMiddleware signs the new one in.
    assert SESSION_KEY not in store and store.get(SESSION_KEY) is None


def test_cycle_key_regenerates_and_flush_invalidates() -> None:
    shared = joined()
    store = SessionStore(shared=shared, facts=facts())
    store.cycle_key()
    # At a remote that joined the session the id stays (only the IdP moves it)...
    assert state_of(shared).write_plan(NOW, joined_as=SHOP).unchanged
    # ...elsewhere the session moves to a fresh id (one conditional store step).
    plan = state_of(shared).write_plan(NOW, joined_as=None)
    assert plan.move_from == SID and plan.save_to not in (None, SID)
    store.flush()
    assert state_of(shared).invalidated and dict(store) == {}
    store.delete()
    assert state_of(shared).invalidated


def test_clear_removes_every_key_and_keeps_the_session() -> None:
    shared = joined()
    store = SessionStore(shared=shared, facts=facts())
    store["cart"] = ["mug"]
    store.clear()
    assert len(shared) == 0 and not state_of(shared).invalidated and store.is_empty()


def test_session_key_is_a_stable_reference_not_the_id() -> None:
    assert SessionStore(shared=Session(), facts=facts()).session_key is None  # new
    shared = joined()
    key = SessionStore(shared=shared, facts=facts()).session_key
    assert key and SID not in key and SID.split(".")[0] not in key
    assert key == SessionStore(shared=shared, facts=facts()).session_key


def test_expiry_is_the_stricter_of_the_apps_ask_and_the_sessions_limits() -> None:
    shared = joined()  # created and signed in at NOW
    store = SessionStore(shared=shared, facts=facts(idle=1800, absolute=3600))
    # No ask: Django's SESSION_COOKIE_AGE (two weeks), capped by the idle timeout; a
    # persistent cookie, as SESSION_EXPIRE_AT_BROWSER_CLOSE at Django's default (False)
    # says (the demo's forum, whose settings these tests run on, sets it True).
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=False):
        assert store.get_expiry_age() == 1800 and store.get_expire_at_browser_close() is False
    # Near the absolute limit, what is left of it.
    late = SessionStore(shared=shared, facts=facts(idle=1800, absolute=3600, now=NOW + 3000))
    assert late.get_expiry_age() == 600
    # A shorter ask holds, as Django reads it; a longer one is capped.
    store.set_expiry(60)
    assert store.get_expiry_age() == 60 and state_of(shared).meta["e:" + SHOP] == NOW + 60
    assert store.get_expire_at_browser_close() is False  # a cookie of 60 s
    store.set_expiry(datetime.timedelta(days=14))
    assert store.get_expiry_age() == 1800
    store.set_expiry(None)
    assert state_of(shared).meta["e:" + SHOP] == 0  # the ask withdrawn
    store.set_expiry(0)  # a browser-session cookie: what holds already, no ask
    assert state_of(shared).meta["e:" + SHOP] == 0 and store.get_expiry_age() == 1800


def test_limits_at_least_session_cookie_age_give_djangos_own_expiry_age() -> None:
    # A new session is under this app's limits (a stored one under those its id carries).
    two_weeks = 14 * 24 * 3600
    store = SessionStore(shared=Session(), facts=facts(idle=two_weeks, absolute=2 * two_weeks))
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=False):  # Django's default
        assert store.get_expiry_age() == two_weeks
        assert store.get_expire_at_browser_close() is False
    short = SessionStore(shared=Session(),
                         facts=facts(idle=two_weeks - 1, absolute=2 * two_weeks))
    assert short.get_expiry_age() == two_weeks - 1  # the control: one second less, capped


def test_what_needs_the_store_is_refused_outside_a_served_request() -> None:
    store = SessionStore(shared=Session(), facts=facts())
    with pytest.raises(RuntimeError, match="cannot be saved before its response"):
        store.save()
    with pytest.raises(RuntimeError, match="cannot be saved before its response"):
        store.create()
    # Text no session key has names no session; another session's key cannot be found.
    assert store.exists(None) is False and store.exists("k" * 32) is False
    store.delete("k" * 32)
    with pytest.raises(ValueError, match="only through the browser's cookie"):
        store.exists("0" * 40)
    with pytest.raises(ValueError, match="only through the browser's cookie"):
        store.delete("0" * 40)
    SessionStore.clear_expired()  # `manage.py clearsessions`: the store expires sessions


def test_a_session_store_outside_a_request_says_what_to_serve() -> None:
    # Django's test Client.session and Client.login() build one from SESSION_ENGINE.
    detached = SessionStore()
    assert detached.session_key is None and not detached.modified
    with pytest.raises(RuntimeError, match="get_wsgi_application"):
        detached["user"] = "mallory"
    with pytest.raises(RuntimeError, match="Client.login"):
        detached.save()


# -- configuration -----------------------------------------------------------------
def test_the_settings_dict_takes_the_middlewares_option_names() -> None:
    role, values = middleware_options({
        "store": "memory://", "key": "k", "app_url": SHOP, "idp_url": LOGIN,
        "idle_timeout": "600", "cookie_secure": "false",
    }, environ={})
    assert role == "remote" and isinstance(values["store"], MemoryStore)
    assert values["idle_timeout"] == 600 and values["cookie_secure"] is False
    assert middleware_options({"known_remote_hosts": [SHOP]}, environ={})[0] == "idp"
    # An option the dict leaves out may come from its variable.
    assert middleware_options({}, environ={"SESSIONSHARE_IDP_URL": LOGIN})[0] == "remote"


@pytest.mark.parametrize(("config", "message"), [
    ({"idp_url": LOGIN, "idle_timout": 5},
     r"unknown option\(s\) 'idle_timout' \(did you mean 'idle_timeout'\?\)"),
    ({}, "either idp_url .* or known_remote_hosts .*, not neither"),
    ({"idp_url": LOGIN, "known_remote_hosts": [SHOP]}, "not both"),
    ({"idp_url": LOGIN, "token_ttl": "soon"}, r"SESSIONSHARE\['token_ttl'\] is invalid"),
    ({"known_remote_hosts": [SHOP], "protect": False},
     r"'protect', for remotes only: this site is the IdP \(known_remote_hosts is set\)"),
    ({"idp_url": LOGIN, "login_path": "/in"},
     r"'login_path', for the IdP only: this site is a remote"),
])
def test_a_bad_settings_dict_says_what_to_change(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        middleware_options(config, environ={})


def test_bad_values_are_the_middlewares_own_errors() -> None:
    with pytest.raises(ConfigurationError, match="idle_timeout must be a positive number"):
        get_wsgi_application(store=MemoryStore(), key=SyncKey.generate(), app_url=SHOP,
                             idp_url=LOGIN, cookie_secure=False, idle_timeout=-1)


def test_plain_remote_user_middleware_is_refused_where_paths_are_public() -> None:
    middleware = [
        "sessionshare.contrib.django.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.RemoteUserMiddleware",
    ]
    options = {"store": MemoryStore(), "key": SyncKey.generate(), "app_url": SHOP,
               "idp_url": LOGIN, "cookie_secure": False}
    with override_settings(MIDDLEWARE=middleware):
        with pytest.raises(ConfigurationError, match="PersistentRemoteUserMiddleware"):
            get_wsgi_application(protect=False, **options)
        get_wsgi_application(**options)  # every path protected: REMOTE_USER always set


def test_djangos_own_session_engine_or_handler_is_refused_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {"store": MemoryStore(), "key": SyncKey.generate(), "app_url": IDP,
               "known_remote_hosts": [SHOP], "cookie_secure": False}
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db"):
        with pytest.raises(ImproperlyConfigured, match="SESSION_ENGINE"):
            get_wsgi_application(**options)
    from django.core.wsgi import get_wsgi_application as djangos

    plain = webtest.TestApp(djangos(), extra_environ={"HTTP_HOST": "id.test"})
    plain.get("/whoami", status=500)  # Django turns the error into its 500 page, and logs it
    assert "serve sessionshare.contrib.django.wsgi.get_wsgi_application()" in caplog.text


# -- in requests: what needs the store ----------------------------------------------------
#: This module's views, each a step a test runs inside a request: name -> the step, given
#: the request, answering what the test should see (JSON).
STEPS: dict[str, Callable[[Any], Any]] = {}


def run_step(request: Any) -> HttpResponse:
    return JsonResponse({"seen": STEPS[request.GET["step"]](request)})


urlpatterns = [path("step", run_step)]


class DjangoSite:
    """The suite's Django project behind the remote's (or the IdP's) middleware, serving
    this module's steps, and one browser's cookie for it."""

    def __init__(self, role: str, store: Store, **options: Any) -> None:
        common: dict[str, Any] = {"store": store, "key": SyncKey.generate(),
                                  "cookie_secure": False, "protect": False, **options}
        if role == "remote":
            self.origin = SHOP
            common.update(app_url=SHOP, idp_url=LOGIN)
        else:
            self.origin = IDP
            del common["protect"]
            common.update(app_url=IDP, known_remote_hosts=[SHOP])
        self.middleware = get_wsgi_application(**common)
        self.app = webtest.TestApp(self.middleware,
                                   extra_environ={"HTTP_HOST": self.origin.split("//")[1]})

    def step(self, name: str, step: Callable[[Any], Any], **kwargs: Any) -> Any:
        STEPS[name] = step
        return self.app.get(f"/step?step={name}", headers={"Accept": "text/html"}, **kwargs)

    def logout_elsewhere(self) -> None:
        """Another tab of the browser signs out (the middleware's logout: everywhere)."""
        cookie = self.app.cookies["sessionshare"]
        other = webtest.TestApp(self.middleware,
                                extra_environ={"HTTP_HOST": self.origin.split("//")[1]})
        other.set_cookie("sessionshare", cookie)
        answer = other.post("/_sessionshare/logout", headers={"Origin": self.origin})
        assert answer.status_int == 303, answer


@pytest.fixture(params=["remote", "idp"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(role: str, store: Store) -> Iterator[DjangoSite]:
    with override_settings(ROOT_URLCONF=__name__):
        yield DjangoSite(role, store)
    STEPS.clear()


def test_save_stores_a_new_session_at_once_and_the_response_carries_its_cookie(
    site: DjangoSite, store: Store,
) -> None:
    def save_new(request: Any) -> Any:
        request.session["cart"] = ["mug"]
        assert request.session.session_key is None and live_session_keys(store) == []
        request.session.save()
        # Stored now -- another request could read it -- and its key known at once.
        return [request.session.session_key, len(live_session_keys(store))]

    key, stored = site.step("save_new", save_new).json["seen"]
    assert key is not None and stored == 1
    # The browser got the cookie of that very session: its next request has the same key.
    assert site.step("again", lambda r: [r.session.session_key, r.session["cart"]]).json[
        "seen"] == [key, ["mug"]]


def test_save_after_a_logout_elsewhere_raises_update_error_and_brings_nothing_back(
    site: DjangoSite, store: Store,
) -> None:
    site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))
    assert len(live_session_keys(store)) == 1

    def save_after_logout(request: Any) -> Any:
        assert request.session["cart"] == ["mug"]  # read before the logout
        site.logout_elsewhere()
        request.session["cart"] = ["mug", "teapot"]
        raised = []
        try:
            request.session.save(must_create=True)  # this request read it stored: refused
        except CreateError:
            raised.append("CreateError")
        try:
            request.session.save()
        except UpdateError:
            raised.append("UpdateError")
        return [raised, request.session.load(), request.session.session_key]

    answer = site.step("save_after_logout", save_after_logout)
    assert answer.json["seen"] == [["CreateError", "UpdateError"], {}, None]
    # Nothing was brought back: the store holds no session, the browser no cookie.
    assert live_session_keys(store) == []
    assert "sessionshare" not in site.app.cookies


def test_an_uncaught_update_error_is_djangos_400_and_the_cookie_is_cleared(
    site: DjangoSite, store: Store,
) -> None:
    site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))

    def save_after_logout(request: Any) -> Any:
        request.session.get("cart")
        site.logout_elsewhere()
        request.session["cart"] = ["mug", "teapot"]
        request.session.save()  # not caught: as Django's SessionMiddleware would answer

    answer = site.step("uncaught", save_after_logout, status=400)  # not Django's 500
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert live_session_keys(store) == []


def test_cycle_key_names_the_new_key_at_once_and_the_move_takes_it(
    site: DjangoSite, store: Store,
) -> None:
    site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))
    (before,) = live_session_keys(store)

    def cycle(request: Any) -> Any:
        old = request.session.session_key
        request.session.cycle_key()
        cycled = request.session.session_key
        # The move is the response's (one conditional step; a sign-in here would take
        # the same id): the store holds the old id until then.
        return [old != cycled, request.session.exists(old), request.session.exists(cycled),
                live_session_keys(store) == [before], cycled]

    *seen, cycled = site.step("cycle", cycle).json["seen"]
    assert seen == [True, False, True, True]
    assert before not in live_session_keys(store)
    assert site.step("key", lambda r: r.session.session_key).json["seen"] == cycled

    def cycle_and_save(request: Any) -> Any:
        request.session.cycle_key()
        cycled = request.session.session_key
        request.session.save()  # moves now, to the very key named
        return [cycled == request.session.session_key, len(live_session_keys(store))]

    assert site.step("cycle_and_save", cycle_and_save).json["seen"] == [True, 1]


def test_flush_ends_the_session_in_the_store_at_once(site: DjangoSite, store: Store) -> None:
    site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))

    def flush(request: Any) -> Any:
        old = request.session.session_key
        request.session.flush()
        return [request.session.exists(old), live_session_keys(store),
                request.session.session_key]

    assert site.step("flush", flush).json["seen"] == [False, [], None]
    assert "sessionshare" not in site.app.cookies


def test_an_expiry_longer_than_the_session_allows_is_capped(role: str, store: Store) -> None:
    with override_settings(ROOT_URLCONF=__name__):
        site = DjangoSite(role, store, idle_timeout=600)

    def ask_for_two_weeks(request: Any) -> Any:
        request.session["cart"] = ["mug"]
        request.session.set_expiry(datetime.timedelta(days=14))
        left = (request.session.get_expiry_date() - timezone.now()).total_seconds()
        return [request.session.get_expiry_age(), 595 < left <= 600,
                request.session.get_expire_at_browser_close()]

    with override_settings(ROOT_URLCONF=__name__):
        answer = site.step("ask", ask_for_two_weeks)
    assert answer.json["seen"] == [600, True, False]
    # The cookie lasts what the session allows, not the two weeks asked.
    (cookie,) = answer.headers.getall("Set-Cookie")
    assert "; Max-Age=600;" in cookie and "; Expires=" in cookie


def test_an_expiry_in_the_past_ends_the_session_for_every_app(
    site: DjangoSite, store: Store,
) -> None:
    site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))

    def expire(request: Any) -> Any:
        request.session.set_expiry(datetime.timedelta(seconds=-10))
        return None

    site.step("expire", expire)
    assert live_session_keys(store) == []
    assert site.step("look", lambda r: dict(r.session)).json["seen"] == {}


def test_an_expiry_in_seconds_ends_the_session_when_it_passes_and_counts_from_each_change(
    role: str, store: Store, clock: FakeClock,
) -> None:
    with override_settings(ROOT_URLCONF=__name__):
        site = DjangoSite(role, store, clock=clock)
        site.step("fill", lambda r: r.session.update({"cart": ["mug"]}))
        site.step("ask", lambda r: r.session.set_expiry(60))
        clock.advance(50)
        site.step("change", lambda r: r.session.update({"seen": 1}))  # counts from here
        clock.advance(50)
        assert site.step("look", lambda r: r.session.get("cart")).json["seen"] == ["mug"]
        clock.advance(61)  # no change since: past the ask, the session ended
        assert site.step("look", lambda r: dict(r.session)).json["seen"] == {}
    assert live_session_keys(store) == []


def test_an_expiry_longer_than_the_idp_grants_is_capped_at_a_remote(store: Store) -> None:
    """Signed in at an IdP whose idle timeout is 5 minutes, the Django remote (30 by
    default) cannot ask for more: the session's id carries the IdP's limits."""
    key = SyncKey.generate()
    with override_settings(ROOT_URLCONF=__name__):
        forum = DjangoSite("remote", store, key=key, protect=["/step"])
    idp = IdpAuthMiddleware(flow_idp_app, app_url=IDP, known_remote_hosts=[SHOP], store=store,
                            key=key, cookie_secure=False, idle_timeout=300)
    deployment = SimpleNamespace(idp=idp, shop=forum.middleware, blog=forum.middleware)

    def ask_for_an_hour(request: Any) -> Any:
        request.session.set_expiry(3600)
        return [request.META.get("REMOTE_USER"), request.session.get_expiry_age()]

    STEPS["ask"] = ask_for_an_hour
    with override_settings(ROOT_URLCONF=__name__):
        page = FlowBrowser(deployment).sign_in_at(SHOP + "/step?step=ask")
    assert page.json["seen"] == ["alice", 300]
    STEPS.clear()


# -- review: this site's expiry as another app of the deployment wrote it ----------------
@pytest.mark.parametrize("crafted", ["not a date", 10**400, [1], "2030-01-01T00:00:00"],
                         ids=["text", "huge", "list", "naive"])
def test_an_expiry_another_app_wrote_in_this_sites_dict_is_no_500(crafted: Any) -> None:
    # Any app of the deployment can write the top-level key "django:<origin>" (only Django's
    # own SiteView refuses it). What it put there as _session_expiry must not make every
    # later response of this site that changes the session a 500 (the middleware renews
    # the expiry on the way out), nor Django's get_expiry_age() raise.
    shared = joined()
    shared[NAMESPACE + SHOP] = {"_session_expiry": crafted}
    store = SessionStore(shared=shared, facts=facts())
    store["cart"] = ["mug"]
    store.renew_expiry()  # what sessionshare's SessionMiddleware does on the way out
    assert 0 <= store.get_expiry_age() <= 1800
    assert shared.ends_at is None  # nothing asked by what this site cannot read


# -- the cookie Django's SessionMiddleware would set: persistent or a browser-session one ------
def _cookie_of(answer: Any) -> str | None:
    found = [value for value in answer.headers.getall("Set-Cookie")
             if value.startswith("sessionshare=")]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.parametrize(
    ("at_browser_close", "expiry", "max_age"),
    [(False, None, 600), (False, 0, None), (False, 120, 120), (True, None, None),
     (True, 0, None), (True, 120, 120), (False, 14 * 24 * 3600, 600)],
    ids=["default", "set_expiry-0", "seconds", "browser-close-setting", "both-0",
         "seconds-over-setting", "longer-than-allowed"],
)
def test_the_cookie_persists_as_djangos_settings_and_set_expiry_say(
    role: str, store: Store, clock: FakeClock, at_browser_close: bool, expiry: Any,
    max_age: int | None,
) -> None:
    # Django sets a persistent cookie of get_expiry_age() unless get_expire_at_browser_close():
    # the same here, the age capped by what the shared session allows (idle_timeout=600).
    def fill(request: Any) -> Any:
        request.session["cart"] = ["mug"]
        if expiry is not None:
            request.session.set_expiry(expiry)
        return [request.session.get_expire_at_browser_close(),
                request.session.get_expiry_age()]

    with override_settings(ROOT_URLCONF=__name__,
                           SESSION_EXPIRE_AT_BROWSER_CLOSE=at_browser_close):
        site = DjangoSite(role, store, clock=clock, idle_timeout=600)
        answer = site.step("fill", fill)
    assert answer.json["seen"] == [max_age is None, min(max_age or 600, 600)]
    cookie = _cookie_of(answer)
    assert cookie is not None, answer.headers
    if max_age is None:
        assert "Max-Age" not in cookie and "Expires" not in cookie
    else:
        assert f"; Max-Age={max_age};" in cookie and "; Expires=" in cookie


def test_a_persistent_cookie_slides_with_each_use_of_the_session_and_only_then(
    clock: FakeClock, role: str, store: Store,
) -> None:
    # The shared session's idle limit slides with each request that reads it, so the
    # cookie capped by it is re-sent with each answer that used the session; an answer
    # that never looked at it sends none (and no Vary: it stays cacheable). Django's
    # default SESSION_EXPIRE_AT_BROWSER_CLOSE (the demo's forum sets it True).
    with override_settings(ROOT_URLCONF=__name__, SESSION_EXPIRE_AT_BROWSER_CLOSE=False):
        site = DjangoSite(role, store, clock=clock, idle_timeout=600)
        first = _cookie_of(site.step("fill", lambda r: r.session.update({"cart": ["mug"]})))
        assert first is not None and "; Max-Age=600;" in first
        clock.advance(100)
        read = site.step("read", lambda r: r.session.get("cart"))
        assert read.json["seen"] == ["mug"]
        again = _cookie_of(read)
        assert again is not None and "; Max-Age=600;" in again
        assert again.split(";")[0] == first.split(";")[0]  # the same session
        untouched = site.step("untouched", lambda r: "no session")
        assert _cookie_of(untouched) is None and "Vary" not in untouched.headers
        # set_expiry(0): the persistent cookie the browser holds is turned into one that
        # ends with the browser, the same session's.
        ended = _cookie_of(site.step("close", lambda r: r.session.set_expiry(0)))
        assert ended is not None and "Max-Age" not in ended and "Expires" not in ended
        assert ended.split(";")[0] == first.split(";")[0]
        # Then only a change re-sends it (as Django's middleware): a read sends none.
        assert _cookie_of(site.step("read", lambda r: r.session.get("cart"))) is None
