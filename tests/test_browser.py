"""The example apps in a real browser: headless Chromium, real servers, four host names.

The Flask IdP, the Pyramid shop, the plain-WSGI blog and the Django forum
from ``examples/`` run in threaded werkzeug servers on free loopback ports,
and the FastAPI news site under uvicorn, the way the demo runs them; Chromium
maps ``*.localhost`` to 127.0.0.1, so each app is its own site with its own
cookies. One person signs in once from the shop, finds the blog, the news
site (ASGI) and the Django forum signed in without a form (the forum's
CSRF-checked form adds to the shared cart), signs out at the blog, and the
shop, the news site and the forum send the browser to the IdP again. The demo's
panel (``sessionshare/demo/panel.py``)
is on every page: the test reads it and keeps screenshots of the IdP's form
and of the panel in ``tests/artifacts/`` (``demo-idp-form.png``,
``demo-panel.png``, ``demo-forum.png``, ``demo-signed-out.png``). A failing
step leaves a screenshot there too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from chromium import chromium, save_screenshot
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from sessionshare import MemoryStore, SyncKey
from sessionshare.core.state import STATE_SLOTS
from sessionshare.demo import ASGI_SITES, SITES, Servers, demo_apps, listen
from sessionshare.demo.timeline import Timeline

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT = 15.0


# One estate for the module: each test drives a Chromium of its own (its own profile,
# so its own cookies), and what a test leaves in the store -- its sessions, its pending
# hand-offs -- is reachable only with that browser's cookies, and the timeline is told
# per browser too; starting the five servers for every test cost a second or two each.
@pytest.fixture(scope="module")
def sites() -> Iterator[dict[str, str]]:
    sockets: dict[str, Any] = {}
    servers = Servers()
    try:
        # Inside the try: a failure while building the apps still closes every socket.
        for name in SITES:
            sockets[name] = listen("127.0.0.1", 0)
        urls = {
            name: f"http://{name}.localhost:{sock.getsockname()[1]}"
            for name, sock in sockets.items()
        }
        timeline = Timeline(urls)
        apps = demo_apps(MemoryStore(), SyncKey.generate(), urls, timeline=timeline)
        with timeline.listening():
            for name, sock in sockets.items():
                if name in ASGI_SITES:
                    servers.start_asgi(sock, apps[name])
                else:
                    servers.start(sock, apps[name])
            yield urls
            servers.stop()
    finally:
        servers.stop()
        for sock in sockets.values():
            sock.close()


def wait_until(driver: Any, condition: Callable[[Any], object], what: str) -> None:
    # The page may change under a lookup while a redirect chain is still loading.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(driver, WAIT, ignored_exceptions=ignored).until(condition, message=what)


def text_of(driver: Any, element_id: str) -> str:
    try:
        return str(driver.find_element(By.ID, element_id).text)
    except WebDriverException as exc:
        # Found, then the page went on to the next document before its text was read:
        # chromedriver reports that as an "unknown error", not as a stale element. Only
        # that one message is taken for what it is; any other error stays an error.
        if "does not belong to the document" in str(exc.msg):
            raise StaleElementReferenceException(exc.msg) from exc
        raise


def has_login_form(driver: Any) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, "input[type=password]"))


def keep_screenshot(driver: Any, name: str) -> None:
    """A screenshot the closing note of a change describes (tests/artifacts/<name>.png)."""
    path = save_screenshot(driver, name)
    assert path.stat().st_size > 10_000, path  # a rendered page, not an empty canvas


def click(driver: Any, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def test_sign_in_once_then_sign_out_everywhere(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    idp, shop, blog, news = sites["idp"], sites["shop"], sites["blog"], sites["news"]
    with chromium() as browser:
        driver: Any = browser
        try:
            # A: the shop's orders need a sign-in, so the IdP's form shows; it names the
            # shop and the demo users, and its panel shows the hand-off so far.
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "IdP form")
            assert has_login_form(driver)
            assert text_of(driver, "asking-site") == shop
            assert "alice / wonderland" in text_of(driver, "demo-users")
            assert text_of(driver, "demo-route") == "shop → idp"
            assert text_of(driver, "demo-user") == "nobody signed in"
            keep_screenshot(driver, "demo-idp-form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == shop + "/orders", "back at the shop")
            assert text_of(driver, "user") == "alice"
            # A CSRF-checked form post and a flash message, through request.session.
            driver.find_element(By.CSS_SELECTOR, "button[value=teapot]").click()
            wait_until(driver, lambda d: text_of(d, "cart") == "teapot", "teapot in the cart")
            assert "Added a teapot." in driver.page_source

            # B: the blog, signed in with no login form on the way, sharing the cart.
            driver.get(blog + "/")
            wait_until(driver, lambda d: d.current_url == blog + "/", "at the blog")
            assert not has_login_form(driver)
            assert text_of(driver, "user") == "alice"
            assert text_of(driver, "cart") == "teapot"
            # The panel, as the user sees it: who, which sites joined, which hops.
            assert text_of(driver, "demo-site") == "blog"
            assert text_of(driver, "demo-user") == "alice"
            assert text_of(driver, "demo-sites") == "idp, shop, blog"
            assert '"teapot"' in text_of(driver, "demo-session")
            assert text_of(driver, "demo-route") == "blog → idp → blog"
            hops = driver.find_elements(By.CSS_SELECTOR, "#demo-timeline > li")
            assert [h.text.split("\n")[0] for h in hops] == [
                "blog GET / 302 → idp",
                f"idp GET /login?callback={blog}/_sessionshare/callback&state="
                + hops[1].text.split("state=", 1)[1].split(" ", 1)[0] + " 303 → blog",
                "blog GET /_sessionshare/callback?token=… 303 → blog",
                "blog GET / 200",
            ]
            assert "ticket redeemed once" in hops[2].text
            panel = driver.find_element(By.ID, "demo-panel")
            assert panel.is_displayed() and panel.size["width"] > 300
            keep_screenshot(driver, "demo-panel")

            # C: the news site, an ASGI app under uvicorn: signed in, the same cart.
            driver.get(news + "/")
            wait_until(driver, lambda d: d.current_url == news + "/", "at the news site")
            assert not has_login_form(driver)
            assert text_of(driver, "user") == "alice"
            assert text_of(driver, "cart") == "teapot"
            assert text_of(driver, "demo-site") == "news"  # the panel, as on every page
            keep_screenshot(driver, "demo-news")
            # The Django forum: / is login_required, and the hand-off runs with no form.
            forum = sites["forum"]
            driver.get(forum + "/")
            wait_until(driver, lambda d: d.current_url == forum + "/", "at the forum")
            assert not has_login_form(driver)
            assert text_of(driver, "user") == "alice"
            assert text_of(driver, "cart") == "teapot"
            assert text_of(driver, "demo-site") == "forum"
            # Django's CSRF-checked form writes the shared cart.
            click(driver, "sticker")
            wait_until(driver, lambda d: text_of(d, "cart") == "teapot, sticker", "a sticker")
            assert "Added a sticker." in driver.page_source
            assert text_of(driver, "demo-sites") == "idp, shop, blog, news, forum"
            keep_screenshot(driver, "demo-forum")
            driver.get(blog + "/")
            wait_until(driver, lambda d: text_of(d, "cart") == "teapot, sticker", "blog cart")

            # Sign out at B: it says so, and every page of B now asks the IdP again...
            click(driver, "logout")
            wait_until(driver, lambda d: d.current_url == blog + "/_demo/signed-out", "signed out")
            assert text_of(driver, "signed-out") == "Signed out everywhere"
            assert text_of(driver, "demo-user") == "nobody signed in"
            keep_screenshot(driver, "demo-signed-out")
            driver.get(blog + "/")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "B asks")
            assert has_login_form(driver)
            # ...and so do A and the forum.
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "A asks")
            assert has_login_form(driver)
            assert quote(shop + "/_sessionshare/callback", safe="") in driver.current_url
            driver.get(forum + "/")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "forum asks")
            assert has_login_form(driver)
            assert quote(forum + "/_sessionshare/callback", safe="") in driver.current_url
            # ...and so does C.
            driver.get(news + "/")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "C asks")
            assert quote(news + "/_sessionshare/callback", safe="") in driver.current_url
        except BaseException:
            path = save_screenshot(driver, request.node.name)
            print(f"screenshot: {path}")
            raise


def test_a_popup_flood_of_login_starts_does_not_block_sign_in(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # Issue 16, finding 2: a page that navigates a popup to the shop's protected page
    # again and again started a login each time, and each left a state cookie of its own
    # (8.6 KB after 14): the next sign-in's callback was refused (431). Now the shop
    # reuses STATE_SLOTS cookies, and the user's own sign-in after the flood works.
    idp, shop = sites["idp"], sites["shop"]
    with chromium() as browser:
        driver: Any = browser
        try:
            # The attacker's page (here: the blog, another site) opens a popup and points
            # it at the shop's protected page again and again, a long address each time
            # (the saved return path makes a state cookie large).
            driver.get(sites["blog"] + "/")
            opener = driver.current_window_handle
            popup, last = None, ""
            for i in range(20):
                url = f"{shop}/orders?flood={i}&pad=" + "x%41" * 100
                driver.execute_script("window.open(arguments[0], 'flood')", url)
                popup = popup or next(h for h in driver.window_handles if h != opener)
                driver.switch_to.window(popup)
                # Each start ends at the IdP's form with a new state in its address.
                def at_a_new_idp_form(d: Any, last: str = last) -> bool:
                    return bool(d.current_url.startswith(idp + "/login?") and d.current_url != last)

                wait_until(driver, at_a_new_idp_form, f"flood start {i} at the IdP")
                last = driver.current_url
                driver.switch_to.window(opener)
            driver.switch_to.window(popup)
            cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
            states = [c for c in cookies if c["name"].startswith("sessionshare_state")
                      and c["domain"] == "shop.localhost"]
            assert len(states) == STATE_SLOTS, [c["name"] for c in states]
            assert sum(len(c["name"]) + len(c["value"]) + 2 for c in states) < 4096
            driver.close()
            driver.switch_to.window(opener)

            # The user now signs in from the shop as usual.
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "IdP form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == shop + "/orders", "back at the shop")
            assert text_of(driver, "user") == "alice"
        except BaseException:
            path = save_screenshot(driver, request.node.name)
            print(f"screenshot: {path}")
            raise


def test_the_shops_and_blogs_public_pages_check_passively_with_a_working_back_button(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # Issue 12: the demo shop's and blog's public pages check passively. An anonymous
    # visitor sees them after one bounce through the IdP (no form, no loop; Back and
    # Forward work); a user signed in at the IdP -- through the blog here -- is greeted.
    idp, shop, blog = sites["idp"], sites["shop"], sites["blog"]
    with chromium() as browser:
        driver: Any = browser
        try:
            driver.get(idp + "/login")  # some page before the shop, to go Back to
            wait_until(driver, lambda d: has_login_form(d), "the IdP's page")
            driver.get(shop + "/")
            wait_until(driver, lambda d: d.current_url == shop + "/", "at the shop")
            assert text_of(driver, "greeting") == "Welcome, guest."
            assert not has_login_form(driver)
            for _ in range(2):  # Back and Forward, twice: no bounce, no loop
                driver.back()
                wait_until(driver, lambda d: d.current_url.startswith(idp + "/login"), "Back")
                driver.forward()
                wait_until(driver, lambda d: d.current_url == shop + "/", "Forward")
                assert text_of(driver, "greeting") == "Welcome, guest."
            # The blog's public page checks too: a guest, no form, Back and Forward work.
            driver.get(blog + "/about")
            wait_until(driver, lambda d: d.current_url == blog + "/about", "the blog's /about")
            assert text_of(driver, "greeting").startswith("Welcome, guest.")
            assert not has_login_form(driver)
            driver.back()
            wait_until(driver, lambda d: d.current_url == shop + "/", "Back to the shop")
            driver.forward()
            wait_until(driver, lambda d: d.current_url == blog + "/about", "Forward to /about")
            assert text_of(driver, "greeting").startswith("Welcome, guest.")
            # Signed in at the IdP through the blog's link, the blog's public page greets
            # the user at once (checked lately, but it holds a session now)...
            click(driver, "sign-in")
            wait_until(driver, lambda d: has_login_form(d), "the IdP's form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == blog + "/", "back at the blog")
            driver.get(blog + "/about")
            wait_until(driver, lambda d: d.current_url == blog + "/about", "/about again")
            assert text_of(driver, "user") == "alice"
            # The shop, with no session of its own, remembers its check for passive_ttl: a
            # guest still, until the shop's own cookies go (the IdP's stay: signed in there).
            driver.get(shop + "/")
            wait_until(driver, lambda d: d.current_url == shop + "/", "the shop again")
            assert text_of(driver, "greeting") == "Welcome, guest."
            driver.delete_all_cookies()  # this site's: the checked cookie goes
            driver.get(shop + "/")
            wait_until(driver, lambda d: d.current_url == shop + "/", "the shop, checked again")
            assert text_of(driver, "user") == "alice"
            assert not has_login_form(driver)
        except BaseException:
            path = save_screenshot(driver, request.node.name)
            print(f"screenshot: {path}")
            raise


def test_a_browser_that_blocks_the_shops_cookies_sees_its_public_page_as_a_guest(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # A browser blocking every cookie of the shop (its site settings) sends fetch metadata,
    # so the shop's public page bounces it through the IdP once; it comes back with no
    # state cookie. It must end on the page it asked for, as a guest -- anonymous, and
    # signed in at the IdP alike -- with no loop, and Back and Forward working.
    shop, blog = sites["shop"], sites["blog"]
    with chromium(block_cookies_of=[shop]) as browser:
        driver: Any = browser
        try:
            driver.get(blog + "/about")  # another site's page, whose link the user follows
            wait_until(driver, lambda d: d.current_url == blog + "/about", "the blog")
            driver.execute_script("location.href = arguments[0]", shop + "/?ref=blog")
            wait_until(driver, lambda d: d.current_url.startswith(shop + "/?ref=blog&"),
                       "back on the shop's page")
            assert "sessionshare_guest=" in driver.current_url
            assert text_of(driver, "greeting") == "Welcome, guest."
            assert "Not signed in" not in driver.page_source
            assert driver.get_cookies() == []  # blocked indeed: none kept at the shop
            for _ in range(2):  # Back and Forward, twice: no bounce, no loop
                driver.back()
                wait_until(driver, lambda d: d.current_url == blog + "/about", "Back")
                driver.forward()
                wait_until(driver, lambda d: d.current_url.startswith(shop + "/?ref=blog&"),
                           "Forward")
                assert text_of(driver, "greeting") == "Welcome, guest."
            # Signed in at the IdP (through the blog), the shop answers its check with a
            # token this browser cannot use here: the page as a guest all the same.
            driver.get(blog + "/about")
            wait_until(driver, lambda d: d.current_url == blog + "/about", "the blog again")
            click(driver, "sign-in")
            wait_until(driver, lambda d: has_login_form(d), "the IdP's form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == blog + "/", "signed in at the blog")
            driver.execute_script("location.href = arguments[0]", shop + "/")
            wait_until(driver, lambda d: d.current_url.startswith(shop + "/?sessionshare_guest="),
                       "the shop's page, signed in at the IdP")
            assert text_of(driver, "greeting") == "Welcome, guest."
            assert "Not signed in" not in driver.page_source and not has_login_form(driver)
            driver.get(blog + "/about")  # the blog keeps its cookies: still signed in
            wait_until(driver, lambda d: d.current_url == blog + "/about", "the blog, again")
            assert text_of(driver, "user") == "alice"
        except BaseException:
            path = save_screenshot(driver, request.node.name)
            print(f"screenshot: {path}")
            raise


@pytest.mark.parametrize("remember", [True, False], ids=["remembered", "not remembered"])
def test_remember_me_survives_a_browser_restart_and_nothing_else_does(
    sites: dict[str, str], request: pytest.FixtureRequest, tmp_path: Any, remember: bool
) -> None:
    # Issue 12: with "Remember me" ticked every site's cookie has a Max-Age, so a restart
    # of the browser (the same profile) keeps the user signed in at the shop and the blog;
    # without it the cookies end with the browser and the shop asks the IdP again.
    idp, shop, blog = sites["idp"], sites["shop"], sites["blog"]
    profile = str(tmp_path / "profile")
    with chromium(profile=profile) as browser:
        driver: Any = browser
        try:
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: has_login_form(d), "the IdP's form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            if remember:
                click(driver, "remember")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == shop + "/orders", "at the shop")
            driver.get(blog + "/")
            wait_until(driver, lambda d: d.current_url == blog + "/", "at the blog")
            assert text_of(driver, "user") == "alice"
        except BaseException:
            print(f"screenshot: {save_screenshot(driver, request.node.name)}")
            raise
    with chromium(profile=profile) as browser:  # the browser restarted, same profile
        driver = browser
        try:
            driver.get(shop + "/orders")
            if remember:
                wait_until(driver, lambda d: d.current_url == shop + "/orders", "still in")
                assert text_of(driver, "user") == "alice" and not has_login_form(driver)
                driver.get(blog + "/")
                wait_until(driver, lambda d: d.current_url == blog + "/", "the blog too")
                assert text_of(driver, "user") == "alice"
            else:
                wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"),
                           "asked again")
                assert has_login_form(driver)
        except BaseException:
            print(f"screenshot: {save_screenshot(driver, request.node.name)}")
            raise


# A page's script opens a websocket and reports what it got: the first message, or the
# close code (1006: the handshake was refused).
OPEN_SOCKET = """
const done = arguments[arguments.length - 1];
let reported = false;
const report = (text) => { if (!reported) { reported = true; done(text); } };
const socket = new WebSocket(arguments[0]);
socket.onmessage = (event) => { report("message:" + event.data); socket.close(); };
socket.onclose = (event) => report("closed:" + event.code);
"""


def elsewhere(environ: Any, start_response: Any) -> list[bytes]:
    """The attacker's page: any page of another origin will do."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<!doctype html><title>elsewhere</title><p id=elsewhere>another origin</p>"]


