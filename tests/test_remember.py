"""Remember-me (issue 12, item 2): ``session.remember()`` at the IdP's sign-in.

A remembered sign-in moves to an id carrying its own limits, which every app
enforces instead of its own (server-side, still revocable), and every app's
cookie for it gets a ``Max-Age``. A sign-in without it is unchanged: browser-
session cookies, the apps' own limits. On memory and real Redis, under the WSGI
and the ASGI shell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import webtest
from conftest import FakeClock
from flow import IDP, SHOP, Browser, Deployment, asgi_idp_app, idp_app

from sessionshare import MemoryStore, Session, SessionStore

DAY = 86400
COOKIE = "sessionshare"


def _remembering_idp(days: float, shell: str) -> Callable[..., Any]:
    """flow's IdP (of ``shell``), whose form post with ``remember=1`` in its URL ticks
    "remember me"."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and "remember=1" in environ["QUERY_STRING"]:
            environ["sessionshare.session"].remember(days=days)
        return idp_app(environ, start_response)

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "POST" and b"remember=1" in scope["query_string"]:
            scope["session"].remember(days=days)
        await asgi_idp_app(scope, receive, send)

    return asgi_app if shell == "asgi" else app


def _sign_in(browser: Browser, remember: bool) -> webtest.TestResponse:
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)
    posted = browser.post(login_url + ("&remember=1" if remember else ""),
                          {"username": "alice", "password": "wonderland"})
    assert posted.status_int == 303, posted
    back = browser.get(posted.location)  # the shop's callback
    assert back.status_int == 303, back
    return posted, back  # type: ignore[return-value]


def _max_age(response: webtest.TestResponse) -> int | None:
    (value,) = [v for k, v in response.headerlist
                if k == "Set-Cookie" and v.startswith(COOKIE + "=")]
    for part in value.split(";"):
        if part.strip().startswith("Max-Age="):
            return int(part.strip()[len("Max-Age="):])
    return None


def test_a_remembered_sign_in_gives_every_app_a_persistent_cookie(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    browser = Browser(dep)
    at_idp, at_shop = _sign_in(browser, remember=True)
    assert _max_age(at_idp) == 30 * DAY
    assert _max_age(at_shop) == 30 * DAY
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_a_sign_in_without_it_keeps_browser_session_cookies(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    at_idp, at_shop = _sign_in(Browser(dep), remember=False)
    assert _max_age(at_idp) is None and _max_age(at_shop) is None


def test_a_remembered_session_has_its_own_limits_at_every_app(
    clock: FakeClock, shell: str
) -> None:
    store = MemoryStore(clock=clock)  # its expiry follows the test clock
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(2, shell),
                     idp_options={"idle_timeout": 1800, "absolute_timeout": 8 * 3600},
                     remote_options={"idle_timeout": 1800, "absolute_timeout": 8 * 3600})
    browser, plain = Browser(dep), Browser(dep)
    _sign_in(browser, remember=True)
    _sign_in(plain, remember=False)
    clock.advance(20 * 3600)  # idle 20 hours: past every app's own idle and absolute limit
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert browser.get(IDP + "/").text == "idp home user=alice"
    assert plain.get(SHOP + "/orders").status_int == 302  # unchanged without remember
    clock.advance(DAY + 4 * 3600 + 1)  # past its own two days: gone everywhere
    assert browser.get(SHOP + "/orders").status_int == 302
    assert browser.get(IDP + "/").text == "idp home user=None"


def test_a_remembered_session_slides_to_its_own_idle_limit_in_the_store(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    browser.get(SHOP + "/orders")  # a read slides the expiry
    key = browser.store_key("shop.test")
    if isinstance(store, MemoryStore):
        left = store.sessions()[key].expires - clock()
    else:
        left = store.client.ttl(key)  # type: ignore[attr-defined]
    assert left > 1800 and left <= 30 * DAY


def test_a_remembered_session_is_still_revocable_everywhere(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    browser.post(SHOP + "/_sessionshare/logout", headers={"Origin": SHOP})
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert browser.get(SHOP + "/orders").status_int == 302


@pytest.mark.parametrize(("days", "idle"), [(0, None), (-1, None), (1, 0)])
def test_remember_refuses_a_limit_that_is_no_limit(days: float, idle: int | None) -> None:
    with pytest.raises(ValueError, match="positive"):
        Session().remember(days=days, idle=idle)


def test_the_example_idps_remember_me_box_makes_the_cookie_persistent(
    clock: FakeClock,
) -> None:
    import re

    from test_testing import _example

    from sessionshare import SyncKey

    idp = _example("idp_flask").create_app(
        app_url=IDP, known_remote_hosts=[SHOP], store=MemoryStore(clock=clock),
        key=SyncKey.generate(), cookie_secure=False, clock=clock,
    )
    cookies = {}
    for remember in (False, True):
        client = idp.test_client()
        form = client.get("/login").text
        assert 'name=remember' in form
        match = re.search(r'name=csrf value="([^"]+)"', form)
        assert match is not None
        posted = client.post("/login", data={
            "csrf": match.group(1), "username": "alice", "password": "wonderland",
            **({"remember": "1"} if remember else {}),
        })
        (value,) = [v for k, v in posted.headers.items()
                    if k == "Set-Cookie" and v.startswith(COOKIE + "=")]
        cookies[remember] = value
    assert "Max-Age" not in cookies[False]
    assert f"Max-Age={30 * DAY}" in cookies[True]
