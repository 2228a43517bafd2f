"""``python -m sessionshare demo``: started as a user would, driven over HTTP, stopped with Ctrl-C.

The demo runs in a subprocess on three consecutive free loopback ports
(``--port``). The HTTP client is urllib with one cookie jar, as a browser
keeps cookies per host: it sends requests for ``*.localhost`` names to
127.0.0.1 (what browsers do) with the name in the Host header and the URL.
"""

from __future__ import annotations

import http.client
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from sessionshare.demo import site_urls

REPO = Path(__file__).resolve().parent.parent


class _LoopbackConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)


class _LoopbackHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_LoopbackConnection, req)


def browser_like_opener() -> urllib.request.OpenerDirector:
    """Follows redirects, keeps cookies per host, asks for HTML like a page load."""
    opener = urllib.request.build_opener(
        _LoopbackHandler, urllib.request.HTTPCookieProcessor(CookieJar())
    )
    opener.addheaders = [("Accept", "text/html")]
    return opener


def free_port_run(count: int = 3) -> int:
    """The first of ``count`` consecutive ports that are free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            held = []
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no run of free ports found")


class DemoProcess:
    """The demo in a subprocess; a thread collects its output, so no read can hang the test."""

    def __init__(self, *args: str) -> None:
        self.port = free_port_run()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sessionshare", "demo", "--port", str(self.port), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def banner(self, timeout: float = 60.0) -> str:
        """The output up to the "Press Ctrl-C" line (fails if the demo exits or stalls)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError("the demo did not come up:\n" + "\n".join(self.output))
            self.output.append(line)
            if line.startswith("Press Ctrl-C"):
                return "\n".join(self.output)

    def stop(self, signum: int = signal.SIGINT) -> str:
        """Ctrl-C (or another signal); asserts a clean exit and returns the whole output."""
        self.process.send_signal(signum)
        returncode = self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        while (line := self.lines.get(timeout=5)) is not None:
            self.output.append(line)
        output = "\n".join(self.output)
        assert returncode == 0, output
        assert "Traceback" not in output
        assert output.rstrip().endswith("sessionshare demo stopped."), output
        return output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def running_demo(*args: str) -> Iterator[DemoProcess]:
    demo = DemoProcess(*args)
    try:
        yield demo
    finally:
        demo.kill()


def fetch(
    opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None
) -> tuple[str, str]:
    """GET (or POST ``data``), following redirects; the final URL and the page."""
    body = None if data is None else urlencode(data).encode()
    with opener.open(url, data=body, timeout=30) as response:
        assert response.status == 200
        return str(response.geturl()), response.read().decode()


def sign_in_through_the_demo(urls: dict[str, str]) -> None:
    """Shop -> IdP form -> shop, then the blog without a form: the README walkthrough."""
    browser = browser_like_opener()
    at, page = fetch(browser, urls["shop"] + "/orders")
    assert at.startswith(urls["idp"] + "/login?callback=")
    csrf = re.search(r'name=csrf value="([^"]+)"', page)
    assert csrf is not None, page
    at, page = fetch(browser, at, {"csrf": csrf.group(1), "username": "alice",
                                   "password": "wonderland"})
    assert at == urls["shop"] + "/orders"
    assert "<b id=user>alice</b>" in page
    at, page = fetch(browser, urls["blog"] + "/")
    assert at == urls["blog"] + "/"
    assert "<b id=user>alice</b>" in page and "password" not in page


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_serves_a_shared_login_and_stops_cleanly(signum: int) -> None:
    with running_demo() as demo:
        text = demo.banner()
        urls = site_urls(demo.port)
        for url in urls.values():
            assert url in text
        assert "store: in-memory" in text
        assert "cookie_secure=False" in text and "plain http" in text
        sign_in_through_the_demo(urls)
        demo.stop(signum)


def test_demo_keeps_its_sessions_in_redis_when_asked(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with running_demo("--redis", redis_url) as demo:
        assert "store: Redis at " + redis_url in demo.banner()
        sign_in_through_the_demo(site_urls(demo.port))
        keys = client.keys("*")
        assert keys and all(key.startswith(b"sessionshare-demo:") for key in keys)
        demo.stop()
    client.close()


def test_demo_refuses_a_port_in_use_with_a_clear_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sessionshare", "demo", "--port", str(port)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr
