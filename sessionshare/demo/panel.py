"""The demo's panel: on every page, what the shared session and the hand-off look like.

Demo only. :class:`Panel` wraps an example app *inside* its middleware (the
examples' ``create_app(wrap_app=...)``), where it reads what any app reads --
``environ["sessionshare.session"]`` and ``environ["REMOTE_USER"]`` -- and
adds a small box to each HTML page: which site this is, the user, the shared
session's keys and values, which sites have joined this session, and the
last hand-off of this browser as hops (from :mod:`sessionshare.demo.timeline`).

:class:`AsgiPanel` is its twin for an ASGI app (the FastAPI news site), reading
``scope["session"]`` and ``scope["sessionshare.user"]``; the hand-off timeline
records the WSGI sites' hops only, so the news site's panel shows none of its own.

"Joined" is the demo's own bookkeeping, in the demo-only session key
``demo_sites``: each site adds its name when it answers a signed-in request,
before the middleware saves the session. A real app has no such key.

The panel shows session values, CSRF tokens included: fine for a demo on
your machine, never for a real site.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from .timeline import HOP_KEY, Handoff, Hop, Timeline

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "SIGNED_OUT_PATH", "SITES_KEY", "AsgiPanel", "Panel", "panel_html", "signed_out_page",
]

SITES_KEY = "demo_sites"
SIGNED_OUT_PATH = "/_demo/signed-out"  # every site's logout_redirect in the demo
VALUE_WIDTH = 60

STYLE = (
    "position:fixed;top:12px;right:12px;width:470px;max-height:calc(100vh - 24px);"
    "overflow:auto;font:12px/1.4 system-ui,sans-serif;background:#f7f9fc;color:#222;"
    "border:1px solid #3367d6;border-radius:6px;padding:8px 12px;box-shadow:0 2px 8px #0002"
)
INNER_STYLE = (
    "<style>body{margin-right:500px}"
    "#demo-panel h2{font-size:14px;margin:0 0 6px}#demo-panel h3{font-size:12px;"
    "margin:8px 0 2px}#demo-panel table{border-collapse:collapse;width:100%}"
    "#demo-panel td{border-top:1px solid #dde;padding:1px 4px;vertical-align:top}"
    "#demo-panel code{font-size:11px;word-break:break-all}#demo-panel ol{margin:2px 0;"
    "padding-left:20px}#demo-panel li{margin-bottom:4px}#demo-panel .ev{color:#666}"
    "#demo-panel .st{font-weight:bold;color:#0b7a3e}#demo-panel .st4{color:#b3261e}</style>"
)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _hop_html(hop: Hop, status: int | None, current: bool) -> str:
    css = "st st4" if status is not None and status >= 400 else "st"
    to = f" → {escape(hop.to)}" if hop.to and status is not None and 300 <= status < 400 else ""
    checks = "".join(f"<br>✓ {escape(text)}" for text in hop.checks())
    if current:
        checks += "<br>this page"
    events = "".join(f"<br><code class=ev>{escape(event)}</code>" for event in hop.events)
    return (f"<li><b>{escape(hop.site)}</b> <code>{escape(hop.method)} {escape(hop.target)}"
            f"</code> <span class='{css}'>{status if status is not None else '…'}</span>{to}"
            f"{checks}{events}</li>")


def _timeline_html(handoff: Handoff | None, current: Hop | None, status: int | None) -> str:
    if handoff is None:
        return "<p id=demo-timeline>None recorded for this browser at this site.</p>"
    hops = list(handoff.hops)
    if current is not None and current not in hops:
        hops.append(current)
    route: list[str] = []
    for hop in hops:
        if not route or route[-1] != hop.site:
            route.append(hop.site)
    items = "".join(
        _hop_html(hop, status if hop is current and hop.status is None else hop.status,
                  hop is current)
        for hop in hops
    )
    return (f"<p id=demo-route>{escape(' → '.join(route))}</p>"
            f"<ol id=demo-timeline>{items}</ol>")


def panel_html(
    site: str, url: str, *, user: str | None, session: Mapping[str, Any] | None,
    handoff: Handoff | None, current: Hop | None = None, status: int | None = None,
) -> str:
    """The panel's HTML (an ``<aside id=demo-panel>``)."""
    # The keys first, then the values: reading a value while iterating may repeat a key.
    items = sorted((k, session[k]) for k in list(session)) if session is not None else []
    rows = "".join(f"<tr><td><code>{escape(k)}</code></td><td><code>{escape(_shown(v))}"
                   "</code></td></tr>" for k, v in items)
    joined = (session or {}).get(SITES_KEY) or []
    return (
        f"<aside id=demo-panel style='{STYLE}'>{INNER_STYLE}"
        f"<h2>sessionshare demo · <span id=demo-site>{escape(site)}</span></h2>"
        f"<div><code>{escape(url)}</code></div>"
        f"<div>User: <b id=demo-user>{escape(user or 'nobody signed in')}</b></div>"
        f"<div>Sites joined: <b id=demo-sites>{escape(', '.join(map(str, joined)) or 'none')}"
        "</b></div>"
        f"<h3>Shared session ({len(items)} keys)</h3>"
        + (f"<table id=demo-session>{rows}</table>" if rows else "<p id=demo-session>empty</p>")
        + "<h3>Last hand-off</h3>"
        + _timeline_html(handoff, current, status)
        + "</aside>"
    )


