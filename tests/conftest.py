"""Shared fixtures: a real Redis server, an injectable clock, stores and three apps.

The Redis server is started once per test session on a free loopback port
and flushed before each test that uses it. Tests that need their own server
(stop/restart) start one with :class:`servers.RedisServer`.

In CI (``SESSIONSHARE_NO_SKIP=1``) a skipped test fails the run: every test
in this suite is meant to run there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import RedisServer  # noqa: E402

from sessionshare import MemoryStore, RedisStore, SessionStore  # noqa: E402
from sessionshare.core.events import FIELDS_ATTR  # noqa: E402
from sessionshare.core.record import META_RETIRED  # noqa: E402
from sessionshare.store.base import SessionRecord  # noqa: E402


def is_dead(record: SessionRecord | None) -> bool:
    """True when a store record is no live session: absent, or an id a sign-in or
    ``regenerate()`` just moved -- kept a few seconds as a marker with no data
    (issue 16, finding 12)."""
    return record is None or META_RETIRED in record.meta


def live_session_keys(store: SessionStore, prefix: str = "sessionshare:") -> list[str]:
    """The keys of the live sessions ``store`` holds (retired markers left out)."""
    if isinstance(store, MemoryStore):
        keys = list(store.sessions())
    else:
        client = store.client  # type: ignore[attr-defined]
        keys = [k.decode() if isinstance(k, bytes) else k
                for k in client.scan_iter(match=prefix + "s:*")]
    return [key for key in keys if not is_dead(store.load(key, 60))]


def genuine_cookie(middleware: Any) -> str:
    """A ``Cookie`` header value the middleware accepts as its own session cookie, naming a
    session no store holds (its reads then go to the store, and find nothing)."""
    lifecycle = middleware.side.lifecycle
    return f"{lifecycle.cookie.name}={lifecycle.cookie_value(lifecycle.ids.new())}"


class FakeClock:
    """A clock tests move by hand: expiry without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def issuing(key: str, value: str, ttl: int) -> tuple[str, tuple[str], int, tuple[str, str, int]]:
    """``claim_state``'s arguments that store the ticket ``key`` -> ``value`` for ``ttl``
    seconds, as an IdP issues one: with a login state's claim of its own, in the ticket's
    hash slot (a cluster runs both in one script).

        store.claim_state(*issuing("t:alice", "alice-wrapped", 600))
    """
    claim = f"{key}:claim" if re.search(r"{[^}]+}", key) else f"{{{key}}}:claim"
    return claim, ("tests",), ttl, (key, value, ttl)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        # An event's fields (what on_event and the JSON formatter get) are checked too.
        fields = getattr(record, FIELDS_ATTR, None)
        if fields:
            self.messages.append(json.dumps(fields, default=str))


# Session ids and keys are 43 base64url characters, tokens 200 or more, ticket
# digests 64 hex: no log line of the library may hold such a run.
_SECRET_SHAPED = re.compile(r"[A-Za-z0-9_-]{32,}")


def looks_secret(text: str) -> bool:
    """True when ``text`` holds a run shaped like a session id, key, token or digest: the
    suite-wide scanner's rule, for tests that check other outputs (event fields) with it."""
    return _SECRET_SHAPED.search(text) is not None


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_secrets() -> Iterator[None]:
    """Every ``sessionshare`` log record of the whole run is checked at the end."""
    logger = logging.getLogger("sessionshare")
    collector = _LogCollector()
    previous = logger.level
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(collector)
    logger.setLevel(previous)
    leaks = [m for m in collector.messages if _SECRET_SHAPED.search(m)]
    assert not leaks, f"log lines that look like they hold a secret: {leaks[:5]}"


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


@pytest.fixture(params=["wsgi", "asgi"])
def shell(request: pytest.FixtureRequest) -> str:
    """Each test using it runs against the WSGI and the ASGI middlewares (tests/flow.py)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _close_async_stores() -> Iterator[None]:
    yield
    import flow

    flow.close_async_stores()


@pytest.fixture
def every_write_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """REPLACE for a write of a session just read at any size (it is kept for records of
    ``REPLACE_FROM`` bytes and more, and the tests' sessions are small)."""
    from sessionshare.store import redisproto

    monkeypatch.setattr(redisproto, "REPLACE_FROM", 0)


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


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a cancelled CI job, ``timeout``, ``kill``) ends the run as Ctrl-C does.

    Its default action ended pytest at once, with no fixture teardown: every server the
    run had started -- redis-server, gunicorn's masters and workers -- lived on. As an
    interrupt, pytest tears the fixtures down, and each stops what it started. A second
    SIGTERM ends the run at once, as before.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.stderr.write("\nSIGTERM: stopping the test run and the servers it started\n")
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Django's settings can be made once per process: the suite's one set, before any
    # test module (or the demo's forum) imports Django (see tests/django_site.py).
    import django_site

    django_site.configure()


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
