"""The WSGI shell around an app (sessionshare.wsgi.base, .response): cookie in, lazy load,
persist before the status line and on close -- the write plan run on a store."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import webtest
from conftest import FakeClock, is_dead
from servers import counting_client
from sessionapp import (
    COOKIE,
    make_manager,
    read_all,
    session_app,
    session_browser,
    set_values,
    unknown_cookie,
)

from sessionshare import (
    ConfigurationError,
    MemoryStore,
    RedisStore,
    Session,
    SessionStore,
    StoreUnavailable,
)
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.session import state_of
from sessionshare.wsgi.base import SessionMiddleware

# -- lazy, cookie-free when empty --------------------------------------------------------


class SpyStore(MemoryStore):
    """A real MemoryStore that also remembers which methods were called."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.calls: list[str] = []

    def load(self, key: str, idle_ttl: int) -> Any:
        self.calls.append("load")
        return super().load(key, idle_ttl)

    def save(self, key: str, **kwargs: Any) -> bool:
        self.calls.append("save")
        return super().save(key, **kwargs)


def test_untouched_session_touches_no_store(clock: FakeClock) -> None:
    store = SpyStore(clock)
    manager = make_manager(store, clock)
    app = webtest.TestApp(session_app(manager, lambda s, e: "public"))
    app.set_cookie(COOKIE, unknown_cookie(manager))
    response = app.get("/")
    assert store.calls == []
    assert "Set-Cookie" not in response.headers


def test_anonymous_empty_session_gets_no_cookie_and_no_entry(clock: FakeClock) -> None:
    store = SpyStore(clock)
    manager = make_manager(store, clock)
    app = webtest.TestApp(session_app(manager, lambda s, e: s.get("anything")))
    response = app.get("/")
    assert "Set-Cookie" not in response.headers
    assert len(store) == 0 and "save" not in store.calls


def test_new_session_gets_fresh_id_even_with_a_planted_cookie(store: SessionStore,
                                                               clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    app = webtest.TestApp(session_app(manager, set_values({"cart": [1]})))
    planted = unknown_cookie(manager)  # genuine, but naming no stored session
    app.set_cookie(COOKIE, planted)
    response = app.get("/")
    cookie = response.headers["Set-Cookie"]
    assert planted.split(".")[0] not in cookie  # fixation: a client-chosen id is never adopted
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert len(sid.split(".")[0]) == 43
    assert store.load(manager.session_key(planted), 60) is None
    assert store.load(manager.session_key(sid), 60) is not None


def test_store_keys_are_digests_of_the_id(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    sid = manager.lifecycle.ids.new()
    key = manager.session_key(sid)
    assert sid.split(".")[0] not in key
    assert key.startswith("sessionshare:s:{") and key.endswith("}")
    assert len(key) == len("sessionshare:s:{}") + 64


# -- the session cookie ------------------------------------------------------------------


def test_cookie_flags(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock, cookie=CookieSpec("__Host-ss"))
    app = webtest.TestApp(session_app(manager, set_values({"a": 1})))
    cookie = app.get("/", extra_environ={"wsgi.url_scheme": "https"}).headers["Set-Cookie"]
    assert cookie.startswith("__Host-ss=")
    for flag in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert flag in cookie
    assert "Domain" not in cookie and "Max-Age" not in cookie


# -- lifetimes, regenerate, invalidate ---------------------------------------------------


def test_round_trips_read_one_write_one_unchanged_none(redis_url: str, clock: FakeClock) -> None:
    client, counts = counting_client(redis_url)
    store = RedisStore(client)
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1, "b": [1]}),
        "/read": lambda s, e: s["a"],
        "/read-list": lambda s, e: s["b"],
        "/write": lambda s, e: s.__setitem__("a", s["a"] + 1),
        "/same": lambda s, e: s.__setitem__("a", s["a"]),
        "/public": lambda s, e: "no session",
    })
    app.get("/new")
    app.get("/write")  # warm-up: the first script call also loads the script
    expectations = {"/read": 1, "/read-list": 1, "/write": 2, "/same": 1, "/public": 0}
    for path, expected in expectations.items():
        before = counts["round_trips"]
        app.get(path)
        assert counts["round_trips"] - before == expected, path
    assert app.get("/read").json == 3


