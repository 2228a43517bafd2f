"""Shared fixtures: a real Redis server, an injectable clock, stores and three apps.

The Redis server is started once per test session on a free loopback port
and flushed before each test that uses it. Tests that need their own server
(stop/restart) start one with :class:`servers.RedisServer`.

In CI (``SESSIONSHARE_NO_SKIP=1``) a skipped test fails the run: every test
in this suite is meant to run there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import RedisServer  # noqa: E402

from sessionshare import MemoryStore, RedisStore, SessionStore  # noqa: E402


class FakeClock:
    """A clock tests move by hand: expiry without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[SessionStore]:
    """Each test using it runs against MemoryStore and against real Redis."""
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    redis_store = RedisStore.from_url(url)
    yield redis_store
    redis_store.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("SESSIONSHARE_NO_SKIP") and terminalreporter.stats.get("skipped"):
        count = len(terminalreporter.stats["skipped"])
        terminalreporter.write_line(
            f"SESSIONSHARE_NO_SKIP: {count} test(s) skipped; every test must run here", red=True
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if (
        os.environ.get("SESSIONSHARE_NO_SKIP")
        and reporter is not None
        and reporter.stats.get("skipped")
        and exitstatus == 0
    ):
        session.exitstatus = 1
