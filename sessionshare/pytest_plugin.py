"""The pytest plugin of :mod:`sessionshare.testing`: the ``sessionshare_sign_in`` fixture.

Registered through the ``pytest11`` entry point when sessionshare is
installed. It only offers a fixture -- a test asks for it by name -- and
changes nothing for tests that do not::

    def test_orders(sessionshare_sign_in, client):
        sessionshare_sign_in(client, app.wsgi_app, "alice", cart=[3])
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .testing import sign_in

__all__ = ["sessionshare_sign_in"]


@pytest.fixture
def sessionshare_sign_in() -> Callable[..., None]:
    """:func:`sessionshare.testing.sign_in`: ``(client, middleware, user, **data)``."""
    return sign_in
