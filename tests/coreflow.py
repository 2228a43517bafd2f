"""tests/flow.py's deployment with no server interface: the core's sides driven by hand.

The same three apps -- the IdP ``http://id.test`` and the remotes
``http://shop.test`` (protects ``/orders``, ``/read``, ``/write``) and
``http://blog.test`` (protects everything) -- as
:class:`~sessionshare.core.idp.IdpSide` and
:class:`~sessionshare.core.remote.RemoteSide` over one :class:`MemoryStore`,
each request run through :func:`coredrive.visit`: a request in, the core's
store steps, an answer out. That is what every shell does, at the cost of a
function call; so a decision of the hand-off -- which token, state, cookie
or request is refused, and with which reason -- is tested here, where it is
made, against a whole table of cases. Each flow keeps one row per shell and
store through the real middlewares (tests/flow.py) to show the wiring.

:class:`Browser` has flow.Browser's vocabulary (``get``, ``post``,
``start_login``, ``sign_in``, ``token_url_for``, ``sign_in_at``, a cookie jar
per origin) and answers with :class:`Answer`: the library's own reply, or
the pass-through to the app with the user the app would see.

    dep = CoreDeployment()
    browser = Browser(dep)
    url = browser.token_url_for(SHOP + "/orders")
    assert browser.get(url + "x").reason == "bad_seal"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from conftest import FakeClock
from coredrive import visit
from flow import BLOG, IDP, LOGIN, PASSWORDS, SHOP

from sessionshare import MemoryStore, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import Side
from sessionshare.core.steps import run

__all__ = ["Answer", "Browser", "CoreDeployment", "snapshot"]

_HOSTS = {"id.test": IDP, "shop.test": SHOP, "blog.test": BLOG}


@dataclass
class Answer:
    """One response: the library's :class:`Reply`, or the app's page (``passed``)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: The request went on to the app (no answer of the library's).
    passed: bool = False
    #: The user the app saw (``REMOTE_USER``), when it ran.
    user: str | None = None
    #: The query string the app saw, when it ran (the request's, unless the side handed
    #: on another).
    query: str | None = None

    @property
    def status_int(self) -> int:
        return self.status

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    @property
    def location(self) -> str | None:
        return self.header("Location")

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        """The reason code of an error page or JSON body."""
        if self.header("Content-Type") == "application/json":
            return str(self.json["error"])
        text, marker = self.body.decode(), "Reason: <code>"
        start = text.index(marker) + len(marker)
        return text[start:text.index("</code>", start)]


class CoreDeployment:
    """Three sides sharing one memory store, one sync key and one clock.

    ``events`` collects every event the sides emit (``on_event``), by name.
    """

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        key: str | None = None,
        store: MemoryStore | None = None,
        idp_options: Mapping[str, Any] | None = None,
        remote_options: Mapping[str, Any] | None = None,
        idp_url: str = IDP,
    ) -> None:
        self.clock = clock or FakeClock()
        self.store = store or MemoryStore(clock=self.clock)
        self.key = key or SyncKey.generate()
        self.events: list[tuple[str, dict[str, Any]]] = []
        common: dict[str, Any] = {
            "key": self.key, "cookie_secure": False, "clock": self.clock, "quiet_startup": True,
            "on_event": lambda name, fields: self.events.append((name, dict(fields))),
        }
        self.idp = IdpSide(app_url=idp_url, **{**common, "known_remote_hosts": [SHOP, BLOG],
                                               **(idp_options or {})})
        self.shop = RemoteSide(app_url=SHOP, idp_url=LOGIN, **{
            "protect": ["/orders", "/read", "/write"], **common, **(remote_options or {})})
        self.blog = RemoteSide(app_url=BLOG, idp_url=LOGIN,
                               **{**common, **(remote_options or {})})
        self.sides: dict[str, Side] = {IDP: self.idp, SHOP: self.shop, BLOG: self.blog}

    def drive(self, steps: Any) -> Any:
        return run(steps, self.store)

    def count(self, event: str) -> int:
        return sum(1 for name, _ in self.events if name == event)


def snapshot(store: MemoryStore, *, tickets: bool = True) -> dict[str, object]:
    """Every stored session (and ticket), TTLs aside: nothing may change on a rejection."""
    return {
        **{k: (v.fields, v.meta) for k, v in store.sessions().items()},
        **({k: v.value for k, v in store.tickets().items()} if tickets else {}),
    }


@dataclass
class _Cookie:
    value: str
    path: str = "/"


