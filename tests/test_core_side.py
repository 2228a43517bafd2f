"""sessionshare.core.side: what both sides share -- single logout, REMOTE_USER, the 503,
the request path's form and a websocket's origin."""

from __future__ import annotations

import errno
import json
import logging
import os
from typing import Any

import pytest
import webtest
from conftest import FakeClock, genuine_cookie
from coredrive import no_io
from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import ConfigurationError, MemoryStore, RemoteSessionMiddleware, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import PassThrough, Side
from sessionshare.core.steps import run


@pytest.fixture
def dep(clock: FakeClock, shell: str) -> Deployment:
    return Deployment(MemoryStore(clock=clock), clock, shell=shell)


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


@pytest.mark.parametrize(
    ("user", "remote_user"),
    [("alice", "alice"), (42, "42"), ({"id": 7, "name": "Al"}, '{"id": 7, "name": "Al"}')],
)
def test_remote_user_forms(clock: FakeClock, user: Any, remote_user: str, shell: str) -> None:
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock, shell=shell)
    browser = Browser(dep)
    browser.sign_in_at(BLOG + "/x")
    store.save(browser.store_key("blog.test"), changed={"user": json.dumps(user)}, ttl=600)
    assert browser.get(BLOG + "/x").json["user"] == remote_user


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
            "HTTP_COOKIE": genuine_cookie(app), "HTTP_ACCEPT": "text/html",
        }
        app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        assert statuses == ["503 Service Unavailable"]
        (record,) = [r for r in caplog.records if "store_unavailable" in r.getMessage()]
        assert "\n" not in record.getMessage() and "\\n" in record.getMessage()
        store.close()


