"""Remember-me (issue 12, item 2): ``session.remember()`` at the IdP's sign-in.

A remembered sign-in moves to an id carrying its own limits (server-side,
still revocable), and every app's cookie for it gets a ``Max-Age``. The IdP
honours the limits it grants; a remote keeps its own -- the stricter of its
own and the session's, as for any session -- unless it opts in with
``max_remember`` (issue 23, finding 2). The remembered idle limit defaults to
the IdP's own ``idle_timeout``. A sign-in without it is unchanged: browser-
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


def _remembering_idp(days: float, shell: str, idle: int | None = None) -> Callable[..., Any]:
    """flow's IdP (of ``shell``), whose form post with ``remember=1`` in its URL ticks
    "remember me" (for ``days``, ``idle`` seconds idle)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and "remember=1" in environ["QUERY_STRING"]:
            environ["sessionshare.session"].remember(days=days, idle=idle)
        return idp_app(environ, start_response)

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "POST" and b"remember=1" in scope["query_string"]:
            scope["session"].remember(days=days, idle=idle)
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


#: A remote that opts in to remembered sign-ins as long as the IdP grants them here.
OPTED_IN = {"max_remember": 30 * DAY}


def test_a_remembered_sign_in_gives_every_app_a_persistent_cookie(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell),
                     remote_options=OPTED_IN)
    browser = Browser(dep)
    at_idp, at_shop = _sign_in(browser, remember=True)
    assert _max_age(at_idp) == 30 * DAY
    assert _max_age(at_shop) == 30 * DAY
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


def test_a_remote_that_keeps_its_own_limits_gives_a_cookie_for_them(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    at_idp, at_shop = _sign_in(Browser(dep), remember=True)
    assert _max_age(at_idp) == 30 * DAY
    assert _max_age(at_shop) == 8 * 3600  # its own absolute_timeout, across a restart


def test_a_sign_in_without_it_keeps_browser_session_cookies(
    store: SessionStore, clock: Callable[[], float], shell: str
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    at_idp, at_shop = _sign_in(Browser(dep), remember=False)
    assert _max_age(at_idp) is None and _max_age(at_shop) is None


def test_a_remote_keeps_its_own_limits_unless_it_opts_in(clock: FakeClock, shell: str) -> None:
    # Issue 23, finding 2: after remember(days=30) at the IdP, a remote configured with
    # idle 300 s / absolute 3600 s served the session for days: the remembered limits
    # overrode its own. It enforces the stricter of its own and the session's now.
    store = MemoryStore(clock=clock)  # its expiry follows the test clock
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell, idle=30 * DAY),
                     remote_options={"idle_timeout": 300, "absolute_timeout": 3600})
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    assert browser.get(SHOP + "/orders").json["user"] == "alice"
    clock.advance(2 * 3600)  # past the shop's own absolute limit, well within 30 days
    assert browser.get(SHOP + "/orders").status_int == 302  # sent to sign in again


def test_the_remembered_idle_limit_is_the_idps_idle_timeout(
    clock: FakeClock, shell: str
) -> None:
    # ...and after 20 days without a request nobody serves it: remember(days=30) alone
    # keeps the IdP's idle_timeout (it was 30 days idle).
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell))
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    clock.advance(20 * DAY)
    assert browser.get(IDP + "/").text == "idp home user=None"  # the IdP grants it, idle too
    assert browser.get(SHOP + "/orders").status_int == 302


def test_a_remembered_session_has_its_own_limits_where_the_app_opts_in(
    clock: FakeClock, shell: str
) -> None:
    store = MemoryStore(clock=clock)  # its expiry follows the test clock
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(2, shell, idle=2 * DAY),
                     idp_options={"idle_timeout": 1800, "absolute_timeout": 8 * 3600},
                     remote_options={"idle_timeout": 1800, "absolute_timeout": 8 * 3600,
                                     **OPTED_IN})
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


def test_an_apps_max_remember_caps_what_it_honours(clock: FakeClock, shell: str) -> None:
    store = MemoryStore(clock=clock)
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell, idle=30 * DAY),
                     remote_options={"max_remember": 3 * DAY})
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    clock.advance(2 * DAY)
    assert browser.get(SHOP + "/orders").json["user"] == "alice"  # within its 3 days
    clock.advance(2 * DAY)
    assert browser.get(SHOP + "/orders").status_int == 302  # past them: ended here


@pytest.mark.parametrize(("idle", "most"), [(30 * DAY, 30 * DAY), (None, 1800)],
                         ids=["its own idle", "the IdP's idle"])
def test_a_remembered_session_slides_to_its_own_idle_limit_in_the_store(
    store: SessionStore, clock: Callable[[], float], shell: str, idle: int | None, most: int
) -> None:
    dep = Deployment(store, clock, shell=shell, idp=_remembering_idp(30, shell, idle=idle),
                     remote_options=OPTED_IN)
    browser = Browser(dep)
    _sign_in(browser, remember=True)
    browser.get(SHOP + "/orders")  # a read slides the expiry
    key = browser.store_key("shop.test")
    if isinstance(store, MemoryStore):
        left = store.sessions()[key].expires - clock()
    else:
        left = store.client.ttl(key)  # type: ignore[attr-defined]
    assert most - 60 < left <= most


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


@pytest.mark.parametrize("days", [49_711, 10**6, float("inf"), float("nan")])
def test_remember_refuses_a_lifetime_no_session_id_can_carry(days: float) -> None:
    # Issue 23, finding 10: past about 49,710 days the id's 32-bit lifetime overflowed, the
    # id no longer parsed, and the sign-in silently signed nobody in.
    with pytest.raises(ValueError, match="remember"):
        Session().remember(days=days)
    with pytest.raises(ValueError, match="at most 49710 days"):
        Session().remember(days=49_711)


def test_the_longest_remembered_lifetime_makes_an_id_that_parses(
    store: SessionStore, clock: Callable[[], float]
) -> None:
    dep = Deployment(store, clock, idp=_remembering_idp(49_710, "wsgi"),
                     remote_options={"max_remember": 49_710 * DAY})
    browser = Browser(dep)
    at_idp, at_shop = _sign_in(browser, remember=True)
    assert browser.get(IDP + "/").text == "idp home user=alice"
    assert browser.get(SHOP + "/orders").json["user"] == "alice"


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
