"""The demo's record of each hand-off, hop by hop: asked, answered, checked.

Demo only, and built from public surfaces alone: a WSGI wrapper outside each
site's middleware sees every request line, status and ``Location``, and a
logging handler on the ``sessionshare`` logger collects the events the
library logs while that request runs in its thread (``login_redirect``,
``ticket_issued``, ``ticket_redeemed``, ``token_rejected reason=...``): each
names a check the library made. Hops are tied into one hand-off by the
``state`` the remote started (it travels in the IdP's URL) and by the token
the IdP sent back -- of which only a SHA-256 digest is kept, in memory, to
recognise the callback; no token is stored, shown or printed.

A small ``demo_handoff`` cookie (a random record id, nothing secret) on each
answer of a hand-off tells that site's panel which hand-off this browser went
through last.

    timeline = Timeline({"idp": "http://idp.localhost:8000", ...})
    app = timeline.wrap("shop", shop_app)
    with timeline.listening():
        serve(app)
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from werkzeug.wsgi import ClosingIterator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["HANDOFF_COOKIE", "Handoff", "Hop", "Timeline", "redact_target"]

HANDOFF_COOKIE = "demo_handoff"
HOP_KEY = "sessionshare_demo.hop"  # environ: this request's Hop
HANDOFF_KEY = "sessionshare_demo.handoff"  # environ: the Handoff it belongs to, if any
KEEP = 200  # hand-offs remembered (oldest forgotten first)
MAX_HOPS = 12  # a hand-off retried again and again keeps its first hops

# What a library event says was checked, in words (the event's fields fill the braces).
CHECKS = {
    "login_redirect": "no signed-in shared session here: a new state, kept in a signed "
                      "state cookie; off to the IdP",
    "callback_rejected": "callback refused by the allow-list ({reason}): no hand-off",
    "login": "the app signed the user in: session id rotated (no fixation)",
    "ticket_issued": "callback on the allow-list, user signed in: a one-time ticket "
                     "stored, token sealed for {audience}",
    "ticket_redeemed": "token opened: seal, issuer, audience, age, state = this browser's "
                       "state cookie; ticket redeemed once; shared session adopted",
    "token_rejected": "token refused: {reason}",
    "handoff_refused": "the authorize hook refused this user {audience}",
    "logout": "signed out: the shared session deleted from the store",
    "store_unavailable": "the store did not answer: 503",
}

_current = threading.local()  # .events: the list the running request's events go to


@dataclass
class Hop:
    """One request of a hand-off and its answer."""

    site: str
    method: str
    target: str  # path and query as shown: token redacted, state shortened
    status: int | None = None  # None while the answer is being made
    to: str | None = None  # the site a redirect sends the browser to
    events: list[str] = field(default_factory=list)

    def checks(self, login_path: str = "/login") -> list[str]:
        """What this hop checked, in words, from the events the library logged."""
        said = [_describe(event) for event in self.events]
        said = [text for text in said if text]
        if not said and self.site == "idp" and self.target.startswith(login_path + "?"):
            said = (["callback on the allow-list, nobody signed in yet: the hand-off kept "
                     "pending, the login form shown"] if self.method == "GET" else
                    ["nobody signed in by this post: the form again"])
        elif not said and self.status is not None and self.status < 300:
            said = ["the page the sign-in came back to, signed in through the shared session"]
        return said


@dataclass
class Handoff:
    """The hops one browser made for one sign-in, from the remote's redirect on."""

    id: str
    hops: list[Hop] = field(default_factory=list)
    landing: tuple[str, str] | None = None  # (site, path) the callback sent the browser to


def _describe(event: str) -> str:
    name, _, rest = event.partition(" ")
    fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
    text = CHECKS.get(name)
    if text is None:
        return ""
    try:
        return text.format(**fields)
    except KeyError:
        return text.split(":")[0]


def redact_target(target: str, *, short_state: bool = False) -> str:
    """A request target with ``token`` values replaced by ``…`` (and states cut short).

    The rest stays exactly as written, so an access log line still says what
    was asked. A token is a one-time credential: it has no business in a log.
    """
    path, mark, query = target.partition("?")
    if not mark:
        return target
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and unquote(name) == "token":
            value = "…"
        elif equals and short_state and name == "state" and len(value) > 8:
            value = value[:8] + "…"
        parts.append(name + equals + value)
    return f"{path}?{'&'.join(parts)}"


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name, [])
    return values[0] if len(values) == 1 else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _EventCollector(logging.Handler):
    """Hands each ``sessionshare`` record to the request running in this thread."""

    def emit(self, record: logging.LogRecord) -> None:
        events = getattr(_current, "events", None)
        if events is not None:
            events.append(record.getMessage())


