"""sessionshare.session and sessionshare.manager: the Session mapping and its manager."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import webtest
from conftest import FakeClock
from servers import counting_client

from sessionshare import ConfigurationError, MemoryStore, RedisStore, Session, SessionStore
from sessionshare.manager import SessionManager
from sessionshare.web import CookieSpec

COOKIE = "sessionshare"


def make_manager(store: SessionStore, clock: FakeClock, **options: Any) -> SessionManager:
    cookie = options.pop("cookie", CookieSpec(COOKIE, secure=False))
    return SessionManager(store, cookie=cookie, clock=clock, **options)


def session_app(
    manager: SessionManager, handler: Callable[[Session, dict[str, Any]], object]
) -> Callable[..., Iterable[bytes]]:
    """A WSGI app behind ``manager`` whose body is ``handler``'s JSON result."""

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = handler(environ["sessionshare.session"], environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(result).encode()]

    def outer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = manager.open(environ)
        return manager.run(inner, environ, start_response, session)

    return outer


def set_values(values: dict[str, Any]) -> Callable[[Session, dict[str, Any]], object]:
    def handler(session: Session, environ: dict[str, Any]) -> object:
        session.update(values)
        return None

    return handler


def read_all(session: Session, environ: dict[str, Any]) -> object:
    return dict(session)


# -- the mapping ------------------------------------------------------------------


def test_session_is_a_json_mapping() -> None:
    session = Session()
    session["a"] = 1
    session["b"] = {"x": [1, 2]}
    assert dict(session) == {"a": 1, "b": {"x": [1, 2]}}
    assert len(session) == 2 and "a" in session and "z" not in session
    del session["a"]
    assert list(session) == ["b"]
    with pytest.raises(KeyError):
        del session["a"]
    with pytest.raises(KeyError):
        session["missing"]
    assert session.get("missing", 5) == 5


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, b"bytes", float("nan"), float("inf"), {"k": object()}],
    ids=["object", "set", "bytes", "nan", "inf", "nested object"],
)
def test_non_json_values_raise_type_error_at_assignment(value: object) -> None:
    session = Session()
    with pytest.raises(TypeError, match="only JSON values"):
        session["bad"] = value
    assert "bad" not in session


def test_keys_must_be_strings() -> None:
    with pytest.raises(TypeError, match="strings"):
        Session()[1] = "x"  # type: ignore[index]


