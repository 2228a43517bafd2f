"""One deployment (an IdP and a remote shop over one store) and browsers that sign in.

Every session the scale benchmark reads, revokes or counts is made the way a
user makes one: a :class:`Browser` visits the shop's protected page, is sent
to the IdP, posts the login form, and is handed back to the shop -- the
library's own code writes the session, its index entry, the state claim and
the ticket. The benchmark never writes a session of its own invention; the
million sessions of :mod:`.population` are copies of these.

What a signed-in user holds (:func:`app_data`): 1,024 bytes of application
data as compact JSON -- the user's name, a cart, recent pages, a few flags,
padded to the size -- the same for the peers' sessions in :mod:`.memory`.

    deployment = Deployment(RedisStore.from_url(url), SyncKey.generate())
    browser = Browser(deployment)
    browser.sign_in("user-r0000001")
    browser.read()          # b"dark": one authenticated read at the shop
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.test import create_environ

from sessionshare import IdpAuthMiddleware, RedisStore, SessionAdmin, SyncKey

from .. import apps
from ..cases import Reply, call

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Bytes of application data in every session, as compact JSON.
APP_DATA_BYTES = 1024
#: The browser every session is signed in from (its index entry keeps the first 200 chars).
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
LOGIN_FORM = b"<form method=post>login form</form>"
REGENERATE_PATH = "/regenerate"
LOGOUT_PATH = "/_sessionshare/logout"


def app_data(user: str) -> dict[str, Any]:
    """What the app keeps for ``user``: APP_DATA_BYTES of compact JSON (same length for
    every user name of the same length)."""
    data: dict[str, Any] = {
        "user": user, "theme": "dark", "locale": "en-GB", "currency": "EUR",
        "cart": [{"sku": f"SKU-{i:05d}", "qty": i % 3 + 1, "price": 1999 + i} for i in range(6)],
        "recent": [f"/products/{1000 + 7 * i}" for i in range(8)],
        "flags": {"beta": True, "newsletter": False, "consent": "2026-01-01"},
        "csrf": "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
        "note": "",
    }
    data["note"] = "n" * (APP_DATA_BYTES - len(compact(data)))
    return data


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def form_user(environ: WSGIEnvironment) -> str:
    """The ``user`` field of a posted login form."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length)
    return parse_qs(body.decode()).get("user", [""])[0]


def idp_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A login form that signs in whoever posts it, with their 1 KB of app data; and a
    page that moves the session to a new id (``regenerate``)."""
    session = environ["sessionshare.session"]
    path = environ["PATH_INFO"]
    if path == "/login" and environ["REQUEST_METHOD"] == "POST":
        session.update(app_data(form_user(environ)))
    elif path == "/login":
        return apps.reply(start_response, LOGIN_FORM)
    elif path == REGENERATE_PATH:
        session.regenerate()
    return apps.hello(environ, start_response)


class Deployment:
    """The IdP and the shop over one store and sync key, and the admin API over them."""

    def __init__(self, store: RedisStore, key: SyncKey | str) -> None:
        self.store = store
        self.key = key
        self.idp = IdpAuthMiddleware(idp_app, store=store, key=key, app_url=apps.IDP,
                                     known_remote_hosts=["shop.example"])
        self.shop = apps.shop(store, key)
        self.admin = SessionAdmin(store, key)
        self.hosts: dict[str, WSGIApplication] = {
            urlsplit(apps.IDP).netloc: self.idp, urlsplit(apps.SHOP).netloc: self.shop,
        }

    def index_key(self, user: str) -> str:
        """The key of ``user``'s index (under the newest sync key)."""
        return str(self.admin.index.index_keys(user)[0])


class Browser:
    """One browser: a cookie jar per host, requests routed to the deployment's apps."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.jars: dict[str, dict[str, str]] = {}
        self.user = ""

    def request(self, url: str, method: str = "GET", form: str | None = None,
                **headers: str) -> tuple[Reply, bytes]:
        parts = urlsplit(url)
        jar = self.jars.setdefault(parts.netloc, {})
        headers = {"Accept": "text/html", "User-Agent": USER_AGENT, **headers}
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        environ = create_environ(
            path=parts.path, base_url=f"{parts.scheme}://{parts.netloc}",
            query_string=parts.query, method=method, data=form, headers=headers,
            content_type="application/x-www-form-urlencoded" if form is not None else None,
        )
        reply = Reply()
        body = call(self.deployment.hosts[parts.netloc], environ, reply)
        for name, value in reply.headers:
            if name.lower() != "set-cookie":
                continue
            pair, _, attributes = value.partition(";")
            cookie, _, text = pair.strip().partition("=")
            if not text or "max-age=0" in attributes.lower().replace(" ", ""):
                jar.pop(cookie, None)
            else:
                jar[cookie] = text
        return reply, body

    def expect(self, status: str, url: str, method: str = "GET", form: str | None = None,
               **headers: str) -> tuple[Reply, bytes]:
        reply, body = self.request(url, method, form, **headers)
        if not reply.status.startswith(status):
            raise RuntimeError(f"{method} {url}: {reply.status} {body[:200]!r}, expected {status}")
        return reply, body

    def sign_in(self, user: str) -> None:
        """The whole flow: shop -> IdP login form -> sign-in POST -> shop callback."""
        reply, _ = self.expect("302", apps.SHOP + apps.READ_PATH)
        login = reply.header("Location")
        _, body = self.expect("200", login)
        if body != LOGIN_FORM:
            raise RuntimeError(f"the IdP showed no login form: {body[:200]!r}")
        reply, _ = self.expect("303", login, "POST", f"user={user}")
        reply, _ = self.expect("303", reply.header("Location"))  # the shop's callback
        self.user = user
        if self.read() != b"dark":
            raise RuntimeError(f"{user}: the shop did not read the signed-in session")

    def hand_off_again(self) -> None:
        """Forget the shop's cookie and come back: the IdP (signed in) hands off at once."""
        self.jars.pop(urlsplit(apps.SHOP).netloc, None)
        reply, _ = self.expect("302", apps.SHOP + apps.READ_PATH)
        reply, _ = self.expect("303", reply.header("Location"))
        self.expect("303", reply.header("Location"))

    def read(self) -> bytes:
        return self.expect("200", apps.SHOP + apps.READ_PATH)[1]

    def write(self) -> bytes:
        return self.expect("200", apps.SHOP + apps.WRITE_PATH)[1]

    def regenerate_at_idp(self) -> None:
        self.expect("200", apps.IDP + REGENERATE_PATH)

    def log_out_at_shop(self) -> None:
        self.expect("303", apps.SHOP + LOGOUT_PATH, "POST", "", Origin=apps.SHOP)

    def shop_cookie(self) -> str:
        """The ``Cookie`` header the shop gets from this browser."""
        jar = self.jars.get(urlsplit(apps.SHOP).netloc, {})
        return "; ".join(f"{k}={v}" for k, v in jar.items())

    def session_key(self) -> str:
        """The store key of the session this browser holds at the shop."""
        shop = self.deployment.shop
        sid = shop.side.lifecycle.session_id_in(self.shop_cookie())
        if sid is None:
            raise RuntimeError(f"{self.user}: no genuine session cookie at the shop")
        return str(shop.side.lifecycle.session_key(sid))
