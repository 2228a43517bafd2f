"""Driving the protocol's sides by hand: a request in, store steps run, an answer out.

What every shell does, with no server interface at all -- so a decision of the
core can be tested where it is made, at the cost of a function call. Used by
the core's own tests (``test_core_handoff.py``) and by the corpora that test
one decision against hundreds of inputs (``security/test_callback_corpus.py``).

    browser = CoreBrowser({IDP, SHOP})
    answer = visit(lambda steps: run(steps, store), idp,
                   browser.request(IDP, "GET", "/login?callback=...&state=..."))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import PassThrough, Side
from sessionshare.core.steps import Steps
from sessionshare.store.base import SessionRecord

__all__ = ["NAVIGATE", "CoreBrowser", "Drive", "no_io", "visit"]

#: The headers of a browser's page load.
NAVIGATE = {"accept": "text/html", "fetch_mode": "navigate"}

#: Runs a side's store steps to their result (on a thread store, or an asyncio one).
Drive = Callable[[Steps[Any]], Any]


def no_io(sid: str) -> SessionRecord | None:
    raise AssertionError("a side reads the session through its steps, never behind them")


class CoreBrowser:
    """Cookies per origin, as a browser keeps them; requests built for the sides."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.jars: dict[str, dict[str, str]] = {origin: {} for origin in origins}

    def request(self, origin: str, method: str, target: str, **headers: Any) -> Request:
        path, _, query = target.partition("?")
        cookies = "; ".join(f"{k}={v}" for k, v in self.jars[origin].items())
        return Request(method=method, path=path, query=query, cookies=cookies, **headers)

    def keep(self, origin: str, headers: Any) -> None:
        for name, value in headers:
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if "Max-Age=0" in value:
                    self.jars[origin].pop(key, None)
                else:
                    self.jars[origin][key] = val


def visit(drive: Drive, side: Side, request: Request,
          app: Callable[[Session], None] | None = None) -> Reply | tuple[PassThrough, Any]:
    """One request through a side: on the way in, the app, on the way out.

    The library's own answer (a :class:`Reply`), or the pass-through and the
    headers the side added to the app's answer.
    """
    session = Session(no_io, side.lifecycle.session_id_in(request.cookies))
    outcome = side.on_request(request, session)
    if not isinstance(outcome, (Reply, PassThrough)):
        outcome = drive(outcome)
    if isinstance(outcome, Reply):
        return outcome
    if app is not None:
        drive(side.lifecycle.load(session))  # the app reads: a shell loads it first
        app(session)
    answer = side.on_response(request, session, outcome, [])
    if not isinstance(answer, (Reply, list)):
        answer = drive(answer)
    return answer if isinstance(answer, Reply) else (outcome, answer)