def test_idle_timeout(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    manager, app = session_browser(store, clock, idle_timeout=100)
    app.handlers.update({"/new": set_values({"a": 1}), "/read": read_all})
    app.get("/new")
    for _ in range(5):
        clock.advance(90)  # activity keeps sliding the idle expiry
        assert app.get("/read").json == {"a": 1}
    clock.advance(101)
    assert app.get("/read").json == {}


def test_absolute_timeout(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock, idle_timeout=100, absolute_timeout=250)
    app.handlers.update({"/new": set_values({"a": 1}), "/read": read_all})
    app.get("/new")
    sid = app.cookies[COOKIE]
    for _ in range(2):
        clock.advance(90)
        assert app.get("/read").json == {"a": 1}
    clock.advance(90)  # 270 s since creation: past the absolute lifetime
    response = app.get("/read")
    assert response.json == {}
    assert store.load(manager.session_key(sid), 100) is None


def test_regenerate_moves_data_and_kills_old_id(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1}),
        "/regen": lambda s, e: s.regenerate(),
        "/read": read_all,
    })
    app.get("/new")
    old = app.cookies[COOKIE]
    response = app.get("/regen")
    new = app.cookies[COOKIE]
    assert new != old and f"{COOKIE}={new}" in response.headers["Set-Cookie"]
    assert is_dead(store.load(manager.session_key(old), 60))
    assert app.get("/read").json == {"a": 1}


def test_invalidate_deletes_and_clears_cookie(store: SessionStore, clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1}),
        "/logout": lambda s, e: s.invalidate(),
        "/read": read_all,
    })
    app.get("/new")
    sid = app.cookies[COOKIE]
    response = app.get("/logout")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert store.load(manager.session_key(sid), 60) is None
    assert app.get("/read").json == {}


def test_write_after_logout_elsewhere_does_not_resurrect(store: SessionStore,
                                                         clock: FakeClock) -> None:
    manager, app = session_browser(store, clock)

    def write_after_logout(session: Session, environ: dict[str, Any]) -> object:
        session["a"]  # loaded...
        store.delete(manager.session_key(environ["sid"]))  # ...logged out elsewhere...
        session["user"] = "mallory"  # ...then written
        return None

    app.handlers.update({"/new": set_values({"a": 1}), "/race": write_after_logout})
    app.get("/new")
    sid = app.cookies[COOKIE]
    response = app.get("/race", extra_environ={"sid": sid})
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert store.load(manager.session_key(sid), 60) is None


# -- persisting around the app -----------------------------------------------------------


def test_persisted_before_the_status_line(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["sessionshare.session"]["user"] = "alice"
        start_response("200 OK", [])
        return [b"ok"]

    def server_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                              ) -> Callable[[bytes], None]:
        # The moment the server gets the status line, the write is already in the store.
        sid = dict(headers)["Set-Cookie"].split(";")[0].split("=", 1)[1]
        seen.append(store.load(manager.session_key(sid), 60))
        return lambda data: None

    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    body = manager.wrap(app)(environ, server_start_response)
    assert seen and seen[0] is not None and seen[0].fields == {"user": '"alice"'}
    body.close()  # type: ignore[attr-defined]