@dataclass
class Browser:
    """One browser: a cookie jar per origin (honouring ``Path``), requests for the sides."""

    dep: CoreDeployment
    jars: dict[str, dict[str, _Cookie]] = field(default_factory=dict)
    #: Replaces the origins' sides, like swapping a WebTest app (a rogue IdP, say).
    sides: dict[str, Side] = field(default_factory=dict)

    # -- cookies ---------------------------------------------------------------
    def cookie(self, host: str, name: str = "sessionshare") -> str | None:
        kept = self.jar(_HOSTS.get(host, host)).get(name)
        return None if kept is None else kept.value

    def jar(self, origin: str) -> dict[str, _Cookie]:
        return self.jars.setdefault(origin, {})

    def set_cookie(self, origin: str, name: str, value: str, path: str = "/") -> None:
        self.jar(origin)[name] = _Cookie(value, path)

    def state_cookie(self, origin: str = SHOP) -> tuple[str, str]:
        """The one state cookie this browser holds at ``origin``."""
        (name,) = [k for k in self.jar(origin) if k.startswith("sessionshare_state")]
        return name, self.jar(origin)[name].value

    def cookie_header(self, origin: str, path: str) -> str:
        return "; ".join(f"{name}={c.value}" for name, c in self.jar(origin).items()
                         if path == c.path or path.startswith(c.path.rstrip("/") + "/"))

    def keep(self, origin: str, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name.lower() != "set-cookie":
                continue
            pair, *attributes = value.split(";")
            key, _, val = pair.strip().partition("=")
            path = "/"
            for attribute in attributes:
                attr, _, attr_value = attribute.strip().partition("=")
                if attr.lower() == "path":
                    path = attr_value
            if "Max-Age=0" in value:
                self.jar(origin).pop(key, None)
            else:
                self.jar(origin)[key] = _Cookie(val, path)

    # -- requests --------------------------------------------------------------
    def request(self, method: str, url: str, *, cookie: str | None = None,
                **headers: Any) -> tuple[Side, Request]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        # As a server hands the path over (WSGI PATH_INFO): decoded, bytes as latin-1.
        path = unquote(parts.path, encoding="latin-1")
        if cookie is None:
            cookie = self.cookie_header(origin, parts.path)
        headers.setdefault("accept", "text/html")
        side = self.sides.get(origin) or self.dep.sides[origin]
        return side, Request(method=method, path=path, query=parts.query, cookies=cookie,
                             host=parts.netloc, **headers)

    def send(self, method: str, url: str, *, form: Mapping[str, str] | None = None,
             app: Callable[[Session], None] | None = None, cookie: str | None = None,
             **headers: Any) -> Answer:
        """``url`` through its side: the library's answer, or the app's page."""
        side, request = self.request(method, url, cookie=cookie, **headers)
        if app is None:
            app = _idp_app(request, form) if _origin_of(url) == IDP else _remote_app(request)
        answer = visit(self.dep.drive, side, request, app)
        if isinstance(answer, Reply):
            result = Answer(answer.status, list(answer.headers), answer.body)
        else:
            passed, added = answer
            result = Answer(200, list(added), passed=True, user=Side.remote_user(passed.user),
                            query=request.query if passed.query is None else passed.query)
        if cookie is None:
            self.keep(_origin_of(url), result.headers)
        return result

    def get(self, url: str, **kwargs: Any) -> Answer:
        return self.send("GET", url, **kwargs)

    def post(self, url: str, form: Mapping[str, str] | None = None, **kwargs: Any) -> Answer:
        return self.send("POST", url, form=form, **kwargs)

    # -- the flow, as flow.Browser has it ----------------------------------------
    def start_login(self, remote_url: str) -> str:
        """Visit a protected page signed out; the IdP login URL it redirects to."""
        response = self.get(remote_url)
        assert response.status == 302 and response.location, response
        assert response.location.startswith(LOGIN + "?"), response
        return response.location

    def sign_in(self, login_url: str, user: str = "alice") -> Answer:
        """Open the IdP login page and post the form back to the same URL."""
        page = self.get(login_url)
        assert page.passed, page
        return self.post(login_url, {"username": user, "password": PASSWORDS[user]})

    def token_url_for(self, remote_url: str, user: str = "alice") -> str:
        """Run the flow up to the IdP's redirect back: the callback URL with its token."""
        login_url = self.start_login(remote_url)
        response = self.get(login_url)  # signed in at the IdP already: straight back
        if response.passed:  # the login form: fill it in
            response = self.post(login_url, {"username": user, "password": PASSWORDS[user]})
        assert response.status == 303 and response.location, response
        return response.location

    def sign_in_at(self, remote_url: str, user: str = "alice") -> Answer:
        """The whole flow; the page finally shown at the remote."""
        back = self.get(self.token_url_for(remote_url, user))
        assert back.status == 303 and back.location, back
        return self.get(_origin_of(remote_url) + back.location)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _idp_app(request: Request, form: Mapping[str, str] | None) -> Callable[[Session], None] | None:
    """flow.idp_app: the login form's POST signs its user in when the password matches."""
    if request.method != "POST" or request.path != "/login" or form is None:
        return None
    name = form.get("username", "")

    def sign_in(session: Session) -> None:
        if PASSWORDS.get(name) == form.get("password"):
            session["user"] = name

    return sign_in


def _remote_app(request: Request) -> Callable[[Session], None] | None:
    """flow.remote_app: ``/write?k=v`` writes the session, ``/read`` reads it."""
    if request.path == "/write":
        values = parse_qs(request.query)

        def write(session: Session) -> None:
            for name, value in values.items():
                session[name] = value[0]

        return write
    if request.path == "/read":
        return lambda session: None  # the app reads: loaded first
    return None
