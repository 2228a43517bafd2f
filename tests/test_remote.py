"""RemoteSessionMiddleware: protect, logout, REMOTE_USER and configuration."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import webtest
from conftest import FakeClock
from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment, reason_of
from itsdangerous import TimestampSigner

from sessionshare import ConfigurationError, MemoryStore, RemoteSessionMiddleware, SyncKey


@pytest.fixture
def dep(clock: FakeClock) -> Deployment:
    return Deployment(MemoryStore(clock=clock), clock)


def test_logout_get_shows_a_button_and_changes_nothing(dep: Deployment) -> None:
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    page = browser.get(SHOP + "/_sessionshare/logout")
    assert page.status_int == 200
    assert '<form method="post" action="/_sessionshare/logout">' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_logout_other_methods_are_405(dep: Deployment, method: str) -> None:
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    app, path = browser.route(SHOP + "/_sessionshare/logout")
    response = app.request(path, method=method, status="*")
    assert response.status_int == 405 and reason_of(response) == "bad_method"
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_logout_without_a_session_is_harmless(dep: Deployment) -> None:
    response = Browser(dep).post(SHOP + "/_sessionshare/logout")
    assert response.status_int == 303 and response.location.endswith("/")
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("signed_in", [False, True], ids=["no session", "control: signed in"])
def test_logout_is_logged_only_when_a_session_ended(
    dep: Deployment, signed_in: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A POST anybody can send without a cookie must not fill the log with logouts
    # that never happened (and drown the real ones an operator looks for).
    browser = Browser(dep)
    if signed_in:
        browser.sign_in_at(SHOP + "/orders")
    caplog.set_level(logging.INFO, logger="sessionshare")
    response = browser.post(SHOP + "/_sessionshare/logout")
    assert response.status_int == 303
    logouts = [r for r in caplog.records if r.getMessage().startswith("logout ")]
    assert len(logouts) == (1 if signed_in else 0)


def test_logout_everywhere_from_the_idp(dep: Deployment) -> None:
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    browser.sign_in_at(BLOG + "/x")
    out = browser.post(IDP + "/_sessionshare/logout")
    assert out.status_int == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert browser.get(SHOP + "/orders").status_int == 302
    assert browser.get(BLOG + "/x").location.startswith(LOGIN)


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
    ],
    ids=["everything", "nothing", "prefixes", "predicate"],
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


@pytest.mark.parametrize(
    ("user", "remote_user"),
    [("alice", "alice"), (42, "42"), ({"id": 7, "name": "Al"}, '{"id": 7, "name": "Al"}')],
)
def test_remote_user_forms(clock: FakeClock, user: Any, remote_user: str) -> None:
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock)
    browser = Browser(dep)
    browser.sign_in_at(BLOG + "/x")
    (key,) = list(store.sessions())

    store.save(key, changed={"user": json.dumps(user)}, ttl=600)
    assert browser.get(BLOG + "/x").json["user"] == remote_user


def test_state_cookie_is_scoped_to_the_callback(dep: Deployment) -> None:
    response = Browser(dep).get(SHOP + "/orders")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("sessionshare_state-")
    for flag in ("Path=/_sessionshare/callback", "HttpOnly", "SameSite=Lax", "Max-Age=600"):
        assert flag in cookie
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_outage_log_line_cannot_be_forged_by_the_path(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from servers import RedisServer

    from sessionshare import RedisStore

    with RedisServer() as server:
        store = RedisStore.from_url(server.url, socket_timeout=0.5)
        app = RemoteSessionMiddleware(
            lambda e, s: [b""], store=store, key=SyncKey.generate(), app_url=SHOP,
            idp_url=LOGIN, cookie_secure=False,
        )
        server.stop()
        caplog.set_level(logging.ERROR, logger="sessionshare")
        statuses: list[str] = []
        environ = {  # a raw environ: WebTest would tidy the newline away
            "REQUEST_METHOD": "GET", "PATH_INFO": "/x\nINFO fake line",
            "HTTP_COOKIE": "sessionshare=" + "A" * 43, "HTTP_ACCEPT": "text/html",
        }
        app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        assert statuses == ["503 Service Unavailable"]
        (record,) = [r for r in caplog.records if "store_unavailable" in r.getMessage()]
        assert "\n" not in record.getMessage() and "\\n" in record.getMessage()
        store.close()


def test_a_client_refusing_html_gets_401_json_not_a_redirect(dep: Deployment) -> None:
    # q=0 is "not acceptable" (RFC 9110): this is a script, which a cross-origin
    # redirect to a login page would only break.
    refused = Browser(dep).get(SHOP + "/orders",
                               headers={"Accept": "application/json, text/html;q=0"})
    assert refused.status_int == 401 and "Location" not in refused.headers
    assert refused.json["error"] == "not_authenticated" and refused.json["login_url"] == LOGIN
    page = Browser(dep).get(SHOP + "/orders", headers={"Accept": "application/json, text/html"})
    assert page.status_int == 302  # the control: HTML acceptable, a page load


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
    dep: Deployment, clock: FakeClock, saved: str, expected: str
) -> None:
    # The path is checked when the cookie is written; the callback checks it again, so a
    # signed cookie holding another path (an older release, a leaked key, a bug in the
    # writer) still cannot turn the hand-off into an open redirect.
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    state = unquote(urlsplit(login_url).query.rpartition("state=")[2])
    (cookie,) = [c for c in browser.apps["shop.test"].cookiejar
                 if c.name.startswith("sessionshare_state")]

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    # Signed as the remote signs it (same key, purpose, salt and clock): only the path differs.
    signer = SyncKey.parse(dep.key).serializer("state-cookie", salt="sessionshare.state")
    signer.signer = ClockedSigner
    cookie.value = signer.dumps([state, saved])  # in place: same name, path and flags
    answer = browser.sign_in(login_url)
    back = browser.get(answer.location)
    assert back.status_int == 303, back
    assert back.location == expected
