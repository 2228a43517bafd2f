"""Cookies: a name and its attributes, validated once, rendered per response.

The session cookie and the remote's state cookies are both a
:class:`CookieSpec`. Defaults are the safe ones: ``HttpOnly``, ``Secure``,
``SameSite=Lax``, ``Path=/`` and no ``Domain`` (a ``Domain`` attribute would
hand the cookie to every sibling subdomain). ``__Host-`` and ``__Secure-``
names are checked against the rules browsers enforce for them, at
construction rather than when a browser silently drops the cookie.

    spec = CookieSpec("__Host-sessionshare")
    header = spec.set(session_id)           # Set-Cookie value
    match = spec.pattern("[A-Za-z0-9_-]{43}").search(cookie_header)
"""

from __future__ import annotations

import re

from ..errors import ConfigurationError

__all__ = ["CookieSpec"]

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EXPIRED = "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"


class CookieSpec:
    """A cookie's name and attributes, validated and rendered once."""

    __slots__ = ("_attributes", "_flags", "max_age", "name", "path", "secure")

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
        parts = []
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
        self._flags = "; ".join(parts)
        self._attributes = self._with_path(path)

    def _with_path(self, path: str) -> str:
        return f"Path={path}; {self._flags}" if self._flags else f"Path={path}"

    def set(self, value: str, *, name: str | None = None, max_age: int | None = None,
            mount: str = "") -> str:
        """A ``Set-Cookie`` value setting the cookie (or a sibling ``name``) to ``value``;
        ``max_age`` overrides the spec's own (a persistent cookie for this answer);
        ``mount`` (a URL path: the request's mount point) goes in front of the path."""
        max_age = self.max_age if max_age is None else max_age
        attributes = self._with_path(mount + self.path) if mount else self._attributes
        if max_age is not None:
            return f"{name or self.name}={value}; Max-Age={max_age}; {attributes}"
        return f"{name or self.name}={value}; {attributes}"

    def clear(self, *, name: str | None = None, mount: str = "") -> str:
        """A ``Set-Cookie`` value deleting the cookie (or a sibling ``name``) set with the
        same ``mount``."""
        attributes = self._with_path(mount + self.path) if mount else self._attributes
        return f"{name or self.name}=; {_EXPIRED}; {attributes}"

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
