"""Fixtures of the reliability suite: a Redis Cluster, a Sentinel group, stores over them.

- ``redis_cluster``: one 3-master :class:`~reliability.topologies.LocalCluster`
  for the whole test session (it takes a few seconds to form);
- ``cluster_store``: a ``RedisStore`` over a ``RedisCluster`` client, the
  cluster flushed first. ``test_cluster.py`` re-runs the generic store,
  session and hand-off tests with it in place of the ``store`` fixture;
- ``sentinel_group``: a fresh master + replica + sentinel for one test (a
  failover changes it for good).

Figures the tests measure are printed (``-s`` shows them) and appended to
``tests/artifacts/reliability.txt`` by :func:`reliability.figures.report`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionshare import RedisStore

from .topologies import LocalCluster, SentinelGroup


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
