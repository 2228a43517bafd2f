"""Fixtures of the security suite (see deploy.py for the deployment they build).

Everything that touches a store runs against MemoryStore and real Redis
(the ``store`` fixture of tests/conftest.py), and every deployment against
the WSGI and the ASGI middlewares (the ``shell`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flow import Deployment

from sessionshare import SessionStore

from . import profiles  # noqa: F401  (registers the hypothesis profiles)
from .deploy import Events, security_deployment


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Events:
    return Events(caplog)


@pytest.fixture
def dep(store: SessionStore, clock: Callable[[], float], shell: str) -> Deployment:
    return security_deployment(store, clock, shell=shell)


@pytest.fixture
def strict_dep(store: SessionStore, clock: Callable[[], float], shell: str) -> Deployment:
    return security_deployment(store, clock, shell=shell, strict=True)
