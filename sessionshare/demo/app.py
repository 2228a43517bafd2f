"""``python -m sessionshare demo``: one login shared by four sites on this machine.

Starts the apps of ``examples/`` -- the Flask IdP with its login form, the
Pyramid shop, the plain-WSGI blog and the Django forum, each in its own
threaded WSGI server (werkzeug's), and the FastAPI news site under uvicorn
(ASGI) -- at ``http://idp.localhost:8000``, ``http://shop.localhost:8001``,
``http://blog.localhost:8002``, ``http://news.localhost:8003`` and
``http://forum.localhost:8004``, all in this one process. Browsers resolve
every ``*.localhost`` name to this machine, yet treat each as its own site
with its own cookies, which is all a cross-domain hand-off needs. The five
apps share one in-process :class:`~sessionshare.store.MemoryStore` (the news
site awaits it; ``--redis URL`` puts the sessions in Redis instead, an
``AsyncRedisStore`` for the news site) and a sync key made for this run.

**Not for production.** The demo speaks plain http, so it turns off the
Secure cookie flag (``cookie_secure=False``) explicitly, and says so when it
starts; a real deployment serves every app over https and keeps the flag.

The example apps live in the source checkout, next to the package, not in
it: the demo looks for ``examples/`` beside the installed package (an
editable install from a checkout) or in the current directory, and
explains what to do when it finds neither.

Every page carries a panel (:mod:`sessionshare.demo.panel`): the site, the
user, the shared session, the sites that joined it and, on the WSGI sites, the
last hand-off hop by hop (:mod:`sessionshare.demo.timeline`). Signing out lands on
a page that says so for every site. The access log never shows a ``token=`` value, and is
coloured only on a terminal.

    python -m pip install -e '.[demo]' && python -m sessionshare demo
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..crypto import SyncKey
from ..errors import ConfigurationError, StoreUnavailable
from ..store import MemoryStore, SessionStore
from ..store.amemory import AsyncMemoryStore
from .panel import SIGNED_OUT_PATH, AsgiPanel, Panel, signed_out_page
from .timeline import Timeline, redact_target

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..metrics import PrometheusMetrics

__all__ = [
    "DEFAULT_PORT", "AccessLog", "Servers", "demo_apps", "find_examples", "load_example",
    "run_demo",
]

log = logging.getLogger("sessionshare.demo")

DEFAULT_PORT = 8000
SITES = ("idp", "shop", "blog", "news", "forum")
#: Each site's port, from the IdP's.
PORT_OFFSETS = {"idp": 0, "shop": 1, "blog": 2, "news": 3, "forum": 4}
#: The sites served by uvicorn (ASGI); the others by werkzeug (WSGI).
ASGI_SITES = ("news",)
USERS_HINT = "alice / wonderland (or bob / builder)"
KEY_PREFIX = "sessionshare-demo:"
#: Where the IdP serves the demo's Prometheus metrics.
METRICS_PATH = "/metrics"


def find_examples() -> Path:
    """The ``examples/`` directory of a source checkout (beside the package, or here)."""
    # sessionshare/demo/app.py: the checkout is three levels up.
    candidates = [Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"]
    for candidate in candidates:
        if (candidate / "idp_flask.py").is_file():
            return candidate
    raise ConfigurationError(
        "the demo runs the example apps in examples/ of a source checkout, and this "
        "installation has none: clone the repository, then in it run "
        "`python -m pip install -e '.[demo]' && python -m sessionshare demo`"
    )


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (it is a script directory, not a package)."""
    path = find_examples() / f"{name}.py"
    module_name = f"sessionshare_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load the example {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered first: Flask finds its root path through sys.modules.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def site_urls(port: int = DEFAULT_PORT) -> dict[str, str]:
    """``{"idp": "http://idp.localhost:8000", "shop": ..., "blog": ..., "news": ..., ...}``."""
    return {name: f"http://{name}.localhost:{port + PORT_OFFSETS[name]}" for name in SITES}


