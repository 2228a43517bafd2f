"""The one reply type: every answer sessionshare writes itself, as plain data.

A :class:`Reply` is a status code, a tuple of headers and a body, frozen.
The library's own answers (redirects, errors, the 503 of a store outage, the
sign-out page, a notice) are built here by its constructors and nowhere else,
from the few request facts they need (``as_json``) and nothing of WSGI or
ASGI; a shell sends one in a few lines (``sessionshare.wsgi.environ.send_reply``,
``sessionshare.asgi.scope.send_reply``).

What every reply here guarantees, whichever shell sends it:

- ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``: a
  hand-off URL carries a token or a callback, which must neither be cached
  nor leak to the next site as a ``Referer``;
- error bodies carry a stable reason code and a message, never a secret
  (no token, ticket, session id or key), HTML-escaped in pages and served
  with ``X-Content-Type-Options: nosniff``, so text from the request cannot
  become markup;
- ``Content-Length`` is always the full body's: a shell answering ``HEAD``
  drops the body, not the header (RFC 9110, 9.3.2).

    reply = Reply.error(403, "bad_state", "This sign-in link is not valid.", as_json=False)
    reply = Reply.redirect("/orders", headers=[("Set-Cookie", cookie)])
    start_response(reply.status_line, list(reply.headers)); body = [reply.body]
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from ..errors import Reason

__all__ = ["NO_STORE", "RETRY_AFTER", "Header", "Reply"]

Header = tuple[str, str]

#: On every reply of the library: never cached, and its URL (with a token or
#: a callback in it) never sent on as a ``Referer``.
NO_STORE: tuple[Header, ...] = (("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"))

#: Seconds a client is asked to wait after a store outage: long enough for a
#: Redis failover to finish, short enough that a user retrying by hand is not
#: kept waiting.
RETRY_AFTER = 2

_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Sign-in refused",
    405: "Method not allowed",
    503: "Service unavailable",
}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as data: ``status`` code, ``headers`` in order, whole ``body``."""

    status: int
    headers: tuple[Header, ...]
    body: bytes = b""

    @property
    def status_line(self) -> str:
        """``"303 See Other"``: the code and its standard phrase."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    # -- the library's answers ------------------------------------------------
    @classmethod
    def redirect(
        cls, location: str, *, status: int = 303, headers: Iterable[Header] = ()
    ) -> Reply:
        """A redirect to ``location`` (303 by default: the browser must GET the next page,
        never re-send a form). ``location`` must already be safe -- an allow-listed
        callback or a checked same-origin path: nothing here checks it again."""
        return cls(status, (("Location", location), ("Content-Length", "0"), *NO_STORE, *headers))

    @classmethod
    def error(
        cls,
        status: int,
        reason: Reason,
        message: str,
        *,
        as_json: bool,
        headers: Iterable[Header] = (),
        extra: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> Reply:
        """A short error page, or JSON for an API client, carrying a reason code.

        ``message`` and ``extra`` are shown to the client: they must hold
        nothing secret. A ``login_url`` in ``extra`` becomes a link on the page.
        ``title`` heads the page instead of the status's usual one (a refused
        sign-out is no "Sign-in refused").
        """
        if as_json:
            body = json.dumps({"error": reason, "message": message, **(extra or {})})
        else:
            title = title or _TITLES.get(status, "Error")
            link = ""
            if extra and "login_url" in extra:
                link = f'<p><a href="{html.escape(extra["login_url"])}">Sign in</a></p>'
            body = (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
                    f"<h1>{title}</h1><p>{html.escape(message)}</p>"
                    f"<p>Reason: <code>{html.escape(reason)}</code></p>{link}")
        return cls._page(status, body, as_json=as_json, headers=headers)

    @classmethod
    def notice(cls, title: str, message: str, *, link: str, as_json: bool) -> Reply:
        """A 200 page saying ``message``, with a link on to ``link`` (a same-origin path):
        an outcome that is no error and must not be a redirect (it would loop)."""
        if as_json:
            return cls._page(200, json.dumps({"message": message, "next": link}), as_json=True)
        return cls._page(
            200, f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
            f'<p><a href="{html.escape(link)}">Continue</a></p>', as_json=False,
        )

    @classmethod
    def _page(cls, status: int, text: str, *, as_json: bool,
              headers: Iterable[Header] = ()) -> Reply:
        """A page of ``text``: JSON for an API client, else markup (escaped already). Each
        caller builds only the form it answers in."""
        body = text.encode()
        return cls(status, (
            ("Content-Type", "application/json" if as_json else "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            # A browser must not sniff a page of the library's into script or markup.
            ("X-Content-Type-Options", "nosniff"),
            *NO_STORE,
            *headers,
        ), body)

    @classmethod
    def store_unavailable(cls, *, as_json: bool) -> Reply:
        """503 with ``Retry-After``: the store is down and the request fails closed."""
        return cls.error(
            503, "store_unavailable",
            "The session store is not reachable. Please try again in a moment.",
            as_json=as_json, headers=[("Retry-After", str(RETRY_AFTER))],
        )

    @classmethod
    def logout_form(cls, action: str) -> Reply:
        """The page a GET of the logout path shows: one button that POSTs to ``action``.

        Signing out is a POST (:meth:`~sessionshare.core.side.Side.logout` says why).
        Its referrer policy is ``same-origin``, not ``no-referrer``: a browser sends
        ``Origin: null`` on a POST from a ``no-referrer`` page (Fetch), which the
        sign-out's same-origin check refuses; ``same-origin`` still sends nothing to
        any other site.
        """
        body = (
            "<!doctype html><meta charset=utf-8><title>Sign out</title>"
            f'<form method="post" action="{html.escape(action)}">'
            "<p>Sign out of every connected site?</p>"
            '<button type="submit">Sign out</button></form>'
        ).encode()
        return cls(200, (
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "same-origin"),
        ), body)
