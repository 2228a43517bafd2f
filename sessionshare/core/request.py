"""The request as the protocol sees it: a few facts, no server interface.

A shell (WSGI, ASGI) builds one :class:`Request` per request; the protocol
reads only this, so the rules -- a browser navigation that may be redirected
or an API call that must get a 401? a safe return path? -- are written once.

No absolute URL the library builds comes from a ``Host`` or
``X-Forwarded-Host`` header, which the client sends and a proxy may pass on
unchecked: each starts from a configured ``app_url``. ``host`` only explains
a failure in the log (a site opened at another host than its ``app_url``).

    request = Request(method="GET", path="/orders", query="page=2",
                      cookies="sessionshare=...", accept="text/html")
    request.is_navigation        # True: a page load, may go to the IdP
    request.full_path            # "/orders?page=2", what a login returns to
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

__all__ = ["MAX_QUERY_LENGTH", "Request", "accepts", "safe_return_path"]

#: Longer query strings are refused (a hand-off's is under 700 bytes).
MAX_QUERY_LENGTH = 4096
# RFC 3986 path characters kept in a mount point, minus the cookie separators ";" and ",".
_MOUNT_SAFE = "/!$&'()*+=:@"
_ENCODED_DANGER = re.compile(r"%(?:[01][0-9a-f]|7f|5c)")


class Request:
    """What the protocol needs of one request (read-only by convention).

    :param method: ``GET``, ``POST``, ...
    :param path: the path within the app (WSGI ``PATH_INFO``), which routing uses.
    :param query: the raw query string, without ``?``.
    :param cookies: the raw ``Cookie`` header.
    :param accept: the ``Accept`` header.
    :param fetch_mode: the ``Sec-Fetch-Mode`` header, None when the browser sent none;
        ``"websocket"`` for a websocket's handshake, whatever the client sent.
    :param origin: the ``Origin`` header, None when the client sent none.
    :param fetch_site: the ``Sec-Fetch-Site`` header, None when the browser sent none.
    :param purpose: the ``Sec-Purpose`` (or older ``Purpose``) header: ``prefetch``
        or ``prerender`` when the browser only fetches ahead, None otherwise.
    :param user_agent: the ``User-Agent`` header ("" when none), for the per-user index.
    :param host: the ``Host`` header ("" when none): for log messages only, never a URL.
    :param root: the app's mount point (WSGI ``SCRIPT_NAME``), kept in return paths.
    :param native: the server interface's own request (the WSGI environ, the ASGI
        scope), handed to the app's own predicates such as a ``protect`` callable.
    """

    # Not a frozen dataclass: one is built per request, at several times the cost.
    __slots__ = ("_params", "accept", "cookies", "fetch_mode", "fetch_site", "has_bad_path",
                 "host", "is_websocket", "method", "native", "origin", "path", "purpose", "query",
                 "root", "user_agent")

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        cookies: str = "",
        accept: str = "",
        fetch_mode: str | None = None,
        root: str = "",
        native: Any = None,
        origin: str | None = None,
        fetch_site: str | None = None,
        purpose: str | None = None,
        user_agent: str = "",
        host: str = "",
    ) -> None:
        self.method = method
        self.path = path
        #: True when the path is neither empty nor starts with ``/`` (gunicorn makes
        #: ``PATH_INFO="ping/orders"`` of ``/shopping/orders`` under ``SCRIPT_NAME=/shop``).
        #: Routers disagree on what it means, so no prefix check can be sure to see the
        #: path the app will serve: such a request is refused (fail closed).
        self.has_bad_path = bool(path) and path[0] != "/"
        self.query = query
        self.cookies = cookies
        self.accept = accept
        self.fetch_mode = fetch_mode
        #: True for a websocket's opening handshake (both shells hand one over with
        #: ``fetch_mode="websocket"``): no redirect, cookie or sign-out can reach its page.
        self.is_websocket = fetch_mode == "websocket"
        self.root = root
        self.native = native
        self.origin = origin
        self.fetch_site = fetch_site
        self.purpose = purpose
        self.user_agent = user_agent
        self.host = host
        self._params: dict[str, list[str]] | None | bool = False  # False: not parsed yet

    def __repr__(self) -> str:
        # No cookies: they hold the session id.
        return f"Request({self.method} {self.root}{self.path})"

    @property
    def params(self) -> dict[str, list[str]] | None:
        """The query string as name -> values, or None when oversized or unparsable."""
        if self._params is False:
            self._params = _parse_query(self.query)
        return self._params  # type: ignore[return-value]

    @property
    def mount(self) -> str:
        """The mount point as a URL path, in front of the library's own paths (the
        callback, the state cookies' ``Path``, the sign-out form's action): behind a
        proxy that strips ``/news``, only ``/news/...`` reaches the app.

        Percent-encoded, so that a mount point holding ``;`` (say) cannot add an
        attribute to a ``Set-Cookie`` header or a parameter to a URL.
        """
        if not self.root:
            return ""
        return quote(self.root.encode("latin-1", "replace"), safe=_MOUNT_SAFE)

    @property
    def full_path(self) -> str:
        """Mount point, path and query string, as received (ASCII-safe)."""
        path = (self.root + self.path).encode("latin-1", "replace").decode("ascii", "replace")
        return f"{path}?{self.query}" if self.query else path

    @property
    def is_prefetch(self) -> bool:
        """True when the browser only fetches ahead (prefetch, prerender): no one looks yet."""
        return self.purpose is not None and (
            "prefetch" in self.purpose.lower() or "prerender" in self.purpose.lower()
        )

    @property
    def is_navigation(self) -> bool:
        """True for a browser's top-level page load (which may be redirected cross-origin)."""
        if self.method not in ("GET", "HEAD"):
            return False
        if self.fetch_mode is not None:
            return self.fetch_mode == "navigate"
        return accepts(self.accept, "text/html")

    def origin_is(self, origins: frozenset[str]) -> bool:
        """True when the ``Origin`` header names one of ``origins`` (canonical, lower-case).

        No ``Origin`` at all is *not* one of them: every browser sends it on a
        websocket handshake (RFC 6455, 4.1), so only a non-browser client omits it,
        and such a client can send it itself.
        """
        return self.origin is not None and self.origin.strip().lower() in origins

    def is_same_origin(self, origin: str) -> bool:
        """False when the browser says this request was sent by a page of another origin.

        ``origin`` is the app's own canonical origin. ``Sec-Fetch-Site`` must be
        ``same-origin`` and ``Origin`` must equal ``origin``, each where present.
        ``SameSite=Lax`` alone is not enough for a state-changing POST: a sibling
        subdomain is *same-site*, so its page posts with the cookie attached.
        A request carrying neither header passes: every browser that sends no
        ``Sec-Fetch-Site`` still sends ``Origin`` on a POST (``null`` for an
        opaque origin fails), so only a client that holds the cookie itself and
        needs no forgery (curl), or a pre-2020 browser, sends neither.
        """
        if self.fetch_site is not None and self.fetch_site.strip().lower() != "same-origin":
            return False
        return self.origin is None or self.origin.strip().lower() == origin

    @property
    def wants_json(self) -> bool:
        """True when an error should be JSON rather than a page."""
        if accepts(self.accept, "text/html"):
            return False
        return any(
            "json" in value.lower() and quality > 0
            for value, quality in parse_accept_header(self.accept, MIMEAccept)
        ) or not self.is_navigation