def test_repr_shows_no_id(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    app = webtest.TestApp(session_app(manager, set_values({"a": 1})))
    sid = app.get("/").headers["Set-Cookie"].split(";")[0].split("=")[1]
    environ = {"HTTP_COOKIE": f"{COOKIE}={sid}"}
    session = manager.open(environ)
    assert sid not in repr(session)
    assert "unloaded" in repr(session)


# -- the manager: lazy, cookie-free when empty ----------------------------------------


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
    app.set_cookie(COOKIE, "A" * 43)
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
    planted = "P" * 43
    app.set_cookie(COOKIE, planted)
    response = app.get("/")
    cookie = response.headers["Set-Cookie"]
    assert planted not in cookie  # fixation: a client-chosen id is never adopted
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert len(sid) == 43
    assert store.load(manager.session_key(planted), 60) is None
    assert store.load(manager.session_key(sid), 60) is not None


def test_store_keys_are_digests_of_the_id(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)
    sid = "S" * 43
    key = manager.session_key(sid)
    assert sid not in key and key.startswith("sessionshare:s:{") and key.endswith("}")
    assert len(key) == len("sessionshare:s:{}") + 64


def test_cookie_flags(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock, cookie=CookieSpec("__Host-ss"))
    app = webtest.TestApp(session_app(manager, set_values({"a": 1})))
    cookie = app.get("/", extra_environ={"wsgi.url_scheme": "https"}).headers["Set-Cookie"]
    assert cookie.startswith("__Host-ss=")
    for flag in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert flag in cookie
    assert "Domain" not in cookie and "Max-Age" not in cookie


@pytest.mark.parametrize(
    "options",
    [{"secure": False}, {"path": "/app"}, {"domain": "example.com"}],
)
def test_host_prefix_rules_are_enforced(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="__Host-"):
        CookieSpec("__Host-ss", **options)


def test_samesite_none_needs_secure_and_bad_values_fail() -> None:
    with pytest.raises(ConfigurationError, match="secure"):
        CookieSpec("ss", samesite="None", secure=False)
    with pytest.raises(ConfigurationError, match="samesite"):
        CookieSpec("ss", samesite="sometimes")
    with pytest.raises(ConfigurationError, match="cookie name"):
        CookieSpec("bad name;")


# -- change tracking ---------------------------------------------------------------


def _browser(store: SessionStore, clock: FakeClock, **options: Any) -> tuple[SessionManager,
                                                                           webtest.TestApp]:
    manager = make_manager(store, clock, **options)
    handlers: dict[str, Callable[[Session, dict[str, Any]], object]] = {}

    def dispatch(session: Session, environ: dict[str, Any]) -> object:
        return handlers[environ["PATH_INFO"]](session, environ)

    app = webtest.TestApp(session_app(manager, dispatch))
    app.handlers = handlers  # type: ignore[attr-defined]
    return manager, app


def test_nested_changes_are_persisted(store: SessionStore, clock: FakeClock) -> None:
    manager, app = _browser(store, clock)
    app.handlers.update({
        "/new": set_values({"cart": ["a"], "profile": {"n": 1}}),
        "/append": lambda s, e: s["cart"].append("b"),
        "/nested": lambda s, e: s["profile"].update(n=2),
        "/read": read_all,
    })
    app.get("/new")
    app.get("/append")
    app.get("/nested")
    assert app.get("/read").json == {"cart": ["a", "b"], "profile": {"n": 2}}


def test_delete_and_reassign_are_persisted(store: SessionStore, clock: FakeClock) -> None:
    manager, app = _browser(store, clock)
    app.handlers.update({
        "/new": set_values({"a": 1, "b": 2}),
        "/del": lambda s, e: s.pop("a"),
        "/readd": set_values({"a": 3}),
        "/read": read_all,
    })
    app.get("/new")
    app.get("/del")
    assert app.get("/read").json == {"b": 2}
    app.get("/readd")
    assert app.get("/read").json == {"a": 3, "b": 2}


def test_round_trips_read_one_write_one_unchanged_none(redis_url: str, clock: FakeClock) -> None:
    client, counts = counting_client(redis_url)
    store = RedisStore(client)
    manager, app = _browser(store, clock)
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
    manager, app = _browser(store, clock, idle_timeout=100)
    app.handlers.update({"/new": set_values({"a": 1}), "/read": read_all})
    app.get("/new")
    for _ in range(5):
        clock.advance(90)  # activity keeps sliding the idle expiry
        assert app.get("/read").json == {"a": 1}
    clock.advance(101)
    assert app.get("/read").json == {}


def test_absolute_timeout(store: SessionStore, clock: FakeClock) -> None:
    manager, app = _browser(store, clock, idle_timeout=100, absolute_timeout=250)
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
    manager, app = _browser(store, clock)
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
    assert store.load(manager.session_key(old), 60) is None
    assert app.get("/read").json == {"a": 1}


def test_invalidate_deletes_and_clears_cookie(store: SessionStore, clock: FakeClock) -> None:
    manager, app = _browser(store, clock)
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
    manager, app = _browser(store, clock)

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
    session = manager.open(environ)
    body = manager.run(app, environ, server_start_response, session)
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

    wrapped = webtest.TestApp(lambda environ, sr: manager.run(app, environ, sr,
                                                               manager.open(environ)))
    wrapped.get("/")
    sid = wrapped.cookies[COOKIE]
    record = store.load(manager.session_key(sid), 60)
    assert closed == [True]
    assert record is not None and record.fields["progress"] == '"done"'


def test_generator_app_that_starts_late(store: SessionStore, clock: FakeClock) -> None:
    manager = make_manager(store, clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        environ["sessionshare.session"]["a"] = 1
        start_response("200 OK", [])
        yield b"one"
        yield b"two"

    wrapped = webtest.TestApp(lambda environ, sr: manager.run(app, environ, sr,
                                                               manager.open(environ)))
    response = wrapped.get("/")
    assert response.body == b"onetwo"
    assert "Set-Cookie" in response.headers


def test_bad_manager_configuration() -> None:
    with pytest.raises(ConfigurationError, match="SessionStore"):
        SessionManager(object(), cookie=CookieSpec("s"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="positive"):
        SessionManager(MemoryStore(), cookie=CookieSpec("s"), idle_timeout=0)


def test_odd_unicode_values_round_trip_and_bad_keys_fail_at_assignment(
    store: SessionStore, clock: FakeClock
) -> None:
    manager, app = _browser(store, clock)
    odd = {"surrogate": "\ud800", "accents": "café ☕", "nul": "a\x00b"}
    app.handlers.update({"/new": set_values(odd), "/read": read_all})
    app.get("/new")
    assert app.get("/read").json == {k: v for k, v in odd.items() if k != "surrogate"} | {
        "surrogate": "\ud800"
    }
    with pytest.raises(TypeError, match="valid Unicode"):
        Session()["\udc80"] = 1
