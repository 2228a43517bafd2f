"""Step-up re-authentication (issue 12, item 3): ``max_auth_age`` at a remote.

A protected path asks for a sign-in at most that old; an older session goes
through the IdP again with the requirement sealed inside the login state, the
IdP's app asks for the password again (``session.reauthentication_required``),
and only a fresh sign-in completes the hand-off. The flow runs end to end on
memory and real Redis, under the WSGI and the ASGI shell; every refusal (the
state altered, the requirement ignored by the IdP, a wrong password, an API
call) and the prefixes on the sides driven by hand (tests/coreflow.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from conftest import FakeClock
from coreflow import Browser as CoreBrowser
from coreflow import CoreDeployment
from flow import CALLBACK, IDP, LOGIN, SHOP, Browser, Deployment, asgi_idp_app, idp_app

from sessionshare import ConfigurationError, MemoryStore, RemoteSessionMiddleware, SessionStore
from sessionshare.core import tickets
from sessionshare.core.steps import run
from sessionshare.core.stepup import GRACE
from sessionshare.crypto import seal_token

PASSWORD = {"username": "alice", "password": "wonderland"}


def _recording_idp(seen: list[bool], shell: str) -> Callable[..., Any]:
    """flow's IdP (of ``shell``), noting whether each login-page request flagged a
    password re-entry."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] == "/login":
            seen.append(environ["sessionshare.session"].reauthentication_required)
        return idp_app(environ, start_response)

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/login":
            seen.append(scope["session"].reauthentication_required)
        await asgi_idp_app(scope, receive, send)

    return asgi_app if shell == "asgi" else app


def _deployment(store: SessionStore, clock: Any, max_auth_age: Any, shell: str,
                seen: list[bool] | None = None) -> Deployment:
    # Every flow here runs under WSGI and ASGI: the decisions are the core's, once.
    return Deployment(store, clock, shell=shell,
                      idp=_recording_idp(seen if seen is not None else [], shell),
                      remote_options={"max_auth_age": max_auth_age})


def _state_of(login_url: str) -> str:
    return parse_qs(urlsplit(login_url).query)["state"][0]


def test_an_old_sign_in_enters_the_password_again_then_gets_in(
    store: SessionStore, clock: FakeClock, shell: str
) -> None:
    seen: list[bool] = []
    dep = _deployment(store, clock, 300, shell, seen)
    browser = Browser(dep)
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    clock.advance(200)
    assert browser.get(SHOP + "/orders").status_int == 200  # recent enough: no bounce
    clock.advance(200 + GRACE)
    away = browser.get(SHOP + "/orders")
    assert away.status_int == 302 and away.location.startswith(LOGIN + "?")
    assert dep.shop.side.login_states.max_age_of(_state_of(away.location)) == 300  # sealed in
    seen.clear()
    form = browser.get(away.location)  # signed in at the IdP, but too long ago
    assert form.status_int == 200 and "login form" in form.text and seen == [True]
    back = browser.post(away.location, PASSWORD)  # the password again: a fresh sign-in
    assert back.status_int == 303 and back.location.startswith(SHOP + CALLBACK)
    landed = browser.get(back.location)
    assert landed.status_int == 303
    assert browser.get(SHOP + landed.location).json["user"] == "alice"


# -- the decisions, on the sides driven by hand (tests/coreflow.py) -------------------------


def _core(max_auth_age: Any, **remote_options: Any) -> CoreDeployment:
    return CoreDeployment(remote_options={"max_auth_age": max_auth_age, **remote_options})


def _signed_in_long_ago(dep: CoreDeployment, age: int) -> CoreBrowser:
    browser = CoreBrowser(dep)
    assert browser.sign_in_at(SHOP + "/orders").user == "alice"
    dep.clock.advance(age)
    return browser


def test_a_wrong_password_mints_nothing_and_the_hand_off_keeps_waiting() -> None:
    dep = _core(60)
    browser = _signed_in_long_ago(dep, 60 + GRACE + 1)
    login_url = browser.get(SHOP + "/orders").location
    assert login_url is not None
    assert browser.get(login_url).passed  # the form, not a token for the old sign-in
    wrong = browser.post(login_url, {"username": "alice", "password": "nope"})
    assert wrong.passed and wrong.location is None
    assert dep.count("ticket_issued") == 1  # the first sign-in's only
    right = browser.post(login_url, PASSWORD)
    assert right.status == 303 and (right.location or "").startswith(SHOP + CALLBACK)


