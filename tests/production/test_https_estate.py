"""One person's visit to a production-shaped estate, in headless Chromium, over HTTPS.

The estate (tests/production/estate.py): the IdP and the shop under gunicorn,
TLS terminated by gunicorn; the news site (ASGI) under uvicorn
``--root-path /news`` behind a TLS reverse proxy that strips ``/news``;
host names ``id.example.test``, ``shop.example.test``, ``news.example.test``
and a sibling ``evil.example.test``, all on 127.0.0.1, certificates from a CA
made for the run, one Redis. The apps configure no cookie setting: what
Chromium gets is the library's default for an https app. The visit:

1. the shop's public page checks passively: one bounce through the IdP, no
   form, a guest;
2. the shop's ``/orders`` sends the browser to the IdP's form; signed in, it
   is back at ``/orders``;
3. the news site, under its prefix, is signed in with no form, and its page's
   websocket (``wss://``, through the proxy) greets the user;
4. a page on the sibling subdomain opens the same websockets: the protected
   one is refused, the public one carries the user's cookie (the browser
   sends it: the sites are same-site) yet sees no user;
5. signing out at the news site (its own sign-out page, under the prefix)
   signs the user out everywhere: the IdP, the shop and the news site each
   see the session gone.

What this proves that the plain-http browser tests (tests/test_browser.py,
``*.localhost`` over http with ``cookie_secure=False``) cannot:

- **Secure cookies work end to end.** Every cookie the library sets here
  carries ``Secure`` -- the session cookies, the IdP's browser cookie, the
  shop's passive-check cookie, the state cookies -- and the hand-offs still
  complete: no cookie the protocol needs is one a browser keeps off https.
- **The ``__Host-`` names are accepted by a browser.** With an https
  ``app_url`` and no ``cookie_domain`` the session cookie is
  ``__Host-sessionshare`` (and its ``_browser``/``_checked`` siblings);
  Chromium silently drops such a cookie unless it is ``Secure``, ``Path=/``,
  has no ``Domain`` and comes from a secure origin. Each site's cookie is
  checked in the browser's own jar: host-only, ``Path=/``, ``Secure``,
  ``HttpOnly``, ``SameSite=Lax``.
- **TLS origins in the allow-list and the tokens.** The IdP lists the shop as
  ``host:port`` (https only) and the news site by its exact https callback
  URL under the prefix; tokens are issued to and checked against https
  origins with non-default ports, as a deployment's are.
- **A mount point behind a proxy (``root_path``).** The news app sees
  ``/live`` under ``root_path=/news``; the URLs the library makes for its
  own endpoints -- the callback the IdP sends the browser to, the state
  cookies' path, the sign-out form's action -- must carry the prefix, or the
  proxy never routes them to the app.
- **Real servers' TLS and proxy plumbing.** gunicorn's TLS workers, uvicorn's
  ``--proxy-headers`` and websocket upgrades through a proxy, rather than the
  in-process servers of the other browser tests.
- **The library's own sign-out page, under the prefix.** The demo's pages
  sign out with buttons of their own; here the browser uses the page a GET of
  the logout path shows, and its POST must pass the same-origin check
  (tests/test_browser.py has the plain-http twin of this step).
- **The sibling attack is real here.** ``evil.example.test`` and
  ``news.example.test`` are the same site (``example.test``), so Chromium
  sends the ``SameSite=Lax`` session cookie on the sibling page's websocket
  handshake (the public socket shows it arrived); only the origin check
  keeps the user's session out of that socket.

The steps run in order in one test (each needs the state the previous left);
a failing step leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chromium import chromium, save_screenshot
from selenium.webdriver.common.by import By
from test_browser import click, has_login_form, text_of, wait_until

from .estate import HOSTS, Estate

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def estate(redis_url: str, tmp_path: Path) -> Iterator[Estate]:
    with Estate(redis_url, tmp_path) as served:
        yield served


def cookies_of(driver: Any, host: str) -> dict[str, dict[str, Any]]:
    """The cookies the browser keeps for ``host``, by name (from its own cookie jar)."""
    found = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    return {cookie["name"]: cookie for cookie in found if cookie["domain"] == host}


def assert_host_cookie(cookie: dict[str, Any]) -> None:
    """What a ``__Host-`` session cookie must be for the browser to have kept it."""
    assert cookie["name"].startswith("__Host-"), cookie
    assert (cookie["path"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
        "/", True, True, "Lax"), cookie
    assert not cookie["domain"].startswith("."), cookie  # host-only: no Domain attribute


def sign_in(driver: Any) -> None:
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("wonderland")
    click(driver, "sign-in")


def socket_answer(driver: Any, element_id: str) -> str:
    wait_until(driver, lambda d: text_of(d, element_id) != "connecting",
               f"the websocket of #{element_id} answered or closed")
    return text_of(driver, element_id)


def test_sign_in_hand_off_websockets_and_sign_out_over_https(
    estate: Estate, request: pytest.FixtureRequest
) -> None:
    urls = estate.urls
    idp, shop, news, sibling = urls["idp"], urls["shop"], urls["news"], urls["sibling"]
    started = time.monotonic()
    with chromium(host_rules=estate.host_rules, flags=estate.chromium_flags) as browser:
        driver: Any = browser
        try:
            # 1. The shop's public page checks passively: through the IdP and back, no
            # form, a guest; the check is remembered in a __Host- cookie.
            driver.get(shop + "/")
            wait_until(driver, lambda d: d.current_url == shop + "/", "the shop's home")
            assert text_of(driver, "greeting") == "Welcome, guest."
            assert not has_login_form(driver)
            checked = cookies_of(driver, HOSTS["shop"])["__Host-sessionshare_checked"]
            assert (checked["secure"], checked["path"]) == (True, "/"), checked

            # 2. The protected page: the IdP's form, then back where the user was going.
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "IdP form")
            callback = parse_qs(urlsplit(driver.current_url).query)["callback"]
            assert callback == [shop + "/_sessionshare/callback"]
            sign_in(driver)
            wait_until(driver, lambda d: d.current_url == shop + "/orders", "back at /orders")
            assert text_of(driver, "user") == "alice"
            assert_host_cookie(cookies_of(driver, HOSTS["shop"])["__Host-sessionshare"])
            idp_cookies = cookies_of(driver, HOSTS["idp"])
            assert_host_cookie(idp_cookies["__Host-sessionshare"])
            assert idp_cookies["__Host-sessionshare_browser"]["secure"] is True
            # The shop's public page greets the user now (it holds a session).
            driver.get(shop + "/")
            wait_until(driver, lambda d: text_of(d, "greeting") == "Welcome, alice.", "greeted")

            # 3. The news site, under its prefix: signed in with no form on the way; the
            # callback the IdP sent the browser to is under the prefix.
            driver.get(news + "/")
            wait_until(driver, lambda d: d.current_url == news + "/", "at the news site")
            assert not has_login_form(driver)
            assert text_of(driver, "user") == "alice"
            news_cookies = cookies_of(driver, HOSTS["news"])
            assert_host_cookie(news_cookies["__Host-sessionshare"])
            # Its page's own websocket (wss, through the proxy) is the user's.
            assert socket_answer(driver, "socket") == "hello alice"
            # Every cookie the browser holds for the estate is Secure.
            jar = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
            assert jar and all(cookie["secure"] for cookie in jar), jar

            # 4. A sibling subdomain's page opens the news site's websockets.
            driver.get(sibling + "/")
            wait_until(driver, lambda d: d.current_url == sibling + "/", "the sibling's page")
            public = json.loads(socket_answer(driver, "public"))
            assert public["cookie"] is True  # the browser sent the session cookie along...
            assert public["user"] is None  # ...and the socket still sees no user
            assert socket_answer(driver, "protected") == "refused"

            # 5. Sign out at the news site, from its own sign-out page under the prefix.
            driver.get(news + "/_sessionshare/logout")
            wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "form button"),
                       "the sign-out page")
            driver.find_element(By.CSS_SELECTOR, "form button").click()
            wait_until(driver, lambda d: d.current_url == idp + "/", "at the IdP's home")
            assert text_of(driver, "user") == "nobody"  # the IdP: signed out
            driver.get(shop + "/orders")  # the shop: asks the IdP again
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "shop asks")
            assert has_login_form(driver)
            driver.get(news + "/")  # the news site: asks the IdP again
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "news asks")
            assert has_login_form(driver)
            callback = parse_qs(urlsplit(driver.current_url).query)["callback"]
            assert callback == [news + "/_sessionshare/callback"]
            # The sign-in it started keeps its state in a cookie under the prefix, where
            # the callback will arrive.
            states = [c for name, c in cookies_of(driver, HOSTS["news"]).items()
                      if name.startswith("sessionshare_state-")]
            assert [(c["path"], c["secure"]) for c in states] == [
                ("/news/_sessionshare/callback", True)], states
            # And the sibling's public socket no longer carries a live session either.
            driver.get(sibling + "/")
            wait_until(driver, lambda d: d.current_url == sibling + "/", "the sibling again")
            assert json.loads(socket_answer(driver, "public"))["user"] is None
            assert socket_answer(driver, "protected") == "refused"
        except BaseException:
            print(f"screenshot: {save_screenshot(driver, request.node.name)}")
            for server in estate.servers:
                print(f"--- {server.name} log ---\n{server.log_tail()}")
            raise
    print(f"the visit took {time.monotonic() - started:.1f} s (browser included)")
