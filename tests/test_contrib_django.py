"""``sessionshare.contrib.django``: Django sites on both sides of the hand-off.

The Django apps are the forum example (``examples/forum_django.py``) and the
test views of ``tests/django_site.py``, one Django project served by
``get_wsgi_application(**options)`` as a remote or as the IdP; next to them
the Flask IdP of ``examples/`` and plain WSGI remotes. Everything goes
through the WSGI middleware, under WebTest (Django's own test ``Client`` skips
the WSGI layer the hand-off lives in; the library's one that does not is
tested in tests/test_contrib_django_testing.py), against MemoryStore and real
Redis.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import webtest
from conftest import genuine_cookie, is_dead
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.models import User
from django.test import override_settings
from flow import BLOG, CALLBACK, HTML, IDP, LOGIN, SHOP, remote_app

from sessionshare import (
    MemoryStore,
    RemoteSessionMiddleware,
    SessionStore,
    StoreUnavailable,
    SyncKey,
)
from sessionshare.contrib.django.site import NAMESPACE
from sessionshare.contrib.django.wsgi import get_wsgi_application
from sessionshare.demo import load_example

FORUM = SHOP  # the Django remote answers at shop.test
CLUB = "http://club.test"  # a second Django remote
AUTH_KEYS = {"_auth_user_id", "_auth_user_backend", "_auth_user_hash"}


def all_session_keys(store: SessionStore) -> list[str]:
    """Every session key ``store`` holds, retired ids (markers) included."""
    if isinstance(store, MemoryStore):
        return list(store.sessions())
    client = store.client  # type: ignore[attr-defined]
    return [k.decode() if isinstance(k, bytes) else k
            for k in client.scan_iter(match="sessionshare:s:*")]


class Sites:
    """One browser over an IdP and remotes: a cookie jar per host, absolute URLs."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = {
            urlsplit(origin).hostname: webtest.TestApp(
                app, extra_environ={"HTTP_HOST": urlsplit(origin).netloc})
            for origin, app in apps.items()
        }

    def request(self, method: str, url: str, params: Any = "", **kwargs: Any) -> Any:
        parts = urlsplit(url)
        app = self.apps[parts.hostname]
        kwargs.setdefault("headers", HTML)
        kwargs.setdefault("status", "*")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if method == "GET":
            return app.get(target, **kwargs)
        return app.post(target, params, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, params: Any = "", **kwargs: Any) -> Any:
        return self.request("POST", url, params, **kwargs)

    def follow(self, response: Any, origin: str) -> Any:
        """Follow redirects (relative ones stay at ``origin``) to the first other answer."""
        while response.status_int in (302, 303):
            location = response.location
            if location.startswith("/"):
                location = origin + location
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(location))
            response = self.get(location)
        return response

    def sign_in_at(self, url: str, user: str = "alice", password: str = "wonderland") -> Any:
        """Visit ``url`` signed out, fill in the IdP's form, return the page shown at last."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        form = self.follow(self.get(url), origin)
        assert form.request.host == "id.test" and "form" in form.text, form
        login_url = IDP + form.request.path_qs
        fields = {"username": user, "password": password}
        token = re.search(r'name="?(csrf|csrfmiddlewaretoken)"? value="([^"]+)"', form.text)
        if token:
            fields[token.group(1)] = token.group(2)
        return self.follow(self.post(login_url, fields), IDP)


# Loaded once: the Flask IdP hashes its demo users' passwords when it loads.
IDP_FLASK, FORUM_DJANGO = load_example("idp_flask"), load_example("forum_django")


def flask_idp(common: dict[str, Any], remotes: list[str]) -> Any:
    return IDP_FLASK.create_app(app_url=IDP, known_remote_hosts=remotes, **common)


def forum(common: dict[str, Any], origin: str = FORUM, **options: Any) -> Any:
    return FORUM_DJANGO.create_app(app_url=origin, idp_url=LOGIN, **common, **options)


@pytest.fixture
def common(store: SessionStore, clock: Any) -> dict[str, Any]:
    return {"store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock}


@pytest.fixture
def sites(common: dict[str, Any]) -> Sites:
    """The Flask IdP of examples/, the Django forum, and a plain WSGI blog."""
    return Sites({
        IDP: flask_idp(common, [FORUM, BLOG]),
        FORUM: forum(common),
        BLOG: RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN, **common),
    })


def shared_of(sites: Sites, url: str = BLOG + "/read") -> dict[str, Any]:
    """The shared session as a plain WSGI remote reads it (signing it in there first)."""
    page = sites.follow(sites.get(url), BLOG)
    assert page.status_int == 200, page
    return dict(page.json["session"])


def test_login_required_at_the_django_forum_goes_through_the_flask_idp(sites: Sites) -> None:
    # Anonymous: login_required -> LOGIN_URL, which the middleware protects -> the IdP.
    first = sites.get(FORUM + "/")
    assert first.status_int == 302 and first.location == "/accounts/login/?next=/"
    to_idp = sites.get(FORUM + first.location)
    assert to_idp.status_int == 302 and to_idp.location.startswith(LOGIN + "?callback=")
    page = sites.sign_in_at(FORUM + "/")
    assert page.request.url == FORUM + "/" and page.status_int == 200
    assert '<b id=user>alice</b>' in page.text
    # RemoteUserBackend made the local user on first sight.
    assert User.objects.filter(username="alice").exists()
    # Signed in at the forum now: the next visit goes straight to the page.
    again = sites.get(FORUM + "/")
    assert again.status_int == 200 and '<b id=user>alice</b>' in again.text


def test_a_django_remote_next_to_the_flask_idp_shares_one_session(sites: Sites) -> None:
    page = sites.sign_in_at(FORUM + "/")
    assert "<span id=cart>empty</span>" in page.text
    token = re.search(r'csrfmiddlewaretoken value="([^"]+)"', page.text)
    assert token is not None
    added = sites.post(FORUM + "/sticker", {"csrfmiddlewaretoken": token.group(1)})
    assert added.status_int == 302
    page = sites.get(FORUM + "/")
    assert "<span id=cart>sticker</span>" in page.text and "Added a sticker." in page.text
    shared = shared_of(sites)
    assert shared["cart"] == ["sticker"] and shared["user"] == "alice"
    # Django's own keys are not in the shared namespace: they sit in the forum's dict.
    assert not AUTH_KEYS & set(shared)
    assert set(shared[NAMESPACE + FORUM]) >= AUTH_KEYS | {"signed_in_as"}
    assert shared[NAMESPACE + FORUM]["signed_in_as"] == "alice"


class KnownUsersOnly(RemoteUserBackend):  # type: ignore[misc]
    """Admits only users this site created itself."""

    create_unknown_user = False


def test_creating_the_local_user_on_first_sight_can_be_turned_off(sites: Sites) -> None:
    User.objects.filter(username="bob").delete()
    with override_settings(AUTHENTICATION_BACKENDS=[f"{__name__}.KnownUsersOnly"]):
        page = sites.sign_in_at(FORUM + "/", user="bob", password="builder")
        assert page.request.path == "/accounts/login/" and page.status_int == 403
        assert "no account for you" in page.text
        assert not User.objects.filter(username="bob").exists()
        User.objects.create_user("bob")  # made by this site: now bob is let in
        assert "<b id=user>bob</b>" in sites.follow(sites.get(FORUM + "/"), FORUM).text


def test_a_protected_prefix_goes_to_the_idp_directly(common: dict[str, Any]) -> None:
    sites = Sites({IDP: flask_idp(common, [FORUM]),
                   FORUM: forum(common, protect=["/orders"])})
    answer = sites.get(FORUM + "/orders")
    assert answer.status_int == 302 and answer.location.startswith(LOGIN + "?callback=")
    assert sites.sign_in_at(FORUM + "/orders").json["user"] == "alice"
    # A public page keeps Django's sign-in (PersistentRemoteUserMiddleware): no REMOTE_USER.
    public = sites.get(FORUM + "/whoami").json
    assert public["user"] == "alice" and public["remote_user"] is None


def test_a_remote_user_the_server_set_signs_nobody_in_at_the_forum(sites: Sites) -> None:
    # Behind a server or proxy that sets REMOTE_USER, PersistentRemoteUserMiddleware and
    # RemoteUserBackend made an anonymous visitor "admin" (and created the user). The
    # middleware takes out any REMOTE_USER it did not set itself.
    User.objects.filter(username="admin").delete()
    planted = {"REMOTE_USER": "admin"}
    first = sites.get(FORUM + "/", extra_environ=planted)
    assert first.status_int == 302 and first.location == "/accounts/login/?next=/"
    assert not User.objects.filter(username="admin").exists()
    # Signed in through the hand-off, the forum's user is the IdP's, whatever the server set.
    sites.sign_in_at(FORUM + "/")
    page = sites.get(FORUM + "/", extra_environ=planted)
    assert page.status_int == 200 and "<b id=user>alice</b>" in page.text


@pytest.mark.parametrize("where", ["sessionshare logout", "django logout"])
def test_signing_out_at_the_django_forum_signs_out_everywhere(sites: Sites, where: str) -> None:
    page = sites.sign_in_at(FORUM + "/")
    assert page.status_int == 200
    assert shared_of(sites)["user"] == "alice"
    if where == "sessionshare logout":
        answer = sites.post(FORUM + "/_sessionshare/logout", headers={
            **HTML, "Origin": FORUM})
        assert answer.status_int == 303
    else:  # django.contrib.auth.logout(): flush() ends the shared session
        token = sites.get(FORUM + "/form").json["csrf"]
        assert sites.post(FORUM + "/django-logout", {"csrfmiddlewaretoken": token}).text == (
            "signed out")
    # The IdP, the blog and the forum all see nobody.
    assert "Signed in as" not in sites.follow(sites.get(IDP + "/"), IDP).text
    assert sites.get(BLOG + "/read").status_int == 302
    assert sites.get(FORUM + "/whoami").json["user"] is None
    assert sites.get(FORUM + "/").status_int == 302


@pytest.mark.parametrize("use_sessions", [False, True], ids=["csrf-cookie", "csrf-session"])
def test_django_csrf_works_with_and_without_csrf_use_sessions(
    sites: Sites, use_sessions: bool
) -> None:
    with override_settings(CSRF_USE_SESSIONS=use_sessions):
        sites.sign_in_at(FORUM + "/")
        token = sites.get(FORUM + "/form").json["csrf"]
        refused = sites.post(FORUM + "/form", {"item": "mug"})
        assert refused.status_int == 403
        forged = sites.post(FORUM + "/form", {"item": "mug", "csrfmiddlewaretoken": "x" * 64})
        assert forged.status_int == 403
        accepted = sites.post(FORUM + "/form", {"item": "mug", "csrfmiddlewaretoken": token})
        assert accepted.status_int == 200 and accepted.json["cart"] == ["mug"]
        cookies = {cookie.name for cookie in sites.apps["shop.test"].cookiejar}
        shared = shared_of(sites)
    site = shared[NAMESPACE + FORUM]
    assert ("csrftoken" in cookies) is not use_sessions
    # With sessions, the token is the forum's own: in its dict, not shared with other sites.
    assert ("_csrftoken" in site) is use_sessions and "_csrftoken" not in shared
    assert shared["cart"] == ["mug"]


def test_a_second_django_site_keeps_its_own_user_id(common: dict[str, Any]) -> None:
    sites = Sites({
        IDP: flask_idp(common, [FORUM, CLUB, BLOG]),
        FORUM: forum(common),
        CLUB: forum(common, origin=CLUB),
        BLOG: RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN, **common),
    })
    assert sites.sign_in_at(FORUM + "/").status_int == 200
    club = sites.follow(sites.get(CLUB + "/"), CLUB)  # signed in at the IdP: no form
    assert "<b id=user>alice</b>" in club.text
    shared = shared_of(sites)
    assert {NAMESPACE + FORUM, NAMESPACE + CLUB} <= set(shared)
    # Each site's user id is its own entry: a site with another user table (another pk
    # for alice) reads its own, never the other's.
    assert AUTH_KEYS <= set(shared[NAMESPACE + FORUM]) & set(shared[NAMESPACE + CLUB])
    # Neither site's view of the session shows the other's dict or top-level auth keys.
    seen = sites.get(CLUB + "/whoami").json
    assert seen["user"] == "alice"
    assert not any(key.startswith(NAMESPACE) for key in seen["keys"])
    assert AUTH_KEYS <= set(seen["keys"])


def test_another_user_signing_in_at_the_idp_is_not_taken_for_the_first(
    common: dict[str, Any]
) -> None:
    sites = Sites({IDP: flask_idp(common, [FORUM]), FORUM: forum(common)})
    assert "<b id=user>alice</b>" in sites.sign_in_at(FORUM + "/").text
    # Bob signs in at the IdP over alice's session (signing out alice first).
    sites.post(IDP + "/_sessionshare/logout", headers={**HTML, "Origin": IDP})
    page = sites.sign_in_at(FORUM + "/", user="bob", password="builder")
    assert "<b id=user>bob</b>" in page.text
    assert sites.get(FORUM + "/whoami").json["user"] == "bob"


def test_a_django_idp_signs_in_with_djangos_login_view(
    common: dict[str, Any], store: SessionStore
) -> None:
    user, _ = User.objects.get_or_create(username="carol")
    user.set_password("secret")
    user.save()
    idp = get_wsgi_application(app_url=IDP, known_remote_hosts=[FORUM, BLOG], **common)
    sites = Sites({
        IDP: idp,
        FORUM: forum(common),
        BLOG: RemoteSessionMiddleware(remote_app, app_url=BLOG, idp_url=LOGIN, **common),
    })
    # Django's LoginView at the middleware's login path; the form posts back to the same URL.
    page = sites.sign_in_at(FORUM + "/", user="carol", password="secret")
    assert page.request.url == FORUM + "/" and "<b id=user>carol</b>" in page.text
    # Django's login() set the shared user: the plain WSGI blog gets it with no form.
    shared = shared_of(sites)
    assert shared["user"] == "carol"
    assert {NAMESPACE + IDP, NAMESPACE + FORUM} <= set(shared)
    # The IdP's own Django view sees carol too; a wrong password is Django's form error.
    assert sites.get(IDP + "/whoami").json["user"] == "carol"
    sites.post(IDP + "/_sessionshare/logout", headers={**HTML, "Origin": IDP})
    assert sites.get(FORUM + "/whoami").json["user"] is None
    assert sites.get(IDP + "/whoami").json["user"] is None


def test_djangos_login_at_the_idp_moves_the_session_once(
    common: dict[str, Any], store: SessionStore
) -> None:
    """``login()`` cycles the key, then the IdP's sign-in moves the session: to the same
    id, in one store step -- one retired id left behind, not two."""
    user, _ = User.objects.get_or_create(username="carol")
    user.set_password("secret")
    user.save()
    idp = get_wsgi_application(app_url=IDP, known_remote_hosts=[FORUM], **common)
    sites = Sites({IDP: idp, FORUM: forum(common)})
    login_form = sites.follow(sites.get(FORUM + "/"), FORUM)
    assert login_form.request.host == "id.test"
    before = set(all_session_keys(store))
    assert len(before) == 1  # the IdP's anonymous session, holding the pending hand-off
    token = re.search(r'name="?csrfmiddlewaretoken"? value="([^"]+)"', login_form.text)
    assert token is not None
    answer = sites.post(IDP + login_form.request.path_qs, {
        "username": "carol", "password": "secret", "csrfmiddlewaretoken": token.group(1)})
    assert answer.status_int == 303 and answer.location.startswith(FORUM + CALLBACK)
    retired = [key for key in all_session_keys(store) if is_dead(store.load(key, 60))]
    assert retired == list(before)


def test_a_django_idps_remote_gets_the_user_django_signed_in(common: dict[str, Any]) -> None:
    # A wrong password: Django's LoginView shows its form again, nobody is handed off.
    User.objects.get_or_create(username="carol")
    idp = get_wsgi_application(app_url=IDP, known_remote_hosts=[FORUM], **common)
    sites = Sites({IDP: idp, FORUM: forum(common)})
    answer = sites.sign_in_at(FORUM + "/", user="carol", password="wrong")
    assert answer.request.host == "id.test" and answer.status_int == 200
    assert "login form" in answer.text
    assert sites.get(IDP + "/whoami").json["user"] is None


def test_the_callback_and_logout_paths_never_reach_django(sites: Sites) -> None:
    # The middleware answers them before Django's URLconf (and CSRF) see them.
    assert sites.get(FORUM + CALLBACK + "?token=junk").status_int == 403
    assert "<form" in sites.get(FORUM + "/_sessionshare/logout").text


class _DownStore(MemoryStore):
    """A store whose every session read fails, as a Redis outage does."""

    def load(self, key: str, idle_ttl: int) -> Any:
        raise StoreUnavailable("down for the test")


def test_a_store_outage_inside_a_django_view_is_the_middlewares_503(clock: Any) -> None:
    app = forum({"store": _DownStore(clock=clock), "key": SyncKey.generate(),
                 "cookie_secure": False, "clock": clock})
    client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "shop.test"})
    # A public page with a session cookie: the view's first look at the session fails.
    headers = {"Accept": "text/html", "Cookie": genuine_cookie(app)}
    from_view = client.get("/whoami", headers=headers, status="*")
    from_middleware = client.get("/accounts/login/", headers=headers, status="*")
    for response in (from_view, from_middleware):
        assert response.status == "503 Service Unavailable"
        assert response.headers["Retry-After"] == "2"
    assert from_view.body == from_middleware.body