def test_an_altered_requirement_is_no_requirement_and_fails_the_state_check() -> None:
    dep = _core(300)
    browser = _signed_in_long_ago(dep, 300 + GRACE + 1)
    login_url = browser.get(SHOP + "/orders").location
    assert login_url is not None
    state = _state_of(login_url)
    age_end = 44 + len(f"{300:x}")  # <43 random> "_" <age, hex> <tag>
    relaxed = state[:44] + "fffff" + state[age_end:]  # a longer age, the same tag
    assert dep.shop.login_states.max_age_of(relaxed) is None
    minted = browser.get(login_url.replace(state, relaxed))  # an ordinary state to the IdP
    assert minted.status == 303 and minted.location is not None
    refused = browser.get(minted.location)  # ...which is not the state this browser holds
    assert refused.status == 403 and refused.reason == "bad_state"


def test_an_idp_that_ignores_the_requirement_gets_a_refusal_not_a_loop() -> None:
    dep = _core(300)
    browser = _signed_in_long_ago(dep, 300 + GRACE + 1)
    state = _state_of(browser.get(SHOP + "/orders").location or "")
    # What an IdP that does not know step-up would send: a token for the old sign-in.
    idp = dep.idp
    sid = idp.lifecycle.session_id_in("sessionshare=" + (browser.cookie("id.test") or ""))
    assert sid is not None
    ids = idp.claims.browser_of(None)
    ticket = run(tickets.issue(idp.lifecycle.key_prefix, sid, state, idp.claims,
                               ids.owners, token_ttl=60), dep.store)
    assert ticket is not None
    token = seal_token(idp.key, ticket, audience=SHOP, issuer=IDP, state=state,
                       now=dep.clock())
    refused = browser.get(f"{SHOP}{CALLBACK}?token={quote(token)}")
    assert refused.status == 403 and refused.reason == "reauthentication_required"


def test_an_api_call_with_an_old_sign_in_gets_401_naming_the_reason() -> None:
    browser = _signed_in_long_ago(_core(300), 300 + GRACE + 1)
    api = browser.get(SHOP + "/orders", accept="application/json")
    assert api.status == 401 and api.json["error"] == "reauthentication_required"


def test_a_limit_of_zero_does_not_loop() -> None:
    dep = _core(0)
    browser = _signed_in_long_ago(dep, 0)  # a sign-in just now is fresh for GRACE seconds
    assert browser.get(SHOP + "/orders").passed
    dep.clock.advance(GRACE + 1)
    assert browser.get(SHOP + "/orders").status == 302  # then it asks again


@pytest.mark.parametrize("ages", [
    {"/read": 60, "/orders": 3600},
    {"/orders": 3600, "/orders/keys": 60},  # nested: the longer one wins at /orders/keys
    {"/orders/keys": 60, "/orders": 3600},  # whichever comes first
], ids=["apart", "nested", "nested, longer first"])
def test_the_longest_prefix_decides(ages: dict[str, int]) -> None:
    browser = _signed_in_long_ago(_core(ages, protect=True), 600)
    assert browser.get(SHOP + "/orders").passed
    strict = next(prefix for prefix, age in ages.items() if age == 60)
    assert browser.get(SHOP + strict).status == 302
    assert browser.get(SHOP + strict + "/x").status == 302


def test_a_step_up_prefix_is_whole_path_segments() -> None:
    # {"/admin": 60} asks for a recent sign-in at /admin and below, not at /administrators
    # (as protect prefixes do); "/billing/" covers /billing itself too.
    browser = _signed_in_long_ago(_core({"/admin": 60, "/billing/": 60}, protect=True), 600)
    for path in ("/admin", "/admin/", "/admin/users", "//admin/users", "/admin.json",
                 "/billing", "/billing/x"):
        assert browser.get(SHOP + path).status == 302, path
    for path in ("/administrators", "/admin-old", "/billings", "/orders"):
        assert browser.get(SHOP + path).passed, path


@pytest.mark.parametrize("value", [-1, "300", True, {"admin": 60}, {"/admin": -5}])
def test_a_bad_max_auth_age_is_refused_at_construction(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_auth_age"):
        RemoteSessionMiddleware(idp_app, store=MemoryStore(), key="x" * 43, app_url=SHOP,
                                idp_url=LOGIN, cookie_secure=False, max_auth_age=value)
