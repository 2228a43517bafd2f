"""An IdP and a remote served by real gunicorn processes on loopback.

:class:`ServedDeployment` starts two gunicorn masters (``gthread`` workers)
on free 127.0.0.1 ports -- the IdP and the shop -- configured only through
``SESSIONSHARE_*`` variables, and stops them (TERM, then KILL) when its
``with`` block ends. The test sees worker pids and resident memory read from
``/proc`` (Linux, like gunicorn itself), so it can tell a worker that was
restarted or that grows.

    with ServedDeployment(redis_url) as site:
        site.shop.port, site.idp.worker_pids(), site.shop.worker_rss()
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path

from servers import free_port, gunicorn_alone

from sessionshare import SyncKey
from sessionshare.core.lifecycle import Lifecycle
from sessionshare.core.remote import RemoteSide

from .site_app import LOG_PREFIX

#: The session cookie's name on the served apps (http: no __Host- prefix).
COOKIE = "sessionshare"

__all__ = ["GunicornServer", "ServedDeployment", "children_of", "rss_bytes"]

TESTS = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: the fields after its ')' are safe.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS in /proc/pid/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class GunicornServer:
    """One gunicorn master serving ``reliability.site_app:make(role)``."""

    def __init__(self, role: str, port: int, env: dict[str, str], *, workers: int,
                 threads: int, log_dir: str) -> None:
        self.role = role
        self.port = port
        self.env = env
        self.workers = workers
        self.threads = threads
        self.log_path = os.path.join(log_dir, f"{role}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._workers: list[int] = []  # the workers a stop found (reaped if orphaned)

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the master; :meth:`wait_ready` waits for its workers (apart, so that two
        servers can boot side by side: most of a start is the workers importing the app)."""
        args = [
            sys.executable, "-m", "gunicorn", f"reliability.site_app:make('{self.role}')",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
            "--worker-class", "gthread", "--threads", str(self.threads),
            "--keep-alive", "30", "--timeout", "30", "--graceful-timeout", "3",
            "--pythonpath", str(TESTS), "--error-logfile", self.log_path,
            "--log-level", "warning", "--capture-output", *gunicorn_alone(),
        ]
        self.process = subprocess.Popen(
            args, env={**os.environ, **self.env}, cwd=str(TESTS),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.role}) exited:\n{self.log_tail()}")
            if len(self.worker_pids()) == self.workers and self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn ({self.role}) did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        connection = HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/_sessionshare/logout")  # no store needed
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        return children_of(self.pid) if self.process is not None else []

    def worker_rss(self) -> dict[int, int]:
        return {pid: rss_bytes(pid) for pid in self.worker_pids()}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.terminate()
        self.reap()

    def terminate(self) -> None:
        """Ask the master to stop (its graceful shutdown); :meth:`reap` waits for it. Apart,
        so that two servers shut down side by side."""
        if self.process is None:
            return
        self._workers = self.worker_pids()
        if self.process.poll() is None:
            self.process.terminate()

    def reap(self) -> None:
        if self.process is None:
            return
        workers = self._workers or self.worker_pids()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in workers:  # a worker orphaned by a killed master
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None
        self._workers = []


class ServedDeployment:
    """The IdP and the shop under gunicorn, sharing ``store_url`` and one sync key."""

    def __init__(self, store_url: str, *, workers: int = 2, threads: int = 8) -> None:
        self.key = SyncKey.generate()
        self.log_dir = tempfile.mkdtemp(prefix="sessionshare-gunicorn-")
        idp_port, shop_port = free_port(), free_port()
        self.idp_origin = f"http://127.0.0.1:{idp_port}"
        self.shop_origin = f"http://127.0.0.1:{shop_port}"
        common = {
            "SESSIONSHARE_SYNC_KEY": self.key, "SESSIONSHARE_STORE_URL": store_url,
            "SESSIONSHARE_COOKIE_SECURE": "false",
        }
        self.idp = GunicornServer(
            "idp", idp_port, {
                **common, "SESSIONSHARE_APP_URL": self.idp_origin,
                "SESSIONSHARE_KNOWN_REMOTE_HOSTS": self.shop_origin,
            }, workers=workers, threads=threads, log_dir=self.log_dir,
        )
        self.shop = GunicornServer(
            "remote", shop_port, {
                **common, "SESSIONSHARE_APP_URL": self.shop_origin,
                "SESSIONSHARE_IDP_URL": self.idp_origin + "/login",
            }, workers=workers, threads=threads, log_dir=self.log_dir,
        )

    def lifecycle(self) -> Lifecycle:
        """The session rules the shop's workers use (to find a user's session in the store):
        its side, built from the options its variables give."""
        return RemoteSide(key=self.key, app_url=self.shop_origin,
                          idp_url=self.idp_origin + "/login", cookie_name=COOKIE,
                          cookie_secure=False, quiet_startup=True).lifecycle

    @property
    def servers(self) -> tuple[GunicornServer, GunicornServer]:
        return self.idp, self.shop

    def worker_pids(self) -> dict[str, list[int]]:
        return {server.role: server.worker_pids() for server in self.servers}

    def log_text(self) -> str:
        """Both servers' logs: gunicorn's warnings and the library's log lines."""
        return "\n".join(Path(server.log_path).read_text() for server in self.servers)

    def library_log(self) -> list[tuple[int, str]]:
        """``(level, message)`` of every ``sessionshare`` log line the workers wrote."""
        lines = []
        for line in self.log_text().splitlines():
            if line.startswith(LOG_PREFIX):
                level, _, message = line[len(LOG_PREFIX):].partition(" ")
                lines.append((logging.getLevelName(level), message))
        return lines

    def replay_library_log(self) -> None:
        """Pass the workers' log lines to this process's ``sessionshare`` logger.

        The suite-wide check in tests/conftest.py (no log line may hold a
        secret) then covers what the served workers logged too.
        """
        logger = logging.getLogger("sessionshare")
        for level, message in dict.fromkeys(self.library_log()):
            logger.log(level, "worker: %s", message)

    def __enter__(self) -> ServedDeployment:
        try:
            for server in self.servers:  # both boot at once, then each is waited for
                server.spawn()
            for server in self.servers:
                server.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.reap()
        try:
            self.replay_library_log()
        except OSError:
            pass  # a server that never started wrote no log
        shutil.rmtree(self.log_dir, ignore_errors=True)