def test_changes_while_streaming_are_persisted_on_close(store: SessionStore,
                                                        clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    closed: list[bool] = []

    class Body:
        def __init__(self, session: Session) -> None:
            self.session = session

        def __iter__(self) -> Iterator[bytes]:
            yield b"part one"
            self.session["progress"] = "done"
            yield b"part two"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ["sessionshare.session"]
        session["progress"] = "started"
        start_response("200 OK", [])
        return Body(session)

    wrapped = webtest.TestApp(manager.wrap(app))
    wrapped.get("/")
    sid = wrapped.cookies[COOKIE]
    record = store.load(manager.session_key(sid), 60)
    assert closed == [True]
    assert record is not None and record.fields["progress"] == '"done"'


def test_a_list_handed_out_and_changed_while_streaming_is_persisted_on_close(
    store: SessionStore, clock: FakeClock
) -> None:
    """Handed out before the answer starts and unchanged then (nothing to write at the
    start), changed in place while the body streams: the close finds and stores it."""
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        session = environ["sessionshare.session"]
        if environ["PATH_INFO"] == "/fill":
            session["cart"] = ["a"]
            start_response("200 OK", [])
            yield b"filled"
            return
        cart = session["cart"]
        start_response("200 OK", [])
        yield b"part one"
        cart.append("b")  # in place, after the headers went out
        yield b"part two"

    wrapped = webtest.TestApp(manager.wrap(app))
    wrapped.get("/fill")
    sid = wrapped.cookies[COOKIE]
    assert wrapped.get("/stream").body == b"part onepart two"
    record = store.load(manager.session_key(sid), 60)
    assert record is not None and record.fields["cart"] == '["a","b"]'


def test_generator_app_that_starts_late(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        environ["sessionshare.session"]["a"] = 1
        start_response("200 OK", [])
        yield b"one"
        yield b"two"

    wrapped = webtest.TestApp(manager.wrap(app))
    response = wrapped.get("/")
    assert response.body == b"onetwo"
    assert "Set-Cookie" in response.headers


def test_bad_shell_configuration(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="SessionStore"):
        SessionMiddleware(lambda environ, start_response: [], store=object(),  # type: ignore[arg-type]
                          side=make_manager(MemoryStore(), clock).side)
    with pytest.raises(ConfigurationError, match="positive"):
        make_manager(MemoryStore(), clock, idle_timeout=0)


# -- running the write plan ---------------------------------------------------------


class OrderStore(MemoryStore):
    """A real MemoryStore that logs each write as (method, which id, create flag)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.names: dict[str, str] = {}  # store key -> "old" / "new"
        self.log: list[tuple[str, str, bool]] = []

    def save(self, key: str, **kwargs: Any) -> bool:
        self.log.append(("save", self.names.get(key, "new"), kwargs.get("create", False)))
        return super().save(key, **kwargs)

    def delete(self, key: str, *, census: str | None = None) -> None:
        self.log.append(("delete", self.names.get(key, "new"), False))
        super().delete(key, census=census)

    def move(self, key: str, new_key: str, **kwargs: Any) -> bool:
        self.log.append(("move", self.names.get(key, "new"), False))
        return super().move(key, new_key, **kwargs)


@pytest.mark.parametrize(
    ("handler", "writes", "cookie"),
    [
        (lambda s, e: s["a"], [], None),
        (lambda s, e: s.__setitem__("a", 2), [("save", "old", False)], None),
        (lambda s, e: state_of(s).mark_authenticated(1), [("save", "old", False)], None),
        # One conditional move: the new id only if the old one is live; the old id is
        # retired (a data-less marker for a few seconds), not deleted.
        (lambda s, e: s.regenerate(), [("move", "old", False)], "set"),
        (lambda s, e: s.invalidate(), [("delete", "old", False)], "clear"),
        (lambda s, e: (s.invalidate(), s.__setitem__("b", 1)),
         [("delete", "old", False), ("save", "new", True)], "set"),
    ],
    ids=["unchanged", "changed", "meta only", "regenerate", "invalidate",
         "invalidate then write"],
)
def test_each_plan_runs_its_store_calls_in_order(
    clock: FakeClock, handler: Any, writes: list[tuple[str, str, bool]], cookie: str | None
) -> None:
    store = OrderStore(clock)
    manager, app = session_browser(store, clock)
    app.handlers.update({"/new": set_values({"a": 1}), "/step": handler})
    app.get("/new")
    store.names[manager.session_key(app.cookies[COOKIE])] = "old"
    store.log.clear()
    response = app.get("/step")
    # Regenerate moves in one step (nothing lost, nothing brought back on a failure or a
    # logout between); invalidate deletes first (a logout never waits on a write).
    assert store.log == writes
    set_cookie = response.headers.get("Set-Cookie")
    if cookie is None:
        assert set_cookie is None
    elif cookie == "clear":
        assert set_cookie is not None and "Max-Age=0" in set_cookie
    else:
        assert set_cookie is not None and "Max-Age=0" not in set_cookie
    assert response.headers["Vary"] == "Cookie"


def test_persist_of_an_unloaded_session_adds_no_header(clock: FakeClock) -> None:
    store = SpyStore(clock)
    manager = make_manager(store, clock)
    environ = {"HTTP_COOKIE": f"{COOKIE}={unknown_cookie(manager)}"}
    assert manager.persist(manager.open(environ)) == []
    session = manager.open(environ)
    assert session.get("a") is None  # loaded: nothing stored under that cookie
    assert manager.persist(session)[0] == ("Vary", "Cookie")
    assert store.calls == ["load"]


def test_write_ttl_is_the_idle_timeout_capped_by_the_absolute_lifetime(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    manager, app = session_browser(store, clock, idle_timeout=100, absolute_timeout=250)
    app.handlers.update({
        "/new": set_values({"a": 1}),
        "/write": lambda s, e: s.__setitem__("a", s["a"] + 1),
        "/sign-in": lambda s, e: state_of(s).mark_authenticated(clock()),
    })
    app.get("/new")
    key = manager.session_key(app.cookies[COOKIE])
    assert store.sessions()[key].expires == clock() + 100
    clock.advance(90)
    app.get("/write")
    clock.advance(90)
    app.get("/write")  # 180 s in: 70 s of the absolute lifetime left
    assert store.sessions()[key].expires == clock() + 70
    app.get("/sign-in")  # a sign-in starts a fresh lifetime
    assert store.sessions()[key].expires == clock() + 100


def test_a_session_first_written_while_streaming_is_not_stored(clock: FakeClock) -> None:
    """Its cookie can no longer be sent: storing it would only leave an orphan entry."""
    store = MemoryStore(clock=clock)
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        environ["sessionshare.session"]["late"] = 1
        yield b"two"

    wrapped = webtest.TestApp(manager.wrap(app))
    response = wrapped.get("/")
    assert response.body == b"onetwo" and "Set-Cookie" not in response.headers
    assert store.sessions() == {}


# -- a second start_response (PEP 3333: an error page, with exc_info) -------------------
# Security review finding 11: the second call persisted again, found nothing left to
# write and sent headers without the cookie the first call's carried.


def _server(sent: list[tuple[str, list[tuple[str, str]]]]) -> Callable[..., Any]:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Callable[[bytes], None]:
        assert not sent or exc_info is not None, "start_response called twice"
        sent.append((status, headers))
        return lambda data: None

    return start_response


def _error_page_after(start: Callable[..., Any]) -> None:
    try:
        raise RuntimeError("the page broke after its headers were set")
    except RuntimeError:
        start("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())


def test_a_later_start_response_gets_the_session_headers_and_persists_nothing(
    clock: FakeClock,
) -> None:
    store = SpyStore(clock)
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["sessionshare.session"]["a"] = 1
        start_response("200 OK", [("Content-Type", "application/json")])
        _error_page_after(start_response)
        return [b"something went wrong"]

    sent: list[tuple[str, list[tuple[str, str]]]] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    body = manager.wrap(app)(environ, _server(sent))
    body.close()  # type: ignore[attr-defined]
    (_, first), (status, headers) = sent
    assert status.startswith("500 ") and ("Content-Type", "text/plain") in headers
    session_headers = [h for h in first if h[0] in ("Set-Cookie", "Vary")]
    assert len(session_headers) == 2 and [h for h in headers if h in session_headers] == (
        session_headers
    )
    assert store.calls.count("save") == 1


def test_a_failed_persist_is_not_retried_by_a_later_start_response(clock: FakeClock) -> None:
    class FailsOnce(MemoryStore):
        failed = False

        def save(self, key: str, **kwargs: Any) -> bool:
            if not self.failed:
                self.failed = True
                raise StoreUnavailable("down for the first write")
            return super().save(key, **kwargs)

    store = FailsOnce(clock=clock)
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["sessionshare.session"]["a"] = 1
        try:
            start_response("200 OK", [])
        except StoreUnavailable:
            _error_page_after(start_response)  # an app that renders its own error page
        return [b"page"]

    sent: list[tuple[str, list[tuple[str, str]]]] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    manager.wrap(app)(environ, _server(sent))
    # Nothing of the app's reached the server: the middleware's 503 went out in its place
    # (the first start_response the server saw), and nothing was stored.
    assert [status for status, _ in sent] == ["503 Service Unavailable"]
    assert store.sessions() == {}


def test_changes_while_streaming_never_need_a_cookie(
    store: SessionStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    manager, app = session_browser(store, clock)

    def body_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        session = environ["sessionshare.session"]
        session["a"] = 2
        session.regenerate()
        yield b"two"

    app.handlers["/new"] = set_values({"a": 1})
    app.get("/new")
    sid = app.cookies[COOKIE]
    wrapped = webtest.TestApp(manager.wrap(body_app))
    wrapped.set_cookie(COOKIE, sid)
    caplog.set_level(logging.WARNING, logger="sessionshare")
    caplog.clear()  # the side's start-up line
    assert "Set-Cookie" not in wrapped.get("/").headers
    record = store.load(manager.session_key(sid), 60)
    assert record is not None and record.fields == {"a": "2"}  # updated, under the same id
    assert [m.split(" ", 2)[:2] for m in caplog.messages] == [
        ["late_change_refused", "reason=regenerate"]
    ]


def test_a_session_found_gone_on_write_is_left_new_and_empty(clock: FakeClock) -> None:
    """No ticket can be minted for it afterwards, and nothing is written on close."""
    store = SpyStore(clock)
    manager, app = session_browser(store, clock)
    app.handlers["/new"] = set_values({"a": 1})
    app.get("/new")
    sid = app.cookies[COOKIE]
    session = manager.open({"HTTP_COOKIE": f"{COOKIE}={sid}"})
    session["a"] = 2
    store.delete(manager.session_key(sid))  # logged out elsewhere meanwhile
    headers = manager.persist(session)
    assert ("Set-Cookie", manager.cookie.clear()) in headers
    assert state_of(session).stored_id is None and session.new and len(session) == 0
    assert not session.modified and not state_of(session).had_cookie
    store.calls.clear()
    assert manager.persist(session) == [("Vary", "Cookie")] and store.calls == []