def demo_apps(
    store: SessionStore, key: SyncKey | str, urls: Mapping[str, str],
    *, timeline: Timeline | None = None, async_store: Any = None,
    metrics_app: WSGIApplication | None = None, **options: Any,
) -> dict[str, Any]:
    """The example apps wired to one store and key, by site name.

    The WSGI ones carry the demo panel (inside their middleware) and are
    recorded by ``timeline`` (outside it; a new one unless given); the news
    site is an ASGI app (:data:`ASGI_SITES`) over ``async_store`` (default:
    ``store`` itself, which must then be a ``MemoryStore``). Signing out
    anywhere lands on :data:`~sessionshare.demo.panel.SIGNED_OUT_PATH`.
    ``metrics_app``, when given, answers ``/metrics`` on the IdP.
    """
    timeline = timeline if timeline is not None else Timeline(urls)
    # Plain http on this machine only: the Secure flag is relaxed on purpose.
    common: dict[str, Any] = {
        "store": store, "key": key, "cookie_secure": False,
        "logout_redirect": SIGNED_OUT_PATH, **options,
    }
    login = urls["idp"] + "/login"

    def panel(site: str) -> Callable[[WSGIApplication], WSGIApplication]:
        return lambda app: Panel(app, site=site, timeline=timeline)

    apps = {
        "idp": load_example("idp_flask").create_app(
            wrap_app=panel("idp"), app_url=urls["idp"],
            known_remote_hosts=[urls[site] for site in SITES if site != "idp"], **common,
        ),
        # The shop's and the blog's public pages (the shop's /, the blog's /about) check
        # passively: they greet a user signed in at the IdP, and show anyone else the
        # page after one bounce, never a login form.
        "shop": load_example("shop_pyramid").create_app(
            wrap_app=panel("shop"), app_url=urls["shop"], idp_url=login, passive=True, **common
        ),
        "blog": load_example("blog_wsgi").create_app(
            wrap_app=panel("blog"), app_url=urls["blog"], idp_url=login, passive=True, **common
        ),
        "forum": load_example("forum_django").create_app(
            wrap_app=panel("forum"), app_url=urls["forum"], idp_url=login, **common
        ),
    }
    wrapped: dict[str, Any] = {
        site: timeline.wrap(site, _with_signed_out_page(site, app, timeline))
        for site, app in apps.items()
    }
    wrapped["news"] = load_example("news_fastapi").create_app(
        wrap_app=lambda app: AsgiPanel(app, site="news", timeline=timeline),
        app_url=urls["news"], idp_url=login,
        **{**common, "store": store if async_store is None else async_store,
           # The signed-out page is the IdP's: it is served outside a WSGI site's middleware.
           "logout_redirect": urls["idp"] + SIGNED_OUT_PATH},
    )
    if metrics_app is not None:
        wrapped["idp"] = _with_metrics(wrapped["idp"], metrics_app)
    return wrapped


def _with_metrics(app: WSGIApplication, metrics_app: WSGIApplication) -> WSGIApplication:
    """``app``, except for ``/metrics``, which ``metrics_app`` answers."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == METRICS_PATH:
            return metrics_app(environ, start_response)
        return app(environ, start_response)

    return serve


def demo_metrics(store: SessionStore | None = None, key: SyncKey | None = None
                 ) -> PrometheusMetrics | None:
    """The demo's Prometheus metrics, in a registry of their own; None without
    ``prometheus_client`` (the demo then serves no ``/metrics``). Given the demo's
    store and key, they count the live sessions too (every 5 s: a demo is small)."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        return None
    from ..admin import SessionAdmin
    from ..metrics import PrometheusMetrics

    admin = None
    if store is not None and key is not None:
        admin = SessionAdmin(store, key, key_prefix=KEY_PREFIX)
    return PrometheusMetrics(registry=CollectorRegistry(), sessions=admin, sessions_every=5.0)


def _with_signed_out_page(site: str, app: WSGIApplication, timeline: Timeline) -> WSGIApplication:
    """``app``, except for the page signing out lands on (outside the middleware)."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SIGNED_OUT_PATH:
            return app(environ, start_response)
        page = signed_out_page(site, timeline.urls, timeline.last_for(environ))
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(page))),
                                  ("Cache-Control", "no-store")])
        return [page]

    return serve


class AccessLog(WSGIRequestHandler):
    """werkzeug's request handler, with an access log fit for a sign-in demo.

    A hand-off token is a one-time credential: the callback's ``token=`` value
    is printed as ``token=…``. Each line names the site asked (the ``Host``
    header: five sites log into one terminal). Colours (ANSI codes) only when
    the log goes to a terminal and ``NO_COLOR`` is unset, never into a file or a
    pipe.
    """

    #: The ANSI colour of a status class (3xx, 4xx, 5xx) on a terminal.
    COLOURS = {"3": "32", "4": "31", "5": "35"}

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        line = _printable(f"{self.command} {redact_target(self.path)} {self.request_version}")
        headers = getattr(self, "headers", None)
        host = _printable(headers.get("Host", "-") if headers is not None else "-")
        code = str(code)
        colour = self.COLOURS.get(code[:1])
        if colour and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            line = f"\x1b[{colour}m{line}\x1b[0m"
        self.log("info", '%s "%s" %s %s', host, line, code, size)


def _printable(text: str) -> str:
    """``text`` with its control characters escaped: what the client sent (the request
    line, the Host header) must not reach a terminal as codes or forge log lines."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (``OSError`` when the port is taken: no server half-started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


