"""sessionshare.core.side: what both sides share -- single logout, REMOTE_USER, the 503."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import webtest
from conftest import FakeClock, genuine_cookie
from flow import BLOG, IDP, LOGIN, SHOP, Browser, Deployment, reason_of

from sessionshare import MemoryStore, RemoteSessionMiddleware, SyncKey


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
    assert "ConnectionRefusedError, errno 111: Connection refused" in line
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