def test_outage_log_line_names_the_server_and_the_cause_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13: the log said `redis: ConnectionError` -- which Redis, and why?"""
    from sessionshare import RedisStore

    store = RedisStore.from_url("redis://:hunter2pw@127.0.0.1:1/0", socket_timeout=0.5)
    middleware = RemoteSessionMiddleware(
        lambda e, s: [b""], store=store, key=SyncKey.generate(), app_url=SHOP,
        idp_url=LOGIN, cookie_secure=False,
    )
    app = webtest.TestApp(middleware)
    caplog.set_level(logging.ERROR, logger="sessionshare")
    page = app.get("/x", headers={"Accept": "text/html", "Cookie": genuine_cookie(middleware)},
                   status="*")
    assert page.status_int == 503
    (line,) = [r.getMessage() for r in caplog.records if "store_unavailable" in r.getMessage()]
    assert "redis at 127.0.0.1:1 did not answer" in line
    refused = errno.ECONNREFUSED
    assert f"ConnectionRefusedError, errno {refused}: {os.strerror(refused)}" in line
    assert "check that the store runs" in line and "SESSIONSHARE_STORE_URL" in line
    assert "hunter2pw" not in line
    store.close()


# -- the start-up line (issue 13) ------------------------------------------------------------


def _started(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.getMessage().startswith("sessionshare remote started ")]


def test_the_start_up_line_is_a_warning_once_per_process_and_can_be_quieted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = SyncKey.generate()  # a fingerprint no other test announced
    fingerprint = SyncKey.parse(key).fingerprint

    def build(**options: Any) -> None:
        RemoteSessionMiddleware(lambda e, s: [b""], store=MemoryStore(), key=key, app_url=SHOP,
                                idp_url=LOGIN, cookie_secure=False, **options)

    build()
    build()  # a second app object in the same process: no second notice
    assert _started(caplog) == [
        (logging.WARNING, f"sessionshare remote started origin={SHOP} key_fingerprint="
                          f"{fingerprint} (a one-time notice; SESSIONSHARE_QUIET_STARTUP=true "
                          "logs it at INFO)"),
        (logging.INFO, f"sessionshare remote started origin={SHOP} key_fingerprint={fingerprint}"),
    ]
    caplog.clear()
    key = SyncKey.generate()
    build(quiet_startup=True)
    assert [level for level, _ in _started(caplog)] == [logging.INFO]


@pytest.mark.parametrize("quiet", [None, "true"], ids=["default", "quiet"])
def test_the_start_up_line_shows_where_nobody_configured_logging(quiet: str | None) -> None:
    """gunicorn, waitress and `flask run` leave the `sessionshare` logger alone: Python
    prints only its WARNINGs (the "last resort" handler), as this bare process does."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSHARE_")}
    env |= {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": "memory://",
            "SESSIONSHARE_APP_URL": SHOP, "SESSIONSHARE_IDP_URL": LOGIN,
            "SESSIONSHARE_COOKIE_SECURE": "false"}
    if quiet:
        env["SESSIONSHARE_QUIET_STARTUP"] = quiet
    code = ("from sessionshare import RemoteSessionMiddleware\n"
            "RemoteSessionMiddleware.from_env(lambda e, s: [])\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    fingerprint = SyncKey.parse(env["SESSIONSHARE_SYNC_KEY"]).fingerprint
    if quiet:
        assert done.stderr == ""
    else:
        assert done.stderr.startswith(
            f"sessionshare remote started origin={SHOP} key_fingerprint={fingerprint} "
            "(a one-time notice; SESSIONSHARE_QUIET_STARTUP=true logs it at INFO)"
        )


@pytest.mark.parametrize("role", ["idp", "remote"])
def test_a_side_built_directly_refuses_insecure_cookies_on_https(role: str) -> None:
    """The check lives in the core: a side built without the shells' option checks
    refuses a cookie that would also travel over plain http, unless told it may."""
    def build(**options: Any) -> Side:
        common: dict[str, Any] = {"key": SyncKey.generate(), "quiet_startup": True, **options}
        if role == "idp":
            return IdpSide(app_url="https://id.example", known_remote_hosts=["shop.example"],
                           **common)
        return RemoteSide(app_url="https://shop.example", idp_url="https://id.example/login",
                          **common)

    with pytest.raises(ConfigurationError, match="allow_insecure=True"):
        build(cookie_secure=False)
    assert not build(cookie_secure=False, allow_insecure=True).lifecycle.cookie.secure
    assert build().lifecycle.cookie.secure


# -- what no shell decides: the request's path, a websocket's origin ---------------------------
# The decisions below are the core's, made once for both shells: a test drives the sides with
# a Request and a Session, no server interface at all.


def _sides(clock: FakeClock, **options: Any) -> list[Side]:
    common: dict[str, Any] = {"key": SyncKey.generate(), "cookie_secure": False, "clock": clock,
                              "quiet_startup": True, **options}
    return [IdpSide(app_url=IDP, known_remote_hosts=[SHOP], **common),
            RemoteSide(app_url=SHOP, idp_url=LOGIN, protect=["/orders"], **common)]


def _error(reply: Any) -> str:
    assert isinstance(reply, Reply), reply
    return str(json.loads(reply.body)["error"])


@pytest.mark.parametrize("path", ["ping/orders", "orders", "*", "http://shop.test/orders",
                                  "login", "_sessionshare/logout"])
def test_a_path_that_does_not_start_with_a_slash_is_refused_by_both_sides(
    clock: FakeClock, path: str
) -> None:
    # gunicorn (SCRIPT_NAME=/shop) turns a request for /shopping/orders into PATH_INFO
    # "ping/orders", and servers take a raw request target "ping/orders" as it comes; a
    # router that reads it as /ping/orders then serves a page no protect prefix matched.
    for side in _sides(clock):
        for accept in ("application/json", "text/html"):
            request = Request("GET", path, accept=accept)
            reply = side.on_request(request, Session(no_io, None))
            assert isinstance(reply, Reply) and reply.status == 400, (side.role, path)
            if accept == "application/json":
                assert _error(reply) == "bad_path"
            else:
                assert b"bad_path" in reply.body
        handshake = Request("GET", path, fetch_mode="websocket", origin=side.origin)
        assert _error(side.on_request(handshake, Session(no_io, None))) == "bad_path"


def test_a_mount_point_ending_with_a_slash_is_named_as_the_cause(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # SCRIPT_NAME "/shop/" leaves PATH_INFO "orders": every request is refused, and the
    # operator needs to hear it is the server's prefix, not hostile clients.
    caplog.set_level(logging.INFO, logger="sessionshare")
    for side in _sides(clock):
        caplog.clear()
        reply = side.on_request(Request("GET", "orders", root="/shop/"), Session(no_io, None))
        assert isinstance(reply, Reply) and reply.status == 400
        (record,) = [r for r in caplog.records if "bad_path" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert "'/shop/' ends with '/'" in record.getMessage()
        assert "SCRIPT_NAME" in record.getMessage()
        caplog.clear()
        side.on_request(Request("GET", "orders", root="/shop"), Session(no_io, None))
        (record,) = [r for r in caplog.records if "bad_path" in r.getMessage()]
        assert record.levelno == logging.INFO and "SCRIPT_NAME" not in record.getMessage()


def _outcome(side: Side, request: Request, clock: FakeClock) -> Any:
    outcome = side.on_request(request, Session(no_io, None))
    if not isinstance(outcome, (Reply, PassThrough)):
        outcome = run(outcome, MemoryStore(clock=clock))
    return outcome


def test_the_mount_root_itself_is_a_path(clock: FakeClock) -> None:
    # PATH_INFO "" is the request for the mount point ("/shop" under SCRIPT_NAME=/shop).
    idp, remote = _sides(clock)
    assert isinstance(_outcome(idp, Request("GET", ""), clock), PassThrough)
    assert isinstance(_outcome(remote, Request("GET", ""), clock), PassThrough)  # public
    everything = RemoteSide(app_url=SHOP, idp_url=LOGIN, protect=["/"], key=SyncKey.generate(),
                            cookie_secure=False, quiet_startup=True, clock=clock)
    assert _error(_outcome(everything, Request("GET", ""), clock)) == "not_authenticated"


CROSS_ORIGINS = ["http://evil.shop.test", "http://shop.test:8080", "https://shop.test",
                 "http://shop.test.evil", "null", "", None]


@pytest.mark.parametrize("origin", CROSS_ORIGINS)
def test_a_websocket_from_another_origin_gets_no_session_anywhere(
    clock: FakeClock, origin: str | None
) -> None:
    # Cross-site websocket hijacking: a page on a sibling subdomain is same-site, so the
    # browser sends the SameSite=Lax cookie with its handshake (any site with
    # cookie_samesite="None"); served the session, it would read the socket as the user.
    # A handshake without Origin (no browser omits it) is refused the same way.
    idp, remote = _sides(clock)
    protected = remote.on_request(
        Request("GET", "/orders/live", fetch_mode="websocket", origin=origin),
        Session(no_io, "a-cookie-that-is-never-read"),
    )
    assert _error(protected) == "cross_origin"
    assert isinstance(protected, Reply) and protected.status == 403
    for side, path in ((remote, "/public/live"), (idp, "/live"), (idp, "/login")):
        passed = side.on_request(
            Request("GET", path, fetch_mode="websocket", origin=origin),
            Session(no_io, "a-cookie-that-is-never-read"),
        )
        # No store step at all (the session is not even read), no user, and no session:
        # the shell gives the app an empty one in place of the browser's.
        assert passed == PassThrough(None, False, (), no_session=True), (side.role, path)


def test_a_websocket_from_the_apps_own_origin_or_a_listed_one_gets_the_session(
    clock: FakeClock
) -> None:
    listed = "https://app.shop.example"
    for side in _sides(clock, websocket_origins=[listed, "HTTPS://Admin.Shop.Example:443"]):
        for origin in (side.origin, side.origin.upper(), listed, "https://admin.shop.example"):
            outcome = side.on_request(
                Request("GET", "/live", fetch_mode="websocket", origin=origin),
                Session(no_io, None),
            )
            assert not isinstance(outcome, (Reply, PassThrough)), (side.role, origin)  # steps
            assert run(outcome, MemoryStore(clock=clock)) == PassThrough(None, False)
        stranger = side.on_request(
            Request("GET", "/live", fetch_mode="websocket", origin="https://evil.example"),
            Session(no_io, None))
        assert isinstance(stranger, PassThrough) and stranger.no_session


@pytest.mark.parametrize("origins", [["shop.example"], ["https://shop.example/app"],
                                     ["https://shop.example?x"], "https://shop.example", [3]])
def test_websocket_origins_must_be_origins(clock: FakeClock, origins: Any) -> None:
    with pytest.raises(ConfigurationError, match="websocket_origins"):
        _sides(clock, websocket_origins=origins)


def test_an_https_app_refuses_plain_http_websocket_origins_unless_told(clock: FakeClock) -> None:
    common: dict[str, Any] = {"key": SyncKey.generate(), "clock": clock, "quiet_startup": True,
                              "app_url": "https://shop.example",
                              "idp_url": "https://id.example/login"}
    with pytest.raises(ConfigurationError, match="websocket_origins lists plain http"):
        RemoteSide(websocket_origins=["http://app.shop.example"], **common)
    side = RemoteSide(websocket_origins=["http://app.shop.example"], allow_insecure=True,
                      **common)
    assert "http://app.shop.example" in side.websocket_origins


def test_a_refused_cross_origin_sign_out_is_headed_as_a_sign_out(dep: Deployment) -> None:
    """The page said "Sign-in refused" to someone signing out."""
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    refused = browser.post(SHOP + "/_sessionshare/logout",
                           headers={"Accept": "text/html", "Origin": "http://evil.example"})
    assert refused.status_int == 403 and reason_of(refused) == "cross_origin"
    assert "<title>Sign-out refused</title>" in refused.text
    assert "Sign-in" not in refused.text
    assert browser.get(SHOP + "/orders").json["user"] == "alice"  # still signed in


# -- review: Session.save() inside a websocket handshake ------------------------------------
def test_an_early_save_in_a_websocket_handshake_stores_no_session_no_browser_holds(
    clock: FakeClock,
) -> None:
    # No cookie travels over a websocket (see Side._websocket_request): the handshake's own
    # persist is the late one, which refuses a new session -- an orphan no browser holds
    # (from a page of another origin, one per handshake). Session.save() there (flask-sock)
    # must follow the same rule; the IdP's side does, the remote's stored it.
    from conftest import live_session_keys

    for side in _sides(clock):
        store = MemoryStore(clock=clock)
        session = side.lifecycle.open(None, lambda sid: None)
        for origin in (side.origin, "https://evil.example"):
            handshake = Request("GET", "/live", fetch_mode="websocket", origin=origin)
            session["note"] = "hello"
            run(side.on_save(handshake, session, PassThrough()), store)
            assert live_session_keys(store) == [], (side.role, origin)