class Servers:
    """Threaded werkzeug WSGI servers and uvicorn ASGI servers on already-bound sockets,
    each in its own thread, stopped together."""

    def __init__(self) -> None:
        self._running: list[tuple[BaseWSGIServer, threading.Thread]] = []
        self._asgi: list[tuple[Any, threading.Thread, socket.socket]] = []

    def start(self, sock: socket.socket, app: WSGIApplication) -> int:
        """Serve ``app`` on ``sock`` in a background thread; the port it serves."""
        host, port = sock.getsockname()[:2]
        server = make_server(
            host, port, app, threaded=True, fd=sock.fileno(), request_handler=AccessLog
        )
        sock.close()  # the server holds its own duplicate of the descriptor
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"sessionshare-demo-{port}", daemon=True,
        )
        thread.start()
        self._running.append((server, thread))
        return int(server.port)

    def start_asgi(
        self, sock: socket.socket, app: Any,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Serve the ASGI ``app`` with uvicorn (its own event loop, in a background thread)
        on ``sock``; the port it serves. ``on_shutdown`` runs on that loop as it stops
        (closing an asyncio store there, the loop its connections belong to)."""
        import uvicorn

        port = int(sock.getsockname()[1])
        served = _asgi_access_log(app)
        if on_shutdown is not None:
            served = _on_shutdown(served, on_shutdown)
        config = uvicorn.Config(
            served, lifespan="off" if on_shutdown is None else "on", access_log=False,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]},
            name=f"sessionshare-demo-{port}", daemon=True,
        )
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.01)
        if not server.started:
            raise OSError(f"uvicorn did not start on port {port}")
        self._asgi.append((server, thread, sock))
        return port

    def stop(self) -> None:
        """Stop accepting, let the serving threads end, close the sockets."""
        for server, _ in self._running:
            server.shutdown()
        for asgi_server, _, _ in self._asgi:
            asgi_server.should_exit = True
        for server, thread in self._running:
            thread.join(timeout=5)
            server.server_close()
        for _, thread, sock in self._asgi:
            thread.join(timeout=5)
            sock.close()
        self._running, self._asgi = [], []


def _on_shutdown(app: Any, on_shutdown: Callable[[], Awaitable[None]]) -> Any:
    """``app``, answering the lifespan protocol itself: ``on_shutdown`` as the server stops."""

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return served


def _asgi_access_log(app: Any) -> Any:
    """``app``, with :class:`AccessLog`'s line for each HTTP request (``token=…`` hidden)."""

    async def logged(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status: list[int] = []

        async def watching(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await app(scope, receive, watching)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            target = redact_target(scope["path"] + (f"?{query}" if query else ""))
            line = _printable(
                f"{scope['method']} {target} HTTP/{scope.get('http_version', '1.1')}")
            host = next((value for name, value in scope.get("headers", ())
                         if name == b"host"), b"-")
            client = (scope.get("client") or ("-",))[0]
            log.info('%s %s "%s" %s', client, _printable(host.decode("latin-1")), line,
                     status[0] if status else "-")

    return logged


def _open_store(redis_url: str | None) -> tuple[SessionStore, str]:
    if redis_url is None:
        return MemoryStore(), "in-memory (this process only)"
    from ..store.redis import RedisStore

    store = RedisStore.from_url(redis_url)
    store.ping()
    return store, f"Redis at {_redacted(redis_url)}"


def _async_store(redis_url: str | None) -> Any:
    """The news site's store: None (it awaits the MemoryStore), or an ``AsyncRedisStore``."""
    if redis_url is None:
        return None
    from ..store.asyncredis import AsyncRedisStore

    return AsyncRedisStore.from_url(redis_url)


def _redacted(url: str) -> str:
    """``url`` without its user-info part: never print a password."""
    scheme, _, rest = url.rpartition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if scheme else rest.rpartition("@")[2]


def _banner(urls: Mapping[str, str], host: str, store_name: str, metrics: bool = False) -> str:
    idp, shop, blog, news = urls["idp"], urls["shop"], urls["blog"], urls["news"]
    return "\n".join([
        f"sessionshare demo: one login, {len(urls)} sites (listening on {host}; "
        f"store: {store_name})",
        f"  IdP   {idp}   Flask, the login form: {USERS_HINT}",
        f"  shop  {shop}  Pyramid, /orders needs a sign-in; / is public and knows you",
        f"  blog  {blog}  plain WSGI, every page but /about needs a sign-in",
        f"  news  {news}  FastAPI under uvicorn (ASGI), every page needs a sign-in",
        f"  forum {urls['forum']} Django, / is login_required",
        f"1. Open {shop}/orders and sign in as {USERS_HINT}.",
        f"2. Open {blog}/ -- signed in already, no form; sign out there and the shop asks again.",
        f"3. Open {news}/ -- the same user and the shop's cart, on an ASGI app.",
        f"4. Open {urls['forum']}/ -- Django's login_required, through the same hand-off.",
        "Each WSGI page's panel shows the shared session and the last hand-off, hop by hop.",
        "Cookies are sent without the Secure flag (cookie_secure=False) only because this demo "
        "is plain http on your machine; serve real deployments over https.",
        *([f"Prometheus metrics of every site: {idp}{METRICS_PATH} (from this machine; "
           "from elsewhere with SESSIONSHARE_METRICS_TOKEN as a bearer token)"]
          if metrics else []),
        "Press Ctrl-C to stop.",
    ])


def _demo_key() -> tuple[SyncKey, str]:
    """``SESSIONSHARE_SYNC_KEY`` when set (so the CLI can reach the demo's sessions), else
    a key made for this run; and where it came from."""
    text = os.environ.get("SESSIONSHARE_SYNC_KEY", "")
    if text.strip():
        return SyncKey.parse(text), "SESSIONSHARE_SYNC_KEY"
    return SyncKey.parse(SyncKey.generate()), "new for this run"


def _key_banner(key: SyncKey, origin: str, redis_url: str | None) -> str:
    line = f"sync key: {origin} (fingerprint {key.fingerprint})"
    if origin == "SESSIONSHARE_SYNC_KEY" and redis_url:
        line += (f"; list alice's sessions with SESSIONSHARE_STORE_URL={_redacted(redis_url)} "
                 f"SESSIONSHARE_KEY_PREFIX={KEY_PREFIX} python -m sessionshare sessions list "
                 "--user alice")
    return line


def run_demo(redis_url: str | None, host: str, port: int = DEFAULT_PORT) -> int:
    """Serve the example apps until Ctrl-C or SIGTERM; the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not 0 < port <= 65535 - max(PORT_OFFSETS.values()):
        print(f"error: --port {port} leaves no room for the ports up to "
              f"{port} + {max(PORT_OFFSETS.values())}", file=sys.stderr)
        return 2
    # Caught from the very start: a signal during start-up still ends in a clean stop.
    with _stop_signals() as stop:
        return _serve_until(stop, redis_url, host, port)


def _serve_until(stop: threading.Event, redis_url: str | None, host: str, port: int) -> int:
    sockets: list[socket.socket] = []
    store: SessionStore | None = None
    metrics: PrometheusMetrics | None = None
    servers = Servers()
    started = False
    try:
        find_examples()
        store, store_name = _open_store(redis_url)
        for site in SITES:
            try:
                sockets.append(listen(host, port + PORT_OFFSETS[site]))
            except OSError as exc:
                print(f"error: cannot listen on {host}:{port + PORT_OFFSETS[site]} "
                      f"({exc.strerror}); "
                      "is another demo running? Pick other ports with --port", file=sys.stderr)
                return 2
        key, key_origin = _demo_key()
        urls = site_urls(port)
        timeline = Timeline(urls)
        async_store = _async_store(redis_url)
        options: dict[str, Any] = {"key_prefix": KEY_PREFIX}
        app_store, news_store, metrics_app = store, async_store, None
        metrics = demo_metrics(store, key)
        if metrics is not None:
            # Every site counts its events and times its store calls into one registry.
            options["on_event"] = metrics.on_event
            app_store = metrics.instrument(store)
            news_store = metrics.instrument(
                AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_store)
            # Guarded (sessionshare.metrics_access): this machine only, or the scraper that
            # sends SESSIONSHARE_METRICS_TOKEN -- never every visitor of the IdP.
            metrics_app = metrics.wsgi_app(loopback=True)  # a local demo: no proxy in front
        apps = demo_apps(app_store, key, urls, timeline=timeline, async_store=news_store,
                         metrics_app=metrics_app, **options)
        with timeline.listening():
            for sock, name in zip(sockets, SITES, strict=True):
                if name in ASGI_SITES:
                    servers.start_asgi(sock, apps[name], None if async_store is None
                                       else async_store.close)
                else:
                    servers.start(sock, apps[name])
            sockets, started = [], True
            print(_key_banner(key, key_origin, redis_url), flush=True)
            print(_banner(urls, host, store_name, metrics_app is not None), flush=True)
            while not stop.wait(0.5):
                pass
            servers.stop()
        return 0
    except ImportError as exc:
        print(f"error: the demo needs Flask, Pyramid, Django, FastAPI and uvicorn ({exc}); "
              "install them with `python -m pip install -e '.[demo]'`", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"error: the Redis at {_redacted(redis_url or '')} does not answer ({exc}); "
              "start it, or leave out --redis to use the embedded store", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for sock in sockets:
            sock.close()
        servers.stop()
        if metrics is not None:
            metrics.close()
        if store is not None:
            store.close()
        if started:
            print("sessionshare demo stopped.", flush=True)


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) or SIGTERM sets, while the block runs."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
