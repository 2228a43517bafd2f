"""The security suite's deployment: tests/flow.py's three apps with a wider allow-list.

IdP ``http://id.test``, remotes ``http://shop.test`` (protects ``/orders``,
``/read``, ``/write``) and ``http://blog.test`` (protects everything), and
the allow-list of :data:`security.corpus.ALLOWED`, which adds an https host
and a wildcard so that the wildcard and scheme bypasses have something to
aim at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flow import CALLBACK, IDP, LOGIN, PASSWORDS, Browser, Deployment

from sessionshare import SessionStore

from .corpus import ALLOWED
from .harness import is_same_origin_location, login_prefix

__all__ = [
    "STATE",
    "Events",
    "assert_idp_own_answer",
    "remote_login_prefix",
    "security_deployment",
    "sign_in_at_idp",
]

#: A valid state as the remote makes them (43 base64url characters).
STATE = "S" * 21 + "t" * 22


class Events:
    """The ``sessionshare`` log events of one test (``ticket_issued``, ``callback_rejected``...)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.INFO, logger="sessionshare")

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records if r.name == "sessionshare"]

    def count(self, event: str) -> int:
        return sum(1 for m in self.messages if m.split(" ", 1)[0] == event)

    def clear(self) -> None:
        self._caplog.clear()


def security_deployment(
    store: SessionStore, clock: Callable[[], float], shell: str = "wsgi", **idp_options: Any
) -> Deployment:
    return Deployment(store, clock, idp_options={"known_remote_hosts": ALLOWED, **idp_options},
                      shell=shell)


def remote_login_prefix(remote_origin: str) -> str:
    return login_prefix(LOGIN, remote_origin, CALLBACK)


def sign_in_at_idp(browser: Browser, user: str = "alice") -> None:
    """Sign in at the IdP directly (no hand-off pending)."""
    page = browser.get(LOGIN)
    assert page.status_int == 200 and "login form" in page.text
    done = browser.post(LOGIN, {"username": user, "password": PASSWORDS[user]})
    assert_idp_own_answer(done, user)
    assert browser.get(IDP + "/").text == f"idp home user={user}"


def assert_idp_own_answer(response: Any, user: str) -> None:
    """The IdP app's own answer to a successful login: its page, or a redirect home."""
    if response.status_int == 200:
        assert f"signed in as {user}" in response.text, response
        assert "Location" not in response.headers, response
    else:
        assert response.status_int in (302, 303), response
        assert is_same_origin_location(response.location, IDP), response
        assert "token=" not in response.location, response
