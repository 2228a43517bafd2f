"""The pytest plugin of :mod:`sessionshare.testing`: the ``sessionshare_sign_in`` fixtures.

Registered through the ``pytest11`` entry point when sessionshare is
installed. It only offers fixtures -- a test asks for one by name -- and
changes nothing for tests that do not::

    def test_orders(sessionshare_sign_in, client):
        sessionshare_sign_in(client, app.wsgi_app, "alice", cart=[3])

    async def test_news(sessionshare_sign_in_async, client):  # an httpx.AsyncClient
        await sessionshare_sign_in_async(client, news_app, "alice")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from .testing import sign_in, sign_in_async

__all__ = ["sessionshare_sign_in", "sessionshare_sign_in_async"]


@pytest.fixture
def sessionshare_sign_in() -> Callable[..., None]:
    """:func:`sessionshare.testing.sign_in`: ``(client, middleware, user, **data)``."""
    return sign_in


@pytest.fixture
def sessionshare_sign_in_async() -> Callable[..., Awaitable[None]]:
    """:func:`sessionshare.testing.sign_in_async`: ``await (client, middleware, user, **data)``."""
    return sign_in_async
