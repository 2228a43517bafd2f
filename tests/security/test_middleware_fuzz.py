"""Property-based fuzzing of both middlewares with random tokens, states, cookies and queries.

Every example is one request, built the way a WSGI server builds it (bytes
decoded as latin-1), sent straight to the real middleware of a deployment
that is reused across examples (as a long-running server is): the WSGI and
the ASGI middlewares, each over a memory store. For every input, whatever
it is:

- nothing is raised to the server, and the status is never 5xx;
- the IdP's ``Location`` is absent, its own page, or an allow-listed
  callback in canonical form carrying a token (:func:`check_idp_location`);
- a remote's ``Location`` is absent, the IdP login URL with its own
  callback, or same-origin by a browser's rules
  (:func:`check_remote_location`);
- a remote's callback never adopts a session for input that is not the
  genuine token with its genuine state cookie.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flow import BLOG, IDP, SHOP, Browser
from hypothesis import event, given
from hypothesis import strategies as st

from sessionshare import AllowList, MemoryStore, SessionStore

from .corpus import ALLOWED, CB
from .deploy import STATE, remote_login_prefix, security_deployment, sign_in_at_idp
from .harness import (
    Reply,
    call,
    check_idp_location,
    check_remote_location,
    environ_for,
    is_same_origin_location,
)
from .profiles import budget
from .strategies import callback_urls, query_values, return_paths, wsgi_text

ALLOW = AllowList(ALLOWED)
METHODS = st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "OPTIONS", "get", ""])
ACCEPTS = st.sampled_from([None, "text/html", "application/json", "*/*", ""])


class Fuzzed:
    """One deployment with a signed-in browser, shared by every example of a test."""

    def __init__(self, store: SessionStore, clock: Callable[[], float], shell: str) -> None:
        self.dep = security_deployment(store, clock, shell=shell)
        browser = Browser(self.dep)
        sign_in_at_idp(browser)
        self.idp_cookie = f"sessionshare={browser.cookie('id.test')}"
        self.token_url = browser.token_url_for(SHOP + "/orders")
        self.state_cookie = "; ".join(
            f"{k}={v}" for k, v in browser.apps["shop.test"].cookies.items()
        )

    def idp(self, environ: dict[str, Any]) -> Reply:
        reply = call(self.dep.idp, environ)
        assert reply.status < 500, reply
        check_idp_location(reply, ALLOW, IDP)
        return reply

    def remote(self, app_origin: str, environ: dict[str, Any]) -> Reply:
        app = self.dep.shop if app_origin == SHOP else self.dep.blog
        reply = call(app, environ)
        assert reply.status < 500, reply
        check_remote_location(reply, app_origin, remote_login_prefix(app_origin))
        return reply


@pytest.fixture
def fuzzed(clock: Callable[[], float], shell: str) -> Fuzzed:
    # Under each shell, which turns the random bytes into the request the core reads; on a
    # memory store only: no fuzzed input reaches a store command but as a digest key, and
    # the store contract is the same on Redis (test_store.py, test_store_async.py).
    return Fuzzed(MemoryStore(clock=clock), clock, shell)


# -- the IdP -------------------------------------------------------------------------------


@budget(1)
@given(query=wsgi_text(), signed_in=st.booleans(), method=METHODS, accept=ACCEPTS)
def test_idp_login_with_random_query_bytes(fuzzed: Fuzzed, query: str, signed_in: bool,
                                           method: str, accept: str | None) -> None:
    cookie = fuzzed.idp_cookie if signed_in else None
    fuzzed.idp(environ_for(method, "/login", query, host="id.test", cookie=cookie,
                           accept=accept))


@budget(2)
@given(callback=callback_urls(), state=st.one_of(st.just(STATE), query_values()),
       signed_in=st.booleans())
def test_idp_login_with_random_callback_and_state(fuzzed: Fuzzed, callback: str, state: str,
                                                  signed_in: bool) -> None:
    query = f"callback={_q(callback)}&state={_q(state)}"
    cookie = fuzzed.idp_cookie if signed_in else None
    reply = fuzzed.idp(environ_for("GET", "/login", query, host="id.test", cookie=cookie))
    event(f"status {reply.status}")
    if reply.location is not None and reply.status == 303:
        # A hand-off happened: only for an allowed callback and a valid state.
        assert ALLOW.is_allowed_callback(callback) and signed_in
        assert reply.location.startswith(ALLOW.check_callback(callback).url + "?token=")
    if not signed_in and reply.status == 200:
        # Pending: posting the login form must hand off to that same canonical callback, or
        # not at all.
        form = environ_for("POST", "/login", query, host="id.test",
                           cookie=_cookie_from(reply) or None,
                           extra=_form(b"username=bob&password=builder"))
        done = fuzzed.idp(form)
        event(f"after the login form: {done.status}")
        if done.location is not None and "token=" in done.location:
            assert done.location.startswith(ALLOW.check_callback(callback).url + "?token=")


@budget(1)
@given(cookie=wsgi_text(), path=st.sampled_from(["/login", "/", "/_sessionshare/logout"]),
       method=METHODS)
def test_idp_with_random_cookie_header(fuzzed: Fuzzed, cookie: str, path: str,
                                       method: str) -> None:
    query = f"callback={quote(SHOP + CB, safe='')}&state={STATE}"
    fuzzed.idp(environ_for(method, path, query, host="id.test", cookie=cookie))


# -- the remotes ---------------------------------------------------------------------------


@budget(2)
@given(token=st.one_of(query_values(), wsgi_text(600)), with_state=st.booleans(),
       method=METHODS)
def test_remote_callback_with_random_token(fuzzed: Fuzzed, token: str, with_state: bool,
                                           method: str) -> None:
    genuine = fuzzed.token_url.partition("?token=")[2]
    query = f"token={_q(token)}"
    cookie = fuzzed.state_cookie if with_state else None
    reply = fuzzed.remote(SHOP, environ_for(method, CB, query, cookie=cookie))
    event(f"status {reply.status}")
    if token != genuine or method != "GET":
        assert reply.status == 403 and reply.location is None
        assert not [c for c in reply.cookies() if c.startswith("sessionshare=")]


@budget(2)
@given(data=st.data())
def test_remote_callback_with_a_mutated_genuine_token(fuzzed: Fuzzed, data: st.DataObject) -> None:
    genuine = fuzzed.token_url.partition("?token=")[2]
    chars = list(genuine)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["replace", "insert", "delete", "swap"]))
        i = data.draw(st.integers(0, max(0, len(chars) - 1)))
        if kind == "replace" and chars:
            chars[i] = data.draw(st.sampled_from("ABCabc012-_+/=.~%"))
        elif kind == "insert":
            chars.insert(i, data.draw(st.sampled_from("Aa0-_=+/ \t")))
        elif kind == "delete" and len(chars) > 1:
            del chars[i]
        elif kind == "swap" and len(chars) > 1:
            j = data.draw(st.integers(0, len(chars) - 1))
            chars[i], chars[j] = chars[j], chars[i]
    token = "".join(chars)
    reply = fuzzed.remote(SHOP, environ_for("GET", CB, f"token={quote(token, safe='')}",
                                            cookie=fuzzed.state_cookie))
    if token != genuine:
        assert reply.status == 403 and reply.location is None, (token, reply)
        assert not reply.cookies()


@budget(1)
@given(query=wsgi_text(), cookie=st.one_of(st.none(), wsgi_text()), method=METHODS)
def test_remote_callback_with_random_query_and_cookie(fuzzed: Fuzzed, query: str,
                                                      cookie: str | None, method: str) -> None:
    reply = fuzzed.remote(SHOP, environ_for(method, CB, query, cookie=cookie))
    assert reply.status == 403 and reply.location is None
    assert not reply.cookies()


@budget(2)
@given(path=st.one_of(return_paths(), wsgi_text(80)), query=wsgi_text(80),
       cookie=st.one_of(st.none(), wsgi_text(120)), method=METHODS, accept=ACCEPTS)
def test_remote_pages_with_random_path_query_and_cookie(
    fuzzed: Fuzzed, path: str, query: str, cookie: str | None, method: str, accept: str | None
) -> None:
    for origin in (SHOP, BLOG):
        reply = fuzzed.remote(origin, environ_for(method, path, query, host=origin[7:],
                                                  cookie=cookie, accept=accept))
        event(f"status {reply.status}")
        if origin == SHOP and reply.status == 200:
            # The app answered: the path was not a spelling of a protected page.
            assert not _looks_protected(path), (path, reply)
        if reply.status == 302:
            # Off to the IdP: the page saved for the way back must be same-origin.
            app = fuzzed.dep.shop if origin == SHOP else fuzzed.dep.blog
            (state_cookie,) = [c for c in reply.cookies() if c.startswith("sessionshare_state")]
            value = state_cookie.split("=", 1)[1].split(";", 1)[0]
            _, back = app.side.state_signer.loads(value)
            assert is_same_origin_location(back, origin), back


# -- helpers -------------------------------------------------------------------------------


def _q(text: str) -> str:
    # Lone surrogates become the bytes a broken client would send (invalid UTF-8).
    return quote(text, safe="", errors="surrogatepass")


def _looks_protected(path: str) -> bool:
    # shop.test protects /orders, /read and /write, each with everything below it and its
    # format suffixes and path parameters (whole segments: /orders0 is another page); a
    # framework may merge slashes and resolve dot segments before routing.
    merged = posixpath.normpath(re.sub("/+", "/", path)) if path else "/"
    prefixes = ("/orders", "/read", "/write")
    below = tuple(prefix + end for prefix in prefixes for end in "/.;")
    return any(p in prefixes or p.startswith(below) for p in (path, merged))


def _cookie_from(reply: Reply) -> str:
    return "; ".join(c.split(";", 1)[0] for c in reply.cookies() if "Max-Age=0" not in c)


def _form(body: bytes) -> dict[str, Any]:
    return {
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