class Timeline:
    """The recent hand-offs of every browser, by state, token digest and record id."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)
        self._lock = threading.Lock()
        self._handoffs: OrderedDict[str, Handoff] = OrderedDict()
        self._by_state: dict[str, str] = {}
        self._by_token: dict[str, str] = {}

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Collect the library's events into hops while the block runs.

        The ``sessionshare`` logger is set to INFO meanwhile if it was quieter:
        the events that name the checks are INFO records.
        """
        logger = logging.getLogger("sessionshare")
        handler = _EventCollector(logging.INFO)
        previous = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)

    def last_for(self, environ: WSGIEnvironment) -> Handoff | None:
        """The hand-off this request belongs to, else the one this browser made last here."""
        handoff: Handoff | None = environ.get(HANDOFF_KEY)
        if handoff is not None:
            return handoff
        record_id = _cookie(environ, HANDOFF_COOKIE)
        with self._lock:
            return self._handoffs.get(record_id or "")

    def wrap(self, site: str, app: WSGIApplication) -> WSGIApplication:
        """``app`` with each request recorded as a hop of the hand-off it belongs to."""

        def recorded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            return self._record(site, app, environ, start_response)

        return recorded

    def _record(
        self, site: str, app: WSGIApplication, environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        path, query_text = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        target = path + ("?" + query_text if query_text else "")
        hop = Hop(site, environ.get("REQUEST_METHOD", "GET"),
                  unquote(redact_target(target, short_state=True)))
        query = parse_qs(query_text)
        handoff = self._joined(site, environ, query, target)
        if handoff is not None:
            environ[HANDOFF_KEY] = handoff
        environ[HOP_KEY] = hop

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            hop.status = int(status[:3])
            location = next((v for k, v in headers if k.lower() == "location"), None)
            record = self._answered(site, hop, handoff, location)
            if record is not None:
                headers = [*headers, ("Set-Cookie", f"{HANDOFF_COOKIE}={record.id}; Path=/; "
                                                    "HttpOnly; SameSite=Lax")]
            return start_response(status, headers, exc_info)

        _current.events = hop.events
        try:
            result = app(environ, recording_start_response)
        except BaseException:
            _current.events = None
            raise
        return ClosingIterator(result, [lambda: setattr(_current, "events", None)])

    def _joined(
        self, site: str, environ: WSGIEnvironment, query: Mapping[str, list[str]], target: str
    ) -> Handoff | None:
        """The hand-off a request continues: by its state, its token, or as its landing."""
        state, token = _one(query, "state"), _one(query, "token")
        with self._lock:
            if state is not None:
                record_id = self._by_state.get(state)
            elif token is not None:
                record_id = self._by_token.get(_digest(token))
            else:
                record_id = _cookie(environ, HANDOFF_COOKIE)
            handoff = self._handoffs.get(record_id or "")
            if handoff is None:
                return None
            if state is None and token is None:
                if handoff.landing != (site, target):
                    return None
                handoff.landing = None  # the page the sign-in came back to, once
            return handoff

    def _answered(
        self, site: str, hop: Hop, handoff: Handoff | None, location: str | None
    ) -> Handoff | None:
        """File the answered hop; a redirect carrying a new state starts a hand-off."""
        if location is not None:
            hop.to = self._site_of(location) or site
        query = parse_qs(urlsplit(location or "").query)
        state, token = _one(query, "state"), _one(query, "token")
        with self._lock:
            if handoff is None and state is not None and hop.to == "idp":
                handoff = self._start(state)
            if handoff is None:
                return None
            if len(handoff.hops) < MAX_HOPS:
                handoff.hops.append(hop)
            if token is not None:
                self._by_token[_digest(token)] = handoff.id
            if location is not None and location.startswith("/") and hop.to == site:
                handoff.landing = (site, location)
            self._handoffs.move_to_end(handoff.id)
            return handoff

    def _start(self, state: str) -> Handoff:
        handoff = Handoff(secrets.token_hex(8))
        self._handoffs[handoff.id] = handoff
        self._by_state[state] = handoff.id
        while len(self._handoffs) > KEEP:
            old, _ = self._handoffs.popitem(last=False)
            self._by_state = {s: i for s, i in self._by_state.items() if i != old}
            self._by_token = {t: i for t, i in self._by_token.items() if i != old}
        return handoff

    def _site_of(self, location: str) -> str | None:
        parts = urlsplit(location)
        origin = f"{parts.scheme}://{parts.netloc}"
        return next((name for name, url in self.urls.items() if url == origin), None)


def _cookie(environ: WSGIEnvironment, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # a malformed header from the network: no record, not an error
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
