"""``python -m sessionshare demo``: started as a user would, driven over HTTP, stopped with Ctrl-C.

The demo runs in a subprocess on four consecutive free loopback ports
(``--port``). The HTTP client is urllib with one cookie jar, as a browser
keeps cookies per host: it sends requests for ``*.localhost`` names to
127.0.0.1 (what browsers do) with the name in the Host header and the URL.
"""

from __future__ import annotations

import ast
import email.message
import http.client
import importlib.metadata
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client.parser import text_string_to_metric_families

from sessionshare import RedisStore, SessionAdmin, SyncKey
from sessionshare.demo import AccessLog, listen, site_urls
from sessionshare.demo.timeline import redact_target

REPO = Path(__file__).resolve().parent.parent


class _LoopbackConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)


class _LoopbackHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_LoopbackConnection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is then an HTTPError the test sees


def browser_like_opener(
    jar: CookieJar | None = None, *, follow: bool = True
) -> urllib.request.OpenerDirector:
    """Follows redirects (unless not ``follow``), keeps cookies per host (in ``jar``, if
    given), asks for HTML like a page load -- and says so, as a browser's fetch metadata
    does (a client that says nothing and holds no cookie is never bounced passively)."""
    handlers: list[urllib.request.BaseHandler] = [
        _LoopbackHandler, urllib.request.HTTPCookieProcessor(CookieJar() if jar is None else jar)
    ]
    if not follow:
        handlers.append(_NoRedirects())
    opener = urllib.request.build_opener(*handlers)
    opener.addheaders = [("Accept", "text/html"), ("Sec-Fetch-Mode", "navigate")]
    return opener


def free_port_run(count: int = 5) -> int:
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


def listening_run(count: int) -> list[socket.socket]:
    """``count`` sockets listening on consecutive ports of 127.0.0.1, bound at once.

    For servers started in this process: no gap between finding the ports and
    binding them, where another process on the machine could take one.
    """
    for _ in range(50):
        first = free_port_run(count)
        bound: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                bound.append(listen("127.0.0.1", port))
            return bound
        except OSError:
            for sock in bound:
                sock.close()
    raise RuntimeError("no run of free ports could be bound")