class Panel:
    """An app (inside its middleware) whose HTML pages carry the demo panel."""

    def __init__(
        self, app: WSGIApplication, *, site: str, timeline: Timeline, user_key: str = "user"
    ) -> None:
        self.app = app
        self.site = site
        self.url = timeline.urls[site]
        self.timeline = timeline
        self.user_key = user_key

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer: dict[str, Any] = {}
        body: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers, exc_info=exc_info)
            return body.append

        result = self.app(environ, capture)
        try:
            body.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        session: Any = environ.get("sessionshare.session")
        signed_in = session is not None and bool(session.get(self.user_key))
        if signed_in:
            # Before the middleware saves: the start_response below is when it does.
            joined = list(session.get(SITES_KEY) or [])
            if self.site not in joined:
                session[SITES_KEY] = [*joined, self.site]
        status, headers = answer["status"], answer["headers"]
        kind = next((v for k, v in headers if k.lower() == "content-type"), "")
        # Pages only: a redirect's body is never shown, a HEAD answer has none.
        shown = not status.startswith("3") and environ.get("REQUEST_METHOD") != "HEAD"
        if kind.startswith("text/html") and shown:
            user = environ.get("REMOTE_USER") or (
                str(session.get(self.user_key)) if signed_in else None)
            panel = panel_html(
                self.site, self.url, user=user, session=session,
                handoff=self.timeline.last_for(environ), current=environ.get(HOP_KEY),
                status=int(status[:3]),
            ).encode()
            page = b"".join(body)
            at = page.rfind(b"</body>")
            page = page[:at] + panel + page[at:] if at >= 0 else page + panel
            body = [page]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(page))))
        start_response(status, headers, answer["exc_info"])
        return body


class AsgiPanel:
    """An ASGI app (inside its middleware) whose HTML pages carry the demo panel."""

    def __init__(self, app: Any, *, site: str, timeline: Timeline, user_key: str = "user") -> None:
        self.app = app
        self.site = site
        self.url = timeline.urls[site]
        self.user_key = user_key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session: Any = scope.get("session")
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                # Before the middleware (outside) sees the start, when it saves the session.
                if session is not None and session.get(self.user_key):
                    joined = list(session.get(SITES_KEY) or [])
                    if self.site not in joined:
                        session[SITES_KEY] = [*joined, self.site]
                kind = next((v for k, v in message.get("headers", ()) if k.lower() ==
                             b"content-type"), b"")
                shown = message["status"] // 100 != 3 and scope.get("method") != "HEAD"
                if kind.startswith(b"text/html") and shown:
                    held["start"] = message  # the page is sent whole, with the panel in it
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_page(send, held.pop("start"), b"".join(body), scope, session)
                return
            await send(message)

        await self.app(scope, receive, capture)

    async def _send_page(
        self, send: Any, start: Any, page: bytes, scope: Any, session: Any
    ) -> None:
        user = scope.get("sessionshare.user")
        panel = panel_html(
            self.site, self.url, user=None if user is None else str(user),
            session=session, handoff=None, status=start["status"],
        ).encode()
        at = page.rfind(b"</body>")
        page = page[:at] + panel + page[at:] if at >= 0 else page + panel
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(page)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": page})


def signed_out_page(site: str, urls: Mapping[str, str], handoff: Handoff | None) -> bytes:
    """Where every demo site sends the browser after signing out."""
    links = "".join(f"<li><a href='{escape(url)}/'>{escape(name)}</a> <code>{escape(url)}"
                    "</code></li>" for name, url in urls.items())
    return (
        "<!doctype html><meta charset=utf-8><title>Signed out</title>"
        "<h1 id=signed-out>Signed out everywhere</h1>"
        "<p>The shared session was deleted from the store, so every site -- "
        f"{escape(', '.join(urls))} -- asks for a sign-in on its next page.</p>"
        f"<ul>{links}</ul>"
        + panel_html(site, urls[site], user=None, session=None, handoff=handoff)
    ).encode()
