"""A request that moves the session cannot outrun a logout or a revocation: served races.

A request at the IdP reads alice's session; while it runs, she signs out in
another tab (at the IdP or at a remote), or an operator revokes all her
sessions; then the request moves the session to a new id -- ``regenerate()``
(Django's ``cycle_key()``), ``remember()``, or the sign-in that rotates the
id. Before, the move wrote a full copy under the new id and the browser got
a cookie for it: signed out everywhere, and signed in again. The move is one
conditional store step now (``SessionStore.move``): the request finds the
session ended and answers signed out.

The race is made, not hoped for: a store wrapper holds the request at the
store call that gives the session its new id -- ``move`` (or, before the
fix, the ``save(create=True)`` of the new id) -- until the test has run the
logout or the revocation, then lets it go. Each case runs on ``MemoryStore``
and real Redis, under the WSGI and the ASGI middlewares, and once through
Django's ``cycle_key()`` at a Django IdP.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from conftest import FakeClock, live_session_keys
from flow import (
    HTML,
    IDP,
    LOGIN,
    SHOP,
    Browser,
    Deployment,
    asgi_idp_app,
    async_twin,
    idp_app,
    remote_app,
)

from sessionshare import (
    MemoryStore,
    RemoteSessionMiddleware,
    SessionAdmin,
    SessionStore,
    SyncKey,
)
from sessionshare.store.amemory import AsyncMemoryStore

LOGOUT = "/_sessionshare/logout"
#: Store calls that give a session a new id: the move (and, in the code before it, the
#: creation of the new id's record).
MOVING = ("move", "save")


class Pause:
    """Holds the first store call that gives a session a new id, once armed."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.release = threading.Event()

    def catches(self, name: str, kwargs: dict[str, Any]) -> bool:
        if not self.armed or name not in MOVING or (name == "save" and not kwargs.get("create")):
            return False
        self.armed = False
        self.reached.set()
        return True


