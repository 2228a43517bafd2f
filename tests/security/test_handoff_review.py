"""An outside review of the hand-off edges' fixes (claims as long as their state, receipts,
cookieless passive visitors, a retried callback, a lost ticket): what it broke, each test
failing on the code before its fix.

- a mount point (``SCRIPT_NAME``, ASGI ``root_path``) never turns the library's own links
  -- the passive notice's, the sign-out form's -- into links to another site.

On MemoryStore and real Redis, under the WSGI and the ASGI shell.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import webtest
from conftest import FakeClock
from flow import CALLBACK, SHOP, Browser, Deployment

from sessionshare import SessionStore

# -- the library's own links stay on this site -------------------------------------------------


def _passive_answer(browser: Browser) -> str:
    """The query of a genuine "not signed in" answer from the IdP (anyone can get one)."""
    page = browser.get(SHOP + "/news",
                       headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
    assert page.status_int == 302 and "passive=1" in page.location, page
    back = browser.get(page.location)
    assert back.status_int == 303 and "?passive=" in back.location, back
    return urlsplit(back.location).query


def _links(page: webtest.TestResponse) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', page.text)


@pytest.mark.parametrize("root", ["//evil.example", "/\\evil.example"],
                         ids=["double-slash", "backslash"])
def test_a_mount_point_never_makes_a_link_to_another_site(
    store: SessionStore, clock: FakeClock, shell: str, root: str
) -> None:
    # The mount point is the server's to say, and sometimes partly the client's: a
    # Starlette Mount("/{tenant}") puts the client's path segment (which may hold a
    # backslash) into root_path; gunicorn takes SCRIPT_NAME from a header its forwarder
    # passes. Browsers read "//host" and "/\host" as another host.
    dep = Deployment(store, clock, shell=shell, remote_options={"passive": True})
    answer = _passive_answer(Browser(dep))
    shop = webtest.TestApp(dep.wsgi(dep.shop),
                           extra_environ={"HTTP_HOST": "shop.test", "SCRIPT_NAME": root})
    html = {"Accept": "text/html"}
    # A browser that keeps no cookies, back from a passive bounce: the notice.
    notice = shop.get(f"{CALLBACK}?{answer}", headers=html, status="*")
    assert notice.status_int == 200 and "Not signed in" in notice.text, notice
    as_json = shop.get(f"{CALLBACK}?{answer}", headers={"Accept": "application/json"},
                       status="*")
    # The sign-out page's form.
    form = shop.get("/_sessionshare/logout", headers=html, status="*")
    assert form.status_int == 200 and "<form" in form.text, form
    links = [*_links(notice), *_links(form), as_json.json["next"]]
    assert len(links) == 3, links
    for link in links:
        assert link.startswith("/") and not link.startswith(("//", "/\\")), links
        assert "evil.example" not in link or link.startswith("/%5C"), links