class DemoProcess:
    """The demo in a subprocess; a thread collects its output, so no read can hang the test."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port_run()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sessionshare", "demo", "--port", str(self.port), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=None if env is None else {**os.environ, **env},
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
def running_demo(*args: str, env: dict[str, str] | None = None) -> Iterator[DemoProcess]:
    demo = DemoProcess(*args, env=env)
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


def sign_in_through_the_demo(urls: dict[str, str]) -> tuple[urllib.request.OpenerDirector, str]:
    """Shop -> IdP form -> shop (a teapot into the cart), then the blog and the news site
    (FastAPI under uvicorn) without a form: the README walkthrough.

    The browser and the blog's page.
    """
    browser = browser_like_opener()
    at, page = fetch(browser, urls["shop"] + "/orders")
    assert at.startswith(urls["idp"] + "/login?callback=")
    csrf = re.search(r'name=csrf value="([^"]+)"', page)
    assert csrf is not None, page
    at, page = fetch(browser, at, {"csrf": csrf.group(1), "username": "alice",
                                   "password": "wonderland"})
    assert at == urls["shop"] + "/orders"
    assert "<b id=user>alice</b>" in page
    csrf = re.search(r'name=csrf_token value="([^"]+)"', page)
    assert csrf is not None, page
    at, page = fetch(browser, urls["shop"] + "/orders",
                     {"csrf_token": csrf.group(1), "item": "teapot"})
    assert "<span id=cart>teapot</span>" in page
    at, page = fetch(browser, urls["blog"] + "/")
    assert at == urls["blog"] + "/"
    assert "<b id=user>alice</b>" in page and "password" not in page
    # The ASGI site: its home page needs a sign-in, shows the user and the shared cart.
    at, news = fetch(browser, urls["news"] + "/")
    assert at == urls["news"] + "/"
    assert "<b id=user>alice</b>" in news and "<span id=cart>teapot</span>" in news
    return browser, page


def panel(page: str) -> str:
    """The demo panel of a page (it must have one)."""
    found = re.search(r"<aside id=demo-panel.*?</aside>", page, re.DOTALL)
    assert found is not None, page
    return found.group(0)


def text(html: str, element_id: str) -> str:
    found = re.search(rf"id={element_id}>(.*?)</", html, re.DOTALL)
    assert found is not None, (element_id, html)
    return found.group(1)


def test_demo_pages_show_the_panel_and_the_log_shows_no_token() -> None:
    with running_demo() as demo:
        demo.banner()
        urls = site_urls(demo.port)
        browser = browser_like_opener()
        # The IdP's form: who asked, who may sign in, and the hand-off so far.
        at, page = fetch(browser, urls["shop"] + "/orders")
        assert text(page, "asking-site") == urls["shop"]
        assert "<code>alice</code> / <code>wonderland</code>" in page
        box = panel(page)
        assert text(box, "demo-site") == "idp" and text(box, "demo-user") == "nobody signed in"
        assert text(box, "demo-route") == "shop → idp"
        assert "login_redirect" in box and "hand-off kept pending" in box
        # Another browser's sign-in is its own: the panel shows this browser's hops only.
        at, page = fetch(browser_like_opener(), urls["blog"] + "/")
        assert text(page, "asking-site") == urls["blog"]
        assert text(panel(page), "demo-route") == "blog → idp"
        assert panel(page).count("<li>") == 2

        # The blog's public page checks passively: a guest after one bounce (no form), with
        # a link to sign in; not bounced again on a reload.
        jar = CookieJar()
        guest = browser_like_opener(jar)
        at, page = fetch(guest, urls["blog"] + "/about")
        assert at == urls["blog"] + "/about" and "password" not in page
        assert text(page, "greeting").startswith("Welcome, guest.") and "id=sign-in" in page
        assert text(panel(page), "demo-route") == "blog → idp → blog"  # the one bounce
        with browser_like_opener(jar, follow=False).open(urls["blog"] + "/about") as again:
            assert again.status == 200  # a reload is served at once: no second bounce

        # Signed in at the shop, then the blog: every site's panel tells the same session.
        browser, page = sign_in_through_the_demo(urls)
        box = panel(page)
        assert text(box, "demo-site") == "blog" and text(box, "demo-user") == "alice"
        assert text(box, "demo-sites") == "idp, shop, blog"
        assert re.search(r"<code>cart</code>|<code>blog_visits</code></td><td><code>1<", box)
        assert text(box, "demo-route") == "blog → idp → blog"
        hops = re.findall(r"<li><b>(\w+)</b> <code>(\w+) ([^<]*)</code> <span[^>]*>(\d+)", box)
        assert [(site, method, status) for site, method, _, status in hops] == [
            ("blog", "GET", "302"), ("idp", "GET", "303"), ("blog", "GET", "303"),
            ("blog", "GET", "200"),
        ]
        assert hops[2][2] == "/_sessionshare/callback?token=…"
        for event in ("login_redirect", "ticket_issued", "ticket_redeemed"):
            assert event in box
        assert "ticket redeemed once" in box
        # The ASGI news site carries the panel too (it once had none).
        at, news = fetch(browser, urls["news"] + "/")
        box = panel(news)
        assert text(box, "demo-site") == "news" and text(box, "demo-user") == "alice"
        assert text(box, "demo-sites") == "idp, shop, blog, news"
        assert "<span id=cart>teapot</span>" in news and "<code>cart</code>" in box
        # Signed in for a remote: the IdP left no message in the session to be shown to
        # nobody, and the hand-off it kept pending is gone.
        assert "<code>_flashes</code>" not in box and "sessionshare.pending" not in box
        at, about = fetch(browser, urls["blog"] + "/about")  # the public page knows alice
        assert at == urls["blog"] + "/about" and "<b id=user>alice</b>" in about

        # Signing out anywhere says so, and means it.
        at, page = fetch(browser, urls["blog"] + "/_sessionshare/logout", {})
        assert at == urls["blog"] + "/_demo/signed-out"
        assert "Signed out everywhere" in page
        at, page = fetch(browser, urls["shop"] + "/orders")
        assert at.startswith(urls["idp"] + "/login?callback=")
        at, page = fetch(browser, urls["news"] + "/")
        assert at.startswith(urls["idp"] + "/login?callback=")  # the ASGI site too
        output = demo.stop()
    # The access log: every request, no token value, no colour codes in a pipe.
    assert re.search(r'(shop|blog|news|forum)\.localhost:\d+ '
                     r'"GET /_sessionshare/callback\?token=… HTTP/1.1" 303', output), output
    assert re.search(r'news\.localhost:\d+ "GET / HTTP/1.1" 200', output), output  # ASGI
    assert not re.search(r"token=[A-Za-z0-9_-]", output), output
    assert "\x1b[" not in output


@pytest.mark.parametrize(("target", "shown"), [
    ("/_sessionshare/callback?token=abc.DEF-123", "/_sessionshare/callback?token=…"),
    ("/x?a=1&token=secret&b=2", "/x?a=1&token=…&b=2"),
    ("/x?%74oken=secret", "/x?%74oken=…"),
    ("/x?tokens=kept&b=token%3Dkept", "/x?tokens=kept&b=token%3Dkept"),
    ("/orders", "/orders"),
], ids=["callback", "among-others", "encoded-name", "look-alikes-kept", "no-query"])
def test_the_access_log_redacts_token_values(target: str, shown: str) -> None:
    assert redact_target(target) == shown


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("tty", "no_color", "coloured"), [
    (True, None, True), (False, None, False), (True, "1", False),
], ids=["terminal", "pipe", "NO_COLOR"])
def test_the_access_log_is_coloured_only_on_a_terminal(
    tty: bool, no_color: str | None, coloured: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    handler = AccessLog.__new__(AccessLog)  # no socket: only the log line is made here
    handler.command, handler.request_version = "GET", "HTTP/1.1"
    handler.path = "/x\x1b[31m/_sessionshare/callback?token=abc"
    handler.headers = email.message.Message()
    handler.headers["Host"] = "shop.localhost:8001\x1b[2J"
    lines: list[str] = []
    monkeypatch.setattr(handler, "log", lambda kind, fmt, *args: lines.append(fmt % args))
    handler.log_request(303, 0)
    plain = re.sub("\x1b\\[[0-9]+m", "", lines[0])
    assert plain == ('shop.localhost:8001\\x1b[2J "GET /x\\x1b[31m/_sessionshare/callback?token=… '
                     'HTTP/1.1" 303 0')
    assert "abc" not in lines[0]  # the token's value
    assert ("\x1b[32m" in lines[0]) is coloured
    assert lines[0].count("\x1b[") == (2 if coloured else 0)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_serves_a_shared_login_and_stops_cleanly(signum: int) -> None:
    with running_demo() as demo:
        text = demo.banner()
        urls = site_urls(demo.port)
        for url in urls.values():
            assert url in text
        assert "store: in-memory" in text
        assert "cookie_secure=False" in text and "plain http" in text
        browser, _ = sign_in_through_the_demo(urls)
        # The Django forum: login_required, through the same hand-off, no form.
        at, page = fetch(browser, urls["forum"] + "/")
        assert at == urls["forum"] + "/"
        assert "<b id=user>alice</b>" in page and "password" not in page
        assert "id=demo-site>forum</" in panel(page)
        demo.stop(signum)


def test_the_idp_serves_the_demos_metrics_at_slash_metrics() -> None:
    with running_demo() as demo:
        urls = site_urls(demo.port)
        assert f"Prometheus metrics of every site: {urls['idp']}/metrics" in demo.banner()
        sign_in_through_the_demo(urls)  # the shop, the blog and the news site (ASGI)
        with browser_like_opener().open(urls["idp"] + "/metrics", timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            exposition = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
        events = {(s.labels["event"], s.labels["reason"]): s.value
                  for s in families["sessionshare_events"].samples
                  if s.name == "sessionshare_events_total"}
        assert events[("login", "")] == 1
        # Every site reports to the one registry, the ASGI news site included.
        assert events[("ticket_redeemed", "")] == 3 and events[("ticket_issued", "")] == 3
        loads = {s.labels["command"]: s.value for s in families["sessionshare_store_seconds"]
                 .samples if s.name == "sessionshare_store_seconds_count"}
        assert loads["load"] > 0 and loads["take_ticket"] == 3
        assert "alice" not in exposition
        # The mount is the guarded one: a request a proxy forwarded from elsewhere gets 403.
        forwarded = urllib.request.Request(urls["idp"] + "/metrics",
                                           headers={"X-Forwarded-For": "203.0.113.9"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            browser_like_opener().open(forwarded, timeout=30)
        assert refused.value.code == 403 and b"sessionshare_events" not in refused.value.read()
        refused.value.close()
        # The active-sessions gauge is counted from the index every 5 s in the demo.
        deadline = time.monotonic() + 20
        while True:
            with browser_like_opener().open(urls["idp"] + "/metrics", timeout=30) as response:
                found = {f.name: f for f in text_string_to_metric_families(
                    response.read().decode())}
            gauge = found.get("sessionshare_sessions_active")
            if gauge is not None and gauge.samples[0].value == 1:
                break
            assert time.monotonic() < deadline, "the gauge never counted alice's session"
            time.sleep(0.5)
        demo.stop()


def test_demo_keeps_its_sessions_in_redis_when_asked(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with running_demo("--redis", redis_url) as demo:
        assert "store: Redis at " + redis_url in demo.banner()
        sign_in_through_the_demo(site_urls(demo.port))
        keys = client.keys("*")
        assert keys and all(key.startswith(b"sessionshare-demo:") for key in keys)
        demo.stop()
    client.close()


def test_the_cli_lists_and_ends_the_demos_sessions_with_its_key(redis_url: str) -> None:
    key = SyncKey.generate()
    with running_demo("--redis", redis_url, env={"SESSIONSHARE_SYNC_KEY": key}) as demo:
        text = demo.banner()
        fingerprint = SyncKey.parse(key).fingerprint
        assert f"sync key: SESSIONSHARE_SYNC_KEY (fingerprint {fingerprint})" in text
        assert "SESSIONSHARE_KEY_PREFIX=sessionshare-demo: python -m sessionshare sessions" in text
        urls = site_urls(demo.port)
        browser, _ = sign_in_through_the_demo(urls)
        store = RedisStore.from_url(redis_url)
        admin = SessionAdmin(store, key, key_prefix="sessionshare-demo:")
        (info,) = admin.sessions("alice")
        assert urls["shop"] in info.apps and urls["blog"] in info.apps
        assert admin.revoke_all("alice") == 1
        at, _ = fetch(browser, urls["shop"] + "/orders")
        assert at.startswith(urls["idp"] + "/login?callback=")  # signed out at the shop
        store.close()
        demo.stop()


def test_without_the_variable_the_demo_makes_its_own_key() -> None:
    with running_demo(env={"SESSIONSHARE_SYNC_KEY": ""}) as demo:
        assert "sync key: new for this run (fingerprint " in demo.banner()
        demo.stop()


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


def _third_party_imports(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    # _typeshed: type stubs, imported under TYPE_CHECKING only.
    return {n for n in names if n not in sys.stdlib_module_names} - {"sessionshare", "_typeshed"}


def test_the_demo_extra_installs_what_the_demo_imports_and_nothing_else() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    core, demo = names(project["dependencies"]), names(project["optional-dependencies"]["demo"])
    demo_sources = sorted((REPO / "sessionshare" / "demo").glob("*.py"))
    assert {p.name for p in demo_sources} >= {"app.py", "panel.py", "timeline.py"}
    sources = [*(REPO / "examples").glob("*.py"), *demo_sources]
    distributions = importlib.metadata.packages_distributions()
    needed = {
        canonicalize_name(dist) for module in _third_party_imports(sources)
        for dist in distributions.get(module, [module])
    }
    assert {"flask", "pyramid", "werkzeug", "fastapi", "uvicorn"} <= needed  # the reader works
    assert needed <= core | demo, "the demo imports something `.[demo]` does not install"
    assert demo <= needed, "`.[demo]` installs something the demo does not import"
    assert not demo & {"pytest", "selenium", "hypothesis", "flask-session", "beaker"}
    assert "sessionshare[demo]" in project["optional-dependencies"]["test"]
