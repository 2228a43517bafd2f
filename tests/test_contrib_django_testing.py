"""``sessionshare.contrib.django.testing.Client``: Django's test client through the middleware.

The forum example's views (``examples/forum_django.py``, served by the
suite's one Django project, tests/django_site.py) under Django's own test
client, signed in with :func:`sessionshare.testing.sign_in`, on MemoryStore
and real Redis. The middleware runs on every request: an anonymous client is
sent to the IdP, the middleware's cookies reach ``client.cookies``, a logout
ends the session; Django keeps its CSRF checks. Django's own ``Client``,
which bypasses the middleware, and Django's ``login()`` are refused.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client as DjangoClient
from flow import CALLBACK, HTML, IDP, LOGIN, SHOP

from sessionshare import SessionStore, SyncKey
from sessionshare.contrib.django.testing import Client
from sessionshare.testing import sign_in

FORUM = SHOP
ACCEPT_HTML = {"HTTP_ACCEPT": HTML["Accept"]}


@pytest.fixture
def options(store: SessionStore, clock: Any) -> dict[str, Any]:
    # The forum's own settings (create_app): public pages, login_required views.
    return {"store": store, "key": SyncKey.generate(), "cookie_secure": False, "clock": clock,
            "app_url": FORUM, "idp_url": LOGIN, "protect": False}


def _text(response: Any) -> str:
    return str(response.content.decode())  # Django 4.2 has no response.text


def _client(options: dict[str, Any], **kwargs: Any) -> Client:
    return Client(options=options, HTTP_HOST=urlsplit(FORUM).netloc, **kwargs)


def test_an_anonymous_client_is_sent_to_the_idp_by_the_middleware(
    options: dict[str, Any]
) -> None:
    client = _client(options)
    to_login = client.get("/", **ACCEPT_HTML)  # Django's login_required
    assert to_login.status_code == 302 and to_login["Location"].startswith("/accounts/login/")
    to_idp = client.get(to_login["Location"], **ACCEPT_HTML)  # the middleware's answer
    assert to_idp.status_code == 302 and to_idp["Location"].startswith(LOGIN + "?callback=")
    assert "X-Sessionshare-Test-Answer" not in to_idp
    assert any(name.startswith("sessionshare") for name in client.cookies)  # the state cookie
    api = client.get("/orders", HTTP_ACCEPT="application/json")
    assert api.status_code == 302  # login_required first, then the middleware's JSON 401:
    refused = client.get(api["Location"], HTTP_ACCEPT="application/json")
    assert refused.status_code == 401 and refused.json()["error"] == "not_authenticated"


def test_a_signed_in_client_sees_the_forum_and_its_csrf_form_works(
    options: dict[str, Any]
) -> None:
    client = _client(options, enforce_csrf_checks=True)
    sign_in(client, client.middleware, "alice", allow_shared_store=True, cart=["teapot"])
    # As after a real hand-off, login_required goes once through LOGIN_URL, where the
    # middleware publishes the user and Django logs them in: follow=True stays in the app.
    page = client.get("/", follow=True, **ACCEPT_HTML)
    assert page.status_code == 200
    assert page.redirect_chain == [("/accounts/login/?next=/", 302), ("/", 302)]
    assert "<b id=user>alice</b>" in _text(page) and "<span id=cart>teapot</span>" in _text(page)
    assert User.objects.filter(username="alice").exists()  # RemoteUserBackend, first sight
    token = re.search(r'name=csrfmiddlewaretoken value="([^"]+)"', _text(page))
    assert token is not None
    assert client.post("/sticker").status_code == 403  # Django's CSRF check still runs
    added = client.post("/sticker", {"csrfmiddlewaretoken": token.group(1)})
    assert added.status_code == 302 and added["Location"] == "/"
    page = client.get("/", **ACCEPT_HTML)
    assert "teapot, sticker" in _text(page) and "Added a sticker." in _text(page)
    assert page.context is None and page.wsgi_request.path == "/"  # Django's extras stay


def test_a_logout_through_the_client_ends_the_session(options: dict[str, Any]) -> None:
    client = _client(options)
    sign_in(client, client.middleware, "alice", allow_shared_store=True)
    assert client.get("/", follow=True, **ACCEPT_HTML).status_code == 200
    assert client.get("/whoami").json()["user"] == "alice"  # Django's login, kept
    out = client.post("/_sessionshare/logout", HTTP_ORIGIN=FORUM)
    assert out.status_code == 303
    assert client.cookies["sessionshare"].value == ""  # the middleware's deletion, kept
    assert client.get("/whoami").json()["user"] is None
    assert client.get("/", **ACCEPT_HTML).status_code == 302


def test_a_client_that_did_not_sign_in_is_anonymous(options: dict[str, Any]) -> None:
    signed_in, other = _client(options), _client(options)
    sign_in(signed_in, signed_in.middleware, "alice", allow_shared_store=True)
    assert signed_in.get("/", follow=True, **ACCEPT_HTML).status_code == 200
    with pytest.raises(RuntimeError, match="cannot follow a redirect to another site"):
        other.get("/", follow=True, **ACCEPT_HTML)  # to the IdP: never this app's /login


def test_djangos_own_client_and_djangos_login_are_refused(options: dict[str, Any]) -> None:
    client = _client(options)
    with pytest.raises(TypeError, match="contrib.django.testing.Client"):
        sign_in(DjangoClient(), client.middleware, "alice")
    with pytest.raises(TypeError, match="sign_in"):
        client.login(username="alice", password="x")
    user, _ = User.objects.get_or_create(username="alice")
    with pytest.raises(TypeError, match="sign_in"):
        client.force_login(user)


def test_a_django_idp_hands_off_through_the_client(options: dict[str, Any]) -> None:
    # Django's LoginView at the IdP's login path: the middleware's 303 to the remote
    # replaces Django's own redirect after the sign-in, and the client sees that one.
    user, _ = User.objects.get_or_create(username="carol")
    user.set_password("secret")
    user.save()
    idp_options = {name: options[name] for name in ("store", "key", "cookie_secure", "clock")}
    client = Client(options={**idp_options, "app_url": IDP, "known_remote_hosts": [FORUM]},
                    HTTP_HOST="id.test")
    login = f"/login?callback={quote(FORUM + CALLBACK, safe='')}&state={'s' * 43}"
    form = client.get(login, **ACCEPT_HTML)
    assert form.status_code == 200 and "login form" in _text(form)
    back = client.post(login, {"username": "carol", "password": "secret"}, **ACCEPT_HTML)
    assert back.status_code == 303 and back["Location"].startswith(FORUM + CALLBACK + "?token=")
    assert "X-Sessionshare-Test-Answer" not in back
    # A client signed in with the helper is handed off at once, with no form.
    signed_in = Client(options={**idp_options, "app_url": IDP, "known_remote_hosts": [FORUM]},
                       HTTP_HOST="id.test")
    sign_in(signed_in, signed_in.middleware, "carol", allow_shared_store=True)
    at_once = signed_in.get(login.replace("s" * 43, "t" * 43), **ACCEPT_HTML)
    assert at_once.status_code == 303 and "?token=" in at_once["Location"]