def test_a_page_of_another_origin_cannot_open_a_signed_in_socket(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # Cross-site websocket hijacking: a page of another port of the news site's host (or
    # a sibling subdomain: the same site either way) opens a socket to the news site.
    # The browser sends the SameSite=Lax cookie with that handshake; the news site must
    # not serve it as the user. The news site's own page still can.
    news = sites["news"]
    port = int(news.rsplit(":", 1)[1])
    attacker = Servers()
    sock = listen("127.0.0.1", 0)
    evil = f"http://news.localhost:{sock.getsockname()[1]}"
    attacker.start(sock, elsewhere)
    live = f"ws://news.localhost:{port}/live"
    with chromium() as browser:
        driver: Any = browser
        driver.set_script_timeout(WAIT)
        try:
            driver.get(news + "/")
            wait_until(driver, lambda d: has_login_form(d), "the IdP's form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == news + "/", "back at the news site")
            own = driver.execute_async_script(OPEN_SOCKET, live)
            assert own.startswith("message:") and json.loads(own[8:])["user"] == "alice", own
            # The same browser, the same cookie, a page of another origin.
            driver.get(evil + "/")
            wait_until(driver, lambda d: text_of(d, "elsewhere") == "another origin", "there")
            stolen = driver.execute_async_script(OPEN_SOCKET, live)
            assert stolen == "closed:1006", stolen  # refused in the handshake: no message
            # The user is still signed in at the news site.
            driver.get(news + "/")
            wait_until(driver, lambda d: text_of(d, "user") == "alice", "still alice")
        except BaseException:
            print(f"screenshot: {save_screenshot(driver, request.node.name)}")
            raise
        finally:
            attacker.stop()


def test_the_librarys_own_sign_out_page_signs_out(
    sites: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # The page a GET of the logout path shows is the library's own, and so is the check
    # of its POST's Origin. The page was sent with Referrer-Policy: no-referrer, and a
    # browser then sends "Origin: null" on the form's POST (Fetch: a no-referrer request
    # that is not a GET or HEAD serializes its origin as null): every sign-out from it
    # was refused as cross-origin (403), in Chromium, on every site.
    idp, shop = sites["idp"], sites["shop"]
    with chromium() as browser:
        driver: Any = browser
        try:
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: has_login_form(d), "the IdP's form")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wonderland")
            click(driver, "sign-in")
            wait_until(driver, lambda d: d.current_url == shop + "/orders", "at the shop")
            driver.get(shop + "/_sessionshare/logout")
            driver.find_element(By.CSS_SELECTOR, "form[method=post] button").click()
            wait_until(driver, lambda d: "/_sessionshare/logout" not in d.current_url,
                       "signed out and sent on")
            driver.get(shop + "/orders")
            wait_until(driver, lambda d: d.current_url.startswith(idp + "/login?"), "asked again")
            assert has_login_form(driver)
        except BaseException:
            print(f"screenshot: {save_screenshot(driver, request.node.name)}")
            raise
