"""Small WSGI plumbing shared by both middlewares.

Cookie headers (attributes computed once), request classification (is this
a browser navigation or an API call?), strict query parsing, the
return-path check, and :func:`send_reply`, which writes a
:class:`~sessionshare.core.reply.Reply` -- the library builds its redirects
and error pages there, without WSGI, and only sends them here.

Nothing here trusts a ``Host`` or ``X-Forwarded-Host`` header: every absolute
URL the library builds starts from a configured ``app_url``, because those
headers are set by the client and a proxy may pass them on unchecked.

    spec = CookieSpec("sessionshare", secure=True)
    headers.append(("Set-Cookie", spec.set("value")))
    return send_reply(environ, start_response, Reply.redirect("/", headers=headers))
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .core.reply import Reply
from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "CookieSpec",
    "accepts",
    "is_navigation",
    "query_params",
    "reply_body",
    "request_path",
    "safe_return_path",
    "send_reply",
    "wants_json",
]

MAX_QUERY_LENGTH = 4096
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENCODED_DANGER = re.compile(r"%(?:[01][0-9a-f]|7f|5c)")
_EXPIRED = "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"


class CookieSpec:
    """A cookie's name and attributes, validated and rendered once."""

    __slots__ = ("_attributes", "max_age", "name", "path", "secure")

    def __init__(
        self,
        name: str,
        *,
        secure: bool = True,
        httponly: bool = True,
        samesite: str | None = "Lax",
        path: str = "/",
        domain: str | None = None,
        max_age: int | None = None,
    ) -> None:
        if not _COOKIE_NAME.fullmatch(name):
            raise ConfigurationError(f"cookie name {name!r} has characters a cookie name cannot")
        if name.startswith("__Host-") and (not secure or path != "/" or domain):
            raise ConfigurationError(
                f"cookie {name!r}: a __Host- cookie needs secure=True, path='/' and no domain"
            )
        if name.startswith("__Secure-") and not secure:
            raise ConfigurationError(f"cookie {name!r}: a __Secure- cookie needs secure=True")
        parts = [f"Path={path}"]
        if domain:
            # Off by default: with a Domain attribute every sibling subdomain
            # would receive (and could overwrite) the cookie.
            parts.append(f"Domain={domain}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            value = _SAMESITE.get(samesite.lower())
            if value is None:
                raise ConfigurationError(
                    f"samesite must be Lax, Strict, None or unset, not {samesite!r}"
                )
            if value == "None" and not secure:
                raise ConfigurationError(
                    "samesite='None' needs secure=True (browsers drop it otherwise)"
                )
            parts.append(f"SameSite={value}")
        self.name = name
        self.secure = secure
        self.path = path
        self.max_age = max_age
        self._attributes = "; ".join(parts)

    def set(self, value: str, *, name: str | None = None) -> str:
        """A ``Set-Cookie`` value setting the cookie (or a sibling ``name``) to ``value``."""
        if self.max_age is not None:
            return f"{name or self.name}={value}; Max-Age={self.max_age}; {self._attributes}"
        return f"{name or self.name}={value}; {self._attributes}"

    def clear(self, *, name: str | None = None) -> str:
        """A ``Set-Cookie`` value deleting the cookie (or a sibling ``name``)."""
        return f"{name or self.name}=; {_EXPIRED}; {self._attributes}"

    def pattern(self, value_pattern: str, *, name: str | None = None) -> re.Pattern[str]:
        """A regex finding this cookie's value in a ``Cookie`` header."""
        # RFC 6265 lets a cookie value stand between double quotes. Only ";" separates
        # cookies: browsers accept "," inside a value, so reading "," as a separator would
        # let a sibling host toss `foo=x,<name>=...` and smuggle in a value for this
        # cookie -- its own session id or signed state (defeating __Host-). The pattern
        # serves the session cookie and the state cookies alike; `search` takes the first.
        escaped = re.escape(name or self.name)
        return re.compile(
            rf'(?:^|;)\s*{escaped}=(?:"({value_pattern})"|({value_pattern}))\s*(?:;|$)'
        )


def request_path(environ: WSGIEnvironment) -> str:
    """The request path (script name included) and query string, as received."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    # PEP 3333 hands the path over as latin-1 decoded bytes; keep it ASCII-safe.
    path = path.encode("latin-1", "replace").decode("ascii", "replace")
    return f"{path}?{query}" if query else path


def query_params(environ: WSGIEnvironment) -> dict[str, list[str]] | None:
    """The query string as name -> values, or None when it is oversized or unparsable."""
    query = environ.get("QUERY_STRING", "")
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


def accepts(accept: str, media_type: str) -> bool:
    """True when an ``Accept`` header names ``media_type`` with a quality above 0.

    Only an explicit mention counts (``*/*`` and ``text/*`` do not): most
    HTTP clients send a wildcard, while a browser loading a page names
    ``text/html``. ``q=0`` means "not acceptable" (RFC 9110, 12.5.1), so
    ``application/json, text/html;q=0`` does not name HTML; an entry whose
    quality does not parse is dropped rather than guessed at.
    """
    for value, quality in parse_accept_header(accept, MIMEAccept):
        if quality > 0 and value.split(";", 1)[0].strip().lower() == media_type:
            return True
    return False


def is_navigation(environ: WSGIEnvironment) -> bool:
    """True for a browser's top-level page load (which may be redirected cross-origin)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode is not None:
        return bool(mode == "navigate")
    return accepts(environ.get("HTTP_ACCEPT", ""), "text/html")


def wants_json(environ: WSGIEnvironment) -> bool:
    """True when an error should be JSON rather than a page."""
    accept = environ.get("HTTP_ACCEPT", "")
    if accepts(accept, "text/html"):
        return False
    return any(
        "json" in value.lower() and quality > 0
        for value, quality in parse_accept_header(accept, MIMEAccept)
    ) or not is_navigation(environ)


def reply_body(environ: WSGIEnvironment, reply: Reply) -> list[bytes]:
    """The body to hand the server: none for ``HEAD`` (the headers stay the same)."""
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]


def send_reply(
    environ: WSGIEnvironment, start_response: StartResponse, reply: Reply
) -> list[bytes]:
    """Send one of the library's own answers through WSGI."""
    start_response(reply.status_line, list(reply.headers))
    return reply_body(environ, reply)
