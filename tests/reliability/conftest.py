"""Fixtures of the reliability suite: a Redis Cluster, a Sentinel group, stores over them.

- ``redis_cluster``: one 3-master :class:`~reliability.topologies.LocalCluster`
  for the whole test session (it takes a few seconds to form);
- ``cluster_store``: a ``RedisStore`` over a ``RedisCluster`` client, the
  cluster flushed first. ``test_cluster.py`` re-runs the generic store,
  session and hand-off tests with it in place of the ``store`` fixture;
- ``sentinel_group``: a fresh master + replica + sentinel for one test (a
  failover changes it for good).

Figures the tests measure are printed (``-s`` shows them) and appended to
``tests/artifacts/reliability.txt`` by :func:`report`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionshare import RedisStore

from .topologies import LocalCluster, SentinelGroup

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def report(title: str, figures: dict[str, object]) -> None:
    """Print a test's measured figures and keep them in tests/artifacts/reliability.txt."""
    line = f"{title}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[reliability] {line}")
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "reliability.txt", "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture
def cluster_store(redis_cluster: LocalCluster) -> Iterator[RedisStore]:
    redis_cluster.flushall()
    store = RedisStore(redis_cluster.client())
    yield store
    store.close()


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group