class PausingStore:
    """A thread store that holds the call :class:`Pause` catches until released."""

    def __init__(self, store: SessionStore, pause: Pause) -> None:
        self.store, self.pause = store, pause

    def _held(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.pause.catches(name, kwargs):
            assert self.pause.release.wait(30), "the test never released the request"
        return getattr(self.store, name)(*args, **kwargs)

    def save(self, *args: Any, **kwargs: Any) -> Any:
        return self._held("save", *args, **kwargs)

    def move(self, *args: Any, **kwargs: Any) -> Any:
        return self._held("move", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class AsyncPausingStore:
    """:class:`PausingStore` for an asyncio store: the held call waits off the loop."""

    def __init__(self, store: Any, pause: Pause) -> None:
        self.store, self.pause = store, pause

    async def _held(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.pause.catches(name, kwargs):
            released = await asyncio.to_thread(self.pause.release.wait, 30)
            assert released, "the test never released the request"
        return await getattr(self.store, name)(*args, **kwargs)

    async def load(self, *args: Any, **kwargs: Any) -> Any:
        return await self.store.load(*args, **kwargs)

    async def save(self, *args: Any, **kwargs: Any) -> Any:
        return await self._held("save", *args, **kwargs)

    async def move(self, *args: Any, **kwargs: Any) -> Any:
        return await self._held("move", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def wsgi_idp(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """flow's IdP, plus ``/regenerate`` and ``/remember`` for a signed-in user."""
    session = environ["sessionshare.session"]
    move = {"/regenerate": session.regenerate, "/remember": session.remember}
    if environ["PATH_INFO"] in move and session.get("user"):
        move[environ["PATH_INFO"]]()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"moved"]
    return idp_app(environ, start_response)


async def asgi_idp(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """:func:`wsgi_idp`'s ASGI twin."""
    session = scope["session"]
    move = {"/regenerate": session.regenerate, "/remember": session.remember}
    if scope["path"] in move and session.get("user"):
        move[scope["path"]]()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"moved"})
        return
    await asgi_idp_app(scope, receive, send)


@pytest.fixture
def pause() -> Iterator[Pause]:
    held = Pause()
    yield held
    held.release.set()  # never leave a request hanging, whatever failed


def deployment(store: SessionStore, clock: FakeClock, shell: str, pause: Pause) -> Deployment:
    if shell == "wsgi":
        return Deployment(PausingStore(store, pause), clock, idp=wsgi_idp)
    inner = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_twin(store)
    return Deployment(store, clock, shell="asgi", idp=asgi_idp,
                      async_store=AsyncPausingStore(inner, pause))


def in_flight(action: Callable[[], Any], pause: Pause) -> Callable[[], Any]:
    """Start ``action`` (a request) in a thread and wait until the store holds it; a
    function that lets it go and returns its response."""
    answers: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            answers.append(action())
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    pause.armed = True
    thread.start()
    assert pause.reached.wait(30), "the request never came to its move"

    def finish() -> Any:
        pause.release.set()
        thread.join(30)
        assert not thread.is_alive()
        if failures:
            raise failures[0]
        return answers[0]

    return finish


def end(how: str, browser: Browser, store: SessionStore, dep: Deployment) -> None:
    """Sign alice out in another tab (at the IdP, at the shop) or revoke all her sessions."""
    if how == "revoke_all":
        assert SessionAdmin(store, dep.key, clock=dep.clock).revoke_all("alice") >= 1
        return
    origin = IDP if how == "logout_idp" else SHOP
    answer = browser.post(origin + LOGOUT, headers={**HTML, "Origin": origin})
    assert answer.status_int == 303


def assert_no_new_session_cookie(response: Any) -> None:
    """The request answered signed out: its session cookie cleared, never set anew."""
    cookies = [v for k, v in response.headerlist
               if k == "Set-Cookie" and v.startswith("sessionshare=")]
    assert cookies and all("Max-Age=0" in v for v in cookies), cookies


def assert_signed_out_everywhere(browser: Browser, store: SessionStore, dep: Deployment) -> None:
    assert browser.get(IDP + "/").text == "idp home user=None"
    assert browser.get(SHOP + "/orders").status_int == 302  # sent to sign in again
    for key in live_session_keys(store):
        record = store.peek(key)
        assert record is None or record.fields.get("user") != json.dumps("alice"), (
            "alice's session lives on after she was signed out"
        )
    assert SessionAdmin(store, dep.key, clock=dep.clock).sessions("alice") == []


@pytest.mark.parametrize("ender", ["logout_idp", "logout_shop", "revoke_all"])
@pytest.mark.parametrize("mover", ["/regenerate", "/remember"])
def test_a_move_in_flight_does_not_outrun_a_logout(
    store: SessionStore, clock: FakeClock, shell: str, pause: Pause, mover: str, ender: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dep = deployment(store, clock, shell, pause)
    browser = Browser(dep)
    browser.sign_in_at(SHOP + "/orders")
    caplog.set_level("INFO", logger="sessionshare")
    finish = in_flight(lambda: browser.get(IDP + mover), pause)  # has read the session
    end(ender, browser, store, dep)  # meanwhile, in another tab (or by an operator)
    moved = finish()
    assert moved.status_int == 200
    assert_no_new_session_cookie(moved)
    assert "change_refused reason=ended" in caplog.text
    assert_signed_out_everywhere(browser, store, dep)


def test_a_sign_in_over_a_session_ended_meanwhile_signs_nobody_in(
    store: SessionStore, clock: FakeClock, shell: str, pause: Pause,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dep = deployment(store, clock, shell, pause)
    browser = Browser(dep)
    login_url = browser.start_login(SHOP + "/orders")
    browser.get(login_url)  # the pending hand-off is stored: a session to sign in over
    caplog.set_level("INFO", logger="sessionshare")
    finish = in_flight(
        lambda: browser.post(login_url, {"username": "alice", "password": "wonderland"}), pause
    )
    end("logout_idp", browser, store, dep)  # another tab signs out meanwhile
    signed_in = finish()
    assert signed_in.status_int == 200  # the app's own page: no hand-off goes on
    assert_no_new_session_cookie(signed_in)
    assert "change_refused reason=ended" in caplog.text
    assert_signed_out_everywhere(browser, store, dep)


def test_djangos_cycle_key_in_flight_does_not_outrun_a_logout(
    store: SessionStore, clock: FakeClock, pause: Pause, caplog: pytest.LogCaptureFixture
) -> None:
    from django.contrib.auth.models import User
    from test_contrib_django import Sites

    from sessionshare.contrib.django.wsgi import get_wsgi_application

    user, _ = User.objects.get_or_create(username="carol")
    user.set_password("secret")
    user.save()
    common = {"store": PausingStore(store, pause), "key": SyncKey.generate(),
              "cookie_secure": False, "clock": clock}
    sites = Sites({
        IDP: get_wsgi_application(app_url=IDP, known_remote_hosts=[SHOP], **common),
        SHOP: RemoteSessionMiddleware(remote_app, app_url=SHOP, idp_url=LOGIN, **common),
    })
    assert sites.sign_in_at(SHOP + "/orders", user="carol", password="secret").json[
        "user"] == "carol"
    caplog.set_level("INFO", logger="sessionshare")
    finish = in_flight(lambda: sites.get(IDP + "/cycle"), pause)
    answer = sites.post(IDP + LOGOUT, headers={**HTML, "Origin": IDP})  # another tab
    assert answer.status_int == 303
    cycled = finish()
    assert cycled.status_int == 200 and cycled.text == "cycled"
    assert_no_new_session_cookie(cycled)
    assert "change_refused reason=ended" in caplog.text
    assert sites.get(IDP + "/whoami").json["user"] is None
    assert sites.get(SHOP + "/orders").status_int == 302
    for key in live_session_keys(store):
        record = store.peek(key)
        assert record is None or record.fields.get("user") != json.dumps("carol")
