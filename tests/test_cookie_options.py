"""The session cookie's per-app options, end to end: every answer that sets or clears it.

``cookie_path``, ``cookie_httponly``, ``cookie_partitioned``, ``cookie_max_age`` and
``cookie_refresh`` (sessionshare/core/options.py) are decided in the core
(CookieSpec, SessionIds, Lifecycle; their own tests are in test_core_cookies.py,
test_core_ids.py and test_core_options.py). Here each is seen by a browser (a
WebTest cookie jar) through a remote middleware of each shell over each store:
the app's answers that set or clear the cookie, and the middleware's own (the
sign-out) alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import webtest
from asgibridge import WsgiToAsgi
from conftest import FakeClock
from flow import Deployment, async_twin

from sessionshare import MemoryStore, SessionStore, StoreUnavailable, SyncKey

APP_URL = "https://shop.test"
PATH = "/shop"


def _body_for(session: Any, path: str, query: str) -> bytes:
    if path.endswith("/quiet"):
        return b"{}"  # a page that never looks at the session
    if path.endswith("/write"):
        for pair in filter(None, query.split("&")):
            name, _, value = pair.partition("=")
            session[name] = value
    elif path.endswith("/clear"):
        session.clear()
    return json.dumps(dict(session)).encode()


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``.../write?k=v`` writes, ``.../clear`` empties, anything shows the session."""
    body = _body_for(environ["sessionshare.session"], environ["PATH_INFO"],
                     environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """:func:`wsgi_app`'s ASGI twin."""
    body = _body_for(scope["session"], scope["path"], scope["query_string"].decode())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class Shop:
    """One app of ``shell`` over ``store`` -- a remote, or the IdP -- with a browser for
    it (https)."""

    def __init__(self, store: SessionStore, clock: FakeClock, shell: str, role: str = "remote",
                 **options: Any) -> None:
        idp_class, remote_class = Deployment.SHELLS[shell]
        own: dict[str, Any] = (
            {"known_remote_hosts": ["https://blog.test"]} if role == "idp"
            else {"idp_url": "https://id.test/login", "protect": False})
        self.middleware = (idp_class if role == "idp" else remote_class)(
            asgi_app if shell == "asgi" else wsgi_app,
            store=async_twin(store) if shell == "asgi" else store, key=SyncKey.generate(),
            app_url=APP_URL, clock=clock, **own, **options,
        )
        wrapped = WsgiToAsgi(self.middleware) if shell == "asgi" else self.middleware
        self.browser = webtest.TestApp(
            wrapped, extra_environ={"HTTP_HOST": "shop.test", "wsgi.url_scheme": "https"})
        self.store = store
        self.lifecycle = self.middleware.side.lifecycle
        self.name = self.lifecycle.cookie.name

    def get(self, path: str, **kwargs: Any) -> webtest.TestResponse:
        return self.browser.get(path, status="*", **kwargs)

    def set_cookie(self, response: webtest.TestResponse) -> str:
        """The one ``Set-Cookie`` of the session cookie in ``response``."""
        (value,) = [v for k, v in response.headerlist
                    if k == "Set-Cookie" and v.startswith(self.name + "=")]
        return str(value)

    def jar_value(self) -> str | None:
        for cookie in self.browser.cookiejar:
            if cookie.name == self.name:
                return str(cookie.value)
        return None

    def record_of(self, value: str) -> Any:
        sid = self.lifecycle.session_id_in(f"{self.name}={value}")
        assert sid is not None, "not a genuine cookie value"
        return self.store.peek(self.lifecycle.session_key(sid))


@pytest.fixture
def make_shop(store: SessionStore, clock: FakeClock, shell: str) -> Iterator[Callable[..., Shop]]:
    yield lambda **options: Shop(store, clock, shell, **options)


def _attributes(set_cookie: str) -> list[str]:
    return [part.strip() for part in set_cookie.split(";")[1:]]


def test_cookie_path_holds_on_set_and_on_the_sign_outs_clear(make_shop: Any) -> None:
    shop = make_shop(cookie_path=PATH, logout_path=PATH + "/logout")
    assert shop.name == "__Secure-sessionshare"  # __Host- needs Path=/
    written = shop.get(PATH + "/write?k=v")
    assert f"Path={PATH}" in _attributes(shop.set_cookie(written))
    value = shop.jar_value()
    assert value is not None and shop.record_of(value) is not None
    # The browser sends it under the path only (the jar follows Path as browsers do).
    assert shop.get(PATH + "/read").json == {"k": "v"}
    assert shop.get("/read").json == {}
    # The sign-out, an answer of the middleware's own, clears it at that very path.
    out = shop.browser.post(PATH + "/logout", status="*")
    assert out.status_int == 303, out
    cleared = shop.set_cookie(out)
    assert cleared.startswith(shop.name + "=;") and "Max-Age=0" in cleared
    assert f"Path={PATH}" in _attributes(cleared)
    assert shop.jar_value() is None
    assert shop.record_of(value) is None  # the shared session ended


def test_an_emptied_sessions_clear_carries_the_path_too(make_shop: Any) -> None:
    shop = make_shop(cookie_path=PATH)
    shop.get(PATH + "/write?k=v")
    cleared = shop.set_cookie(shop.get(PATH + "/clear"))
    assert "Max-Age=0" in cleared and f"Path={PATH}" in _attributes(cleared)
    assert shop.jar_value() is None


def test_partitioned_cookie_is_set_and_cleared_partitioned(make_shop: Any) -> None:
    shop = make_shop(cookie_partitioned=True)
    written = shop.set_cookie(shop.get("/write?k=v"))
    assert "Partitioned" in _attributes(written) and "Secure" in _attributes(written)
    assert shop.get("/read").json == {"k": "v"}
    cleared = shop.set_cookie(shop.get("/clear"))
    assert "Partitioned" in _attributes(cleared) and "Max-Age=0" in cleared


def test_httponly_off_leaves_the_flag_out_of_every_set_cookie(make_shop: Any) -> None:
    shop = make_shop(cookie_httponly=False)
    written = shop.set_cookie(shop.get("/write?k=v"))
    assert "HttpOnly" not in _attributes(written)
    cleared = shop.set_cookie(shop.get("/clear"))
    assert "HttpOnly" not in _attributes(cleared) and "Max-Age=0" in cleared
    default = make_shop()
    assert "HttpOnly" in _attributes(default.set_cookie(default.get("/write?k=v")))


def _expires(set_cookie: str) -> str:
    match = re.search(r"Expires=([^;]+)", set_cookie)
    assert match is not None, set_cookie
    return match.group(1)


def test_max_age_makes_a_persistent_cookie_refreshed_on_each_visit(
    make_shop: Any, clock: FakeClock
) -> None:
    shop = make_shop(cookie_max_age=60)
    written = shop.set_cookie(shop.get("/write?k=v"))
    assert "Max-Age=60" in _attributes(written)
    assert _expires(written) == "Fri, 15 Jan 2027 08:01:00 GMT"  # the clock's + 60 s
    clock.advance(40)
    read = shop.get("/read")
    assert read.json == {"k": "v"}
    refreshed = shop.set_cookie(read)  # sliding: 60 s from this visit
    assert "Max-Age=60" in _attributes(refreshed)
    assert _expires(refreshed) == "Fri, 15 Jan 2027 08:01:40 GMT"
    assert "Cookie" in read.headers["Vary"]
    clock.advance(40)  # 80 s after the first cookie, 40 after the refreshed one
    assert shop.get("/read").json == {"k": "v"}


def test_a_page_that_never_reads_the_session_refreshes_only_a_live_ones_cookie(
    make_shop: Any, clock: FakeClock
) -> None:
    """The refresh re-sends a cookie only for a session found live, under both shells: a
    page that never looks at the session reads it first, so the cookie of a session ended
    elsewhere (a logout, a revocation) is cleared, not kept alive by such pages."""
    shop = make_shop(cookie_max_age=60)
    shop.get("/write?k=v")
    clock.advance(40)
    live = shop.set_cookie(shop.get("/quiet"))
    assert "Max-Age=60" in _attributes(live)
    assert _expires(live) == "Fri, 15 Jan 2027 08:01:40 GMT"  # 60 s from this visit
    value = shop.jar_value()
    assert value is not None
    shop.store.delete(shop.lifecycle.session_key(value.rsplit(".", 2)[0]))
    gone = shop.set_cookie(shop.get("/quiet"))
    assert "Max-Age=0" in _attributes(gone)


class _GoesDown(MemoryStore):
    """A real MemoryStore whose reads fail once ``down`` is set."""

    down = False

    def load(self, key: str, idle_ttl: int) -> Any:
        if self.down:
            raise StoreUnavailable("redis at 127.0.0.1:6379 did not answer: ConnectionError")
        return super().load(key, idle_ttl)


def test_a_refresh_whose_read_finds_the_store_down_serves_the_page_without_it(
    clock: FakeClock,
) -> None:
    """The read a WSGI refresh adds to a page that never looked at the session is not the
    page's: with the store down, the page is served, only the cookie is not re-sent."""
    store = _GoesDown(clock=clock)
    shop = Shop(store, clock, "wsgi", cookie_max_age=60)
    shop.get("/write?k=v")
    store.down = True
    page = shop.get("/quiet")
    assert page.status_int == 200 and page.json == {}
    assert not [v for k, v in page.headerlist if k == "Set-Cookie"]


def test_without_refresh_the_cookie_ages_from_when_it_was_set(
    make_shop: Any, clock: FakeClock
) -> None:
    shop = make_shop(cookie_max_age=60, cookie_refresh=False)
    shop.get("/write?k=v")
    clock.advance(40)
    read = shop.get("/read")
    assert read.json == {"k": "v"}
    assert not [k for k, _ in read.headerlist if k == "Set-Cookie"]
    clock.advance(40)
    assert shop.get("/read").json == {}


def test_without_refresh_a_change_still_sets_the_cookie_anew(
    make_shop: Any, clock: FakeClock
) -> None:
    # Starlette's and Flask's rule when they do not refresh: a persistent cookie is set
    # again by each answer that changed the session, so its life counts from the last
    # change; a read alone leaves it as it is (the test above).
    shop = make_shop(cookie_max_age=60, cookie_refresh=False)
    shop.get("/write?k=v")
    clock.advance(40)
    changed = shop.get("/write?k=w")
    again = shop.set_cookie(changed)
    assert "Max-Age=60" in _attributes(again)
    assert _expires(again) == "Fri, 15 Jan 2027 08:01:40 GMT"  # 60 s from the change
    clock.advance(40)  # 80 s after the first cookie, 40 after the change
    assert shop.get("/read").json == {"k": "w"}


def test_an_expired_cookie_reads_as_a_guest_and_the_session_lives_on(
    make_shop: Any, clock: FakeClock
) -> None:
    shop = make_shop(cookie_max_age=60)
    shop.get("/write?k=v")
    value = shop.jar_value()
    assert value is not None
    stored = shop.record_of(value)
    clock.advance(60)  # the browser here keeps it (WebTest's jar ages by the real clock)
    assert shop.lifecycle.session_id_in(f"{shop.name}={value}") is None
    guest = shop.get("/read")
    assert guest.json == {}
    assert not [k for k, _ in guest.headerlist if k == "Set-Cookie"]  # not refreshed
    # Not ended: the shared session is still in the store, as it was.
    key = shop.lifecycle.session_key(value.rsplit(".", 2)[0])
    assert shop.store.peek(key) == stored


def test_a_tampered_time_is_refused_and_changes_nothing_stored(
    make_shop: Any, clock: FakeClock
) -> None:
    shop = make_shop(cookie_max_age=60)
    shop.get("/write?k=v")
    value = shop.jar_value()
    assert value is not None
    key = shop.lifecycle.session_key(value.rsplit(".", 2)[0])
    stored = shop.store.peek(key)
    clock.advance(120)
    sid, _, tag = value.rsplit(".", 2)
    younger = f"{sid}.{int(clock()):x}.{tag}"  # claims to be issued just now
    shop.browser.set_cookie(shop.name, younger)
    answer = shop.get("/write?k=w")
    assert answer.json == {"k": "w"}  # a new session: the old one was not opened
    assert shop.store.peek(key) == stored
    assert shop.jar_value() not in (None, value, younger)


def test_the_idp_honours_every_cookie_option_too(make_shop: Any, clock: FakeClock) -> None:
    idp = make_shop(role="idp", cookie_path=PATH, logout_path=PATH + "/logout",
                    login_path=PATH + "/login", cookie_partitioned=True, cookie_httponly=False,
                    cookie_max_age=60)
    written = _attributes(idp.set_cookie(idp.get(PATH + "/write?k=v")))
    assert {f"Path={PATH}", "Partitioned", "Max-Age=60", "Secure"} <= set(written)
    assert "HttpOnly" not in written
    clock.advance(30)
    read = idp.get(PATH + "/read")
    assert read.json == {"k": "v"} and "Max-Age=60" in _attributes(idp.set_cookie(read))
    value = idp.jar_value()
    assert value is not None
    out = idp.browser.post(PATH + "/logout", status="*")
    cleared = _attributes(idp.set_cookie(out))
    assert {f"Path={PATH}", "Partitioned", "Max-Age=0"} <= set(cleared)
    assert idp.jar_value() is None
    assert idp.record_of(value) is None


def test_a_followed_cookie_is_the_one_every_answer_sets_and_clears(make_shop: Any) -> None:
    # An adapter makes the cookie follow its framework's settings (Flask's
    # SESSION_COOKIE_PATH): the middleware's own sign-out then clears that same cookie.
    shop = make_shop(logout_path=PATH + "/logout")
    shop.lifecycle.follow_cookie({"path": PATH, "httponly": False})
    assert shop.lifecycle.cookie.name == "__Secure-sessionshare"
    shop.name = shop.lifecycle.cookie.name
    written = _attributes(shop.set_cookie(shop.get(PATH + "/write?k=v")))
    assert f"Path={PATH}" in written and "HttpOnly" not in written
    assert shop.get(PATH + "/read").json == {"k": "v"}  # read under the followed name
    cleared = _attributes(shop.set_cookie(shop.browser.post(PATH + "/logout", status="*")))
    assert f"Path={PATH}" in cleared and "Max-Age=0" in cleared
    assert shop.jar_value() is None
    shop.lifecycle.follow_cookie({})  # the options' own cookie again
    assert shop.lifecycle.cookie.name == "__Host-sessionshare"
