"""The estate, served as in production: three https sites under real-looking names, on loopback.

=========================================  ============================================
``https://id.example.test:<port>``         the IdP, gunicorn (gthread), TLS by gunicorn
``https://shop.example.test:<port>``       a remote, gunicorn (gthread), TLS by gunicorn
``https://news.example.test:<port>/news``  a remote, uvicorn ``--root-path /news``
                                           behind a TLS proxy that strips ``/news``
``https://evil.example.test:<port>``       a sibling subdomain's page (no app)
=========================================  ============================================

Every name resolves to 127.0.0.1 (in Chromium, through
``--host-resolver-rules``: :attr:`Estate.host_rules`); every port is
picked free at run time; every certificate comes from a CA made for this run
(tests/production/pki.py). The apps (tests/production/sites.py) share one
sync key and the suite's Redis, and read their settings from ``SESSIONSHARE_*``
variables. The IdP's allow-list names the shop by host and port (https) and
the news site by its exact callback URL, under the prefix.

:class:`Estate` starts the servers at once and waits (bounded) until each
answers over TLS with a verified certificate; leaving the ``with`` block
stops them (TERM, then KILL; gunicorn's workers too) and the fronts, and
passes the library's log lines of every server to this process's logger, so
the suite-wide scan for secrets covers them.

    with Estate(redis_url, tmp_path) as estate:
        estate.urls["news"]  # https://news.example.test:40123/news
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from reliability.served import children_of
from servers import free_port, gunicorn_alone

from sessionshare import SyncKey

from .front import PrefixProxy, StaticSite
from .pki import LocalCA
from .sites import LOG_PREFIX, SOCKET_SCRIPT

__all__ = ["HOSTS", "NEWS_PREFIX", "Estate", "Server"]

TESTS = Path(__file__).resolve().parent.parent
HOSTS = {"idp": "id.example.test", "shop": "shop.example.test",
         "news": "news.example.test", "sibling": "evil.example.test"}
NEWS_PREFIX = "/news"
#: Seconds the servers may take to answer, all of them together (a loaded CI machine).
START_TIMEOUT = 45.0


class Server:
    """One server process (gunicorn or uvicorn) writing its log to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path,
                 *, host: str, port: int, probe_path: str,
                 client_context: ssl.SSLContext) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.host = host
        self.port = port
        self.probe_path = probe_path
        self.client_context = client_context
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[int] = []

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, env={**os.environ, **self.env}, cwd=str(TESTS),
                stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, deadline: float) -> None:
        """Until the server answers its probe path with 200 over verified TLS."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                status, _ = https_get(self.client_context, self.host, self.port,
                                      self.probe_path, timeout=2)
                if status == 200:
                    self.workers = children_of(self.process.pid)
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    def stop(self) -> None:
        """TERM, then KILL after a few seconds; a worker a killed master left goes too."""
        if self.process is None:
            return
        workers = set(self.workers) | set(children_of(self.process.pid))
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to 127.0.0.1 that checks the certificate of ``host``."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def https_get(context: ssl.SSLContext, host: str, port: int, path: str, *,
              timeout: float = 10) -> tuple[int, bytes]:
    """``GET https://host:port/path`` sent to 127.0.0.1, the certificate checked."""
    connection = _LoopbackHTTPS(host, port, context=context, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "text/html"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def sibling_page(news_url: str) -> str:
    """The sibling subdomain's page: it opens the news site's websockets as the user's
    browser would let it, and shows what came of each."""
    live = news_url.replace("https://", "wss://") + "/live"
    public = news_url.replace("https://", "wss://") + "/public-live"
    return (
        "<!doctype html><meta charset=utf-8><title>A sibling's page</title>"
        "<p>protected: <span id=protected>connecting</span></p>"
        "<p>public: <span id=public>connecting</span></p>"
        f"<script>{SOCKET_SCRIPT}\nopenSocket({live!r}, 'protected');\n"
        f"openSocket({public!r}, 'public');</script>"
    )


class Estate:
    """The IdP, the shop and the news site served over TLS, and a sibling's page."""

    def __init__(self, redis_url: str, directory: Path) -> None:
        self.directory = directory
        self.ca = LocalCA(directory)
        self.client_context = self.ca.client_context()
        ports = {"idp": free_port(), "shop": free_port(), "news-upstream": free_port()}
        self.proxy = PrefixProxy(self.ca.server_context(HOSTS["news"]), prefix=NEWS_PREFIX,
                                 upstream_port=ports["news-upstream"])
        origins = {
            "idp": f"https://{HOSTS['idp']}:{ports['idp']}",
            "shop": f"https://{HOSTS['shop']}:{ports['shop']}",
            "news": f"https://{HOSTS['news']}:{self.proxy.port}",
        }
        #: Where a browser finds each site (the news site's under its prefix).
        self.urls = {**origins, "news": origins["news"] + NEWS_PREFIX}
        self.sibling = StaticSite(self.ca.server_context(HOSTS["sibling"]),
                                  {"/": sibling_page(self.urls["news"])})
        self.urls["sibling"] = f"https://{HOSTS['sibling']}:{self.sibling.port}"
        common = {
            "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
            "SESSIONSHARE_STORE_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
        idp_cert, idp_key = self.ca.issue(HOSTS["idp"])
        shop_cert, shop_key = self.ca.issue(HOSTS["shop"])

        def gunicorn(name: str, factory: str, cert: Path, key: Path) -> list[str]:
            return [
                sys.executable, "-m", "gunicorn", factory,
                "--bind", f"127.0.0.1:{ports[name]}", "--certfile", str(cert),
                "--keyfile", str(key), "--workers", "1", "--worker-class", "gthread",
                "--threads", "8", "--timeout", "30", "--graceful-timeout", "3",
                "--pythonpath", str(TESTS), "--error-logfile", "-",
                "--capture-output", "--log-level", "warning", *gunicorn_alone(),
            ]

        self.servers = [
            Server("idp", gunicorn("idp", "production.sites:idp()", idp_cert, idp_key), {
                **common, "SESSIONSHARE_APP_URL": origins["idp"],
                # The shop by host and port (https only); the news site by its exact
                # callback URL, under the prefix the proxy serves it at.
                "SESSIONSHARE_KNOWN_REMOTE_HOSTS": (
                    f"{HOSTS['shop']}:{ports['shop']}, "
                    f"{self.urls['news']}/_sessionshare/callback"
                ),
            }, directory / "idp.log", host=HOSTS["idp"], port=ports["idp"],
                probe_path="/_sessionshare/logout", client_context=self.client_context),
            Server("shop", gunicorn("shop", "production.sites:shop()", shop_cert, shop_key), {
                **common, "SESSIONSHARE_APP_URL": origins["shop"],
                "SESSIONSHARE_IDP_URL": origins["idp"] + "/login",
            }, directory / "shop.log", host=HOSTS["shop"], port=ports["shop"],
                probe_path="/_sessionshare/logout", client_context=self.client_context),
            Server("news", [
                sys.executable, "-m", "uvicorn", "production.sites:news", "--factory",
                "--host", "127.0.0.1", "--port", str(ports["news-upstream"]),
                "--root-path", NEWS_PREFIX, "--proxy-headers",
                "--forwarded-allow-ips", "127.0.0.1", "--app-dir", str(TESTS),
                "--lifespan", "on", "--log-level", "warning",
                "--timeout-graceful-shutdown", "3",
            ], {
                **common, "SESSIONSHARE_APP_URL": origins["news"],
                "SESSIONSHARE_IDP_URL": origins["idp"] + "/login",
            }, directory / "news.log", host=HOSTS["news"], port=self.proxy.port,
                probe_path=NEWS_PREFIX + "/_sessionshare/logout",
                client_context=self.client_context),
        ]

    #: Chromium's ``--host-resolver-rules``: every name of the estate is 127.0.0.1.
    host_rules = "MAP *.example.test 127.0.0.1"

    @property
    def chromium_flags(self) -> list[str]:
        """Chromium's switch that accepts the estate's certificates (and only them)."""
        return [f"--ignore-certificate-errors-spki-list={self.ca.spki_hashes()}"]

    def library_log(self) -> list[tuple[str, int, str]]:
        """``(server, level, message)`` of every ``sessionshare`` log line the servers wrote."""
        lines = []
        for server in self.servers:
            for line in server.log_text().splitlines():
                if line.startswith(LOG_PREFIX):
                    level, _, message = line[len(LOG_PREFIX):].partition(" ")
                    lines.append((server.name, logging.getLevelName(level), message))
        return lines

    def __enter__(self) -> Estate:
        try:
            self.proxy.start()
            self.sibling.start()
            for server in self.servers:
                server.start()
            deadline = time.monotonic() + START_TIMEOUT
            for server in self.servers:
                server.wait_ready(deadline)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for server in self.servers:
                server.stop()
        finally:
            self.proxy.stop()
            self.sibling.stop()
        # The suite-wide check (tests/conftest.py: no log line may hold a secret) covers
        # what the servers logged too.
        logger = logging.getLogger("sessionshare")
        for name, level, message in dict.fromkeys(self.library_log()):
            logger.log(level, "%s: %s", name, message)