def _parse_query(query: str) -> dict[str, list[str]] | None:
    if len(query) > MAX_QUERY_LENGTH:
        return None
    params: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=64)
    except (ValueError, UnicodeDecodeError):
        return None
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def accepts(accept: str, media_type: str) -> bool:
    """True when an ``Accept`` header names ``media_type`` with a quality above 0.

    Only an explicit mention counts: most HTTP clients send ``*/*``, while a
    browser loading a page names ``text/html``. ``q=0`` means "not acceptable"
    (RFC 9110, 12.5.1); a quality that does not parse drops its entry.
    """
    for value, quality in parse_accept_header(accept, MIMEAccept):
        if quality > 0 and value.split(";", 1)[0].strip().lower() == media_type:
            return True
    return False


def safe_return_path(path: object, default: str = "/") -> str:
    """``path`` if it is a same-origin relative path, else ``default``.

    Accepts one leading slash and printable ASCII without backslashes:
    ``//evil.com``, ``/\\evil.com``, ``/%09/evil.com`` (a tab after decoding),
    ``https://evil.com`` and ``javascript:`` all fall back to ``default``.
    """
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path.startswith("//")
        or len(path) > 2048
        or not path.isascii()
        or "\\" in path
        or any(ch <= " " or ch == "\x7f" for ch in path)
    ):
        return default
    lowered = path.lower()
    # Encoded slashes, backslashes and control characters are decoded by some
    # servers and browsers before the path is resolved: refuse them too.
    if lowered.startswith(("/%2f", "/%5c")) or _ENCODED_DANGER.search(lowered):
        return default
    return path
