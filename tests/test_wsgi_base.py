"""sessionshare.wsgi.base: the WSGI shell's per-request loop, which decides nothing itself.

What the shell must do -- publish ``REMOTE_USER``, send a side's reply as it is
(``HEAD`` without a body), call ``on_response`` on the way out, answer an
outage with the side's 503 -- checked with a side whose decisions are
scripted here, so a test fails if the shell adds or drops a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import webtest
from conftest import FakeClock, issuing

from sessionshare import MemoryStore, RemoteSessionMiddleware, StoreUnavailable, SyncKey
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import Outcome, PassThrough
from sessionshare.core.steps import Steps, TakeTicket
from sessionshare.wsgi.base import SessionMiddleware


class ScriptedSide(RemoteSide):
    """A remote side whose answer to each path is set by the test."""

    answers: dict[str, Any] = {}

    def on_request(self, request: Request, session: Session) -> Outcome:
        answer = self.answers[request.path]
        return answer(request, session) if callable(answer) else answer


class Shell(SessionMiddleware):
    _role = "remote"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"user={environ.get('REMOTE_USER')}".encode()]


def _shell(clock: FakeClock, store: Any = None) -> tuple[Shell, ScriptedSide]:
    side = ScriptedSide(key=SyncKey.generate(), app_url="http://shop.test",
                        idp_url="http://id.test/login", cookie_secure=False, clock=clock)
    return Shell(app, store=store or MemoryStore(clock=clock), side=side), side


def test_a_reply_is_sent_as_the_side_made_it(clock: FakeClock) -> None:
    shell, side = _shell(clock)
    side.answers = {"/r": Reply.redirect("/elsewhere", status=302, headers=[("X-A", "1")])}
    client = webtest.TestApp(shell)
    page = client.get("/r", status="*")
    assert page.status_int == 302 and page.headers["Location"] == "/elsewhere"
    assert page.headers["X-A"] == "1"
    head = client.head("/r", status="*")
    assert head.status_int == 302 and head.body == b"" and head.headers["X-A"] == "1"


def test_pass_through_publishes_the_user_as_text(clock: FakeClock) -> None:
    shell, side = _shell(clock)
    side.answers = {"/u": PassThrough("alice", True), "/j": PassThrough({"id": 7}, True),
                    "/anon": PassThrough()}
    client = webtest.TestApp(shell)
    assert client.get("/u").text == "user=alice"
    assert client.get("/j").text == 'user={"id": 7}'
    assert client.get("/anon").text == "user=None"


def test_steps_are_driven_on_the_store_before_the_answer(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    store.claim_state(*issuing("t", "value", 60))
    seen: list[object] = []

    def take(request: Request, session: Session) -> Steps[Reply]:
        seen.append((yield TakeTicket("t")))
        return Reply.error(403, "replayed", "no", as_json=True)

    shell, side = _shell(clock, store)
    side.answers = {"/t": take}
    assert webtest.TestApp(shell).get("/t", status="*").status_int == 403
    assert seen == ["value"] and store.take_ticket("t") is None


def test_a_store_outage_is_the_sides_503(clock: FakeClock) -> None:
    def down(request: Request, session: Session) -> Steps[Reply]:
        raise StoreUnavailable("redis: ConnectionError")
        yield  # a step all the same  # noqa: B901

    shell, side = _shell(clock)
    side.answers = {"/d": down}
    page = webtest.TestApp(shell).get("/d", headers={"Accept": "text/html"}, status="*")
    assert page.status_int == 503 and page.headers["Retry-After"]


def test_the_remote_middleware_is_this_shell_around_a_remote_side(clock: FakeClock) -> None:
    middleware = RemoteSessionMiddleware(
        app, store=MemoryStore(clock=clock), key=SyncKey.generate(), app_url="http://shop.test",
        idp_url="http://id.test/login", cookie_secure=False, clock=clock,
    )
    assert isinstance(middleware, SessionMiddleware) and isinstance(middleware.side, RemoteSide)
    assert type(middleware).__call__ is SessionMiddleware.__call__  # no loop of its own
