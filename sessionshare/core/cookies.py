"""Cookies: a name and its attributes, validated once, rendered per response.

The session cookie and the remote's state cookies are both a :class:`CookieSpec`.
Defaults are the safe ones: ``HttpOnly``, ``Secure``, ``SameSite=Lax``, ``Path=/``,
no ``Domain``. ``__Host-``/``__Secure-`` names and ``Partitioned`` are checked
against the rules browsers enforce, at construction rather than when a browser
silently drops the cookie. Given ``now``, a persistent cookie carries ``Expires``
(for older clients and caches) beside ``Max-Age``.

    spec = CookieSpec("__Host-sessionshare")
    header = spec.set(session_id, max_age=3600, now=time.time())   # Set-Cookie value
    match = spec.pattern("[A-Za-z0-9_-]{43}").search(cookie_header)

:func:`cookie_conflicts` says which of a framework's own settings for its session
cookie (Flask's ``SESSION_COOKIE_*``) cannot hold beside the middleware's, and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import formatdate
from functools import lru_cache
from typing import Any, NamedTuple

from ..errors import ConfigurationError

__all__ = ["ATTRIBUTES", "DEFAULT_COOKIE_NAME", "CookieConflict", "CookieSpec",
           "cookie_conflicts", "expires_date", "session_cookie", "spelling_problem"]

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
#: Fri, 31 Dec 9999 23:59:59 GMT: the last date an Expires attribute can write.
_LAST_DATE = 253_402_300_799
#: The session cookie's name when none is given, after a ``__Host-`` or ``__Secure-``
#: prefix where the cookie allows one (:func:`session_cookie`).
DEFAULT_COOKIE_NAME = "sessionshare"
#: The attributes a ``Set-Cookie`` of this module may carry, as RFC 6265 (and CHIPS, for
#: ``Partitioned``) writes their names: the keys a ``spelling`` may respell.
ATTRIBUTES = ("Expires", "Max-Age", "Domain", "Path", "Secure", "HttpOnly", "SameSite",
              "Partitioned")


def spelling_problem(spelling: Mapping[str, object]) -> str | None:
    """Why ``spelling`` is not one (attribute -> the same name in other letter case), or
    None. Browsers ignore the case (RFC 6265, 5.2); another name would change what the
    cookie is, which is not an adapter's to decide."""
    for attribute, written in spelling.items():
        if attribute not in ATTRIBUTES:
            return (f"{attribute!r} is not an attribute a spelling can respell "
                    f"(one of {', '.join(ATTRIBUTES)})")
        if not isinstance(written, str) or written.lower() != attribute.lower():
            return (f"{written!r} is not a spelling of {attribute}: only the letter case of "
                    "an attribute's name may change")
    return None


class CookieSpec:
    """A cookie's name and attributes, validated and rendered once."""

    __slots__ = ("_attributes", "_expired", "_expires", "_flags", "_max_age", "_path", "domain",
                 "httponly", "max_age", "name", "partitioned", "path", "samesite", "secure",
                 "spelling")

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
        partitioned: bool = False,
        spelling: Mapping[str, str] | None = None,
    ) -> None:
        """:param spelling: how attribute names are written, attribute (as
            :data:`ATTRIBUTES` writes it) -> the same name in other letter case, e.g.
            ``{"Path": "path"}``, for an adapter whose framework writes ``path=``. With
            a spelling the domain is written as given, a leading dot kept."""
        if not _COOKIE_NAME.fullmatch(name):
            raise ConfigurationError(f"cookie name {name!r} has characters a cookie name cannot")
        if name.startswith("__Host-") and (not secure or path != "/" or domain):
            raise ConfigurationError(
                f"cookie {name!r}: a __Host- cookie needs secure=True, path='/' and no domain"
            )
        if name.startswith("__Secure-") and not secure:
            raise ConfigurationError(f"cookie {name!r}: a __Secure- cookie needs secure=True")
        if partitioned and not secure:
            raise ConfigurationError(
                f"cookie {name!r}: a Partitioned cookie needs secure=True (browsers drop it "
                "otherwise)"
            )
        problem = spelling_problem(spelling or {})
        if problem is not None:
            raise ConfigurationError(f"cookie {name!r}: {problem}")
        #: How attribute names are written (see :func:`spelling_problem`); {} for RFC 6265's.
        self.spelling: Mapping[str, str] = dict(spelling or {})
        spelled = self.spelling.get
        parts = []
        # A leading dot means nothing to browsers (RFC 6265) and makes Werkzeug's test
        # client match no host; a framework's spelling keeps it (Starlette writes it).
        if not spelling:
            domain = domain.lstrip(".") if domain else None
        if domain:
            # Off by default: every sibling subdomain would receive (and could overwrite) it.
            parts.append(f"{spelled('Domain', 'Domain')}={domain}")
        if secure:
            parts.append(spelled("Secure", "Secure"))
        if httponly:
            parts.append(spelled("HttpOnly", "HttpOnly"))
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
            parts.append(f"{spelled('SameSite', 'SameSite')}={value}")
        if partitioned:
            # CHIPS: an app embedded in other sites' pages gets one cookie per embedding site.
            parts.append(spelled("Partitioned", "Partitioned"))
        self.name = name
        self.secure = secure
        self.httponly = httponly
        #: ``"Lax"``, ``"Strict"``, ``"None"``, or None for no attribute.
        self.samesite = None if samesite is None else _SAMESITE[samesite.lower()]
        self.domain = domain or None
        self.path = path
        self.max_age = max_age
        self.partitioned = partitioned
        self._flags = "; ".join(parts)
        self._path = spelled("Path", "Path")
        self._max_age = spelled("Max-Age", "Max-Age")
        self._expires = spelled("Expires", "Expires")
        self._expired = f"{self._expires}={_EPOCH}; {self._max_age}=0"
        self._attributes = self._with_path(path)

    def _with_path(self, path: str) -> str:
        return f"{self._path}={path}; {self._flags}" if self._flags else f"{self._path}={path}"

    def set(self, value: str, *, name: str | None = None, max_age: int | None = None,
            mount: str = "", now: float | None = None) -> str:
        """A ``Set-Cookie`` value setting the cookie (or a sibling ``name``) to ``value``;
        ``max_age`` overrides the spec's own (a persistent cookie for this answer);
        ``mount`` (a URL path: the request's mount point) goes in front of the path;
        ``now`` (seconds since the epoch) adds the ``Expires`` date of a persistent one."""
        max_age = self.max_age if max_age is None else max_age
        attributes = self._with_path(mount + self.path) if mount else self._attributes
        if max_age is None:
            return f"{name or self.name}={value}; {attributes}"
        if now is None:
            return f"{name or self.name}={value}; {self._max_age}={max_age}; {attributes}"
        return (f"{name or self.name}={value}; {self._expires}={expires_date(now, max_age)}; "
                f"{self._max_age}={max_age}; {attributes}")

    def clear(self, *, name: str | None = None, mount: str = "") -> str:
        """A ``Set-Cookie`` value deleting the cookie (or a sibling ``name``) set with the
        same ``mount``."""
        attributes = self._with_path(mount + self.path) if mount else self._attributes
        return f"{name or self.name}=; {self._expired}; {attributes}"

    def pattern(self, value_pattern: str, *, name: str | None = None) -> re.Pattern[str]:
        """A regex finding this cookie's value in a ``Cookie`` header."""
        # A value may stand between double quotes (RFC 6265). Only ";" separates cookies:
        # browsers accept "," inside a value, so reading "," as a separator would let a
        # sibling host smuggle in `foo=x,<name>=...`, its own session id or signed state
        # (defeating __Host-). `search` takes the first.
        escaped = re.escape(name or self.name)
        return re.compile(
            rf'(?:^|;)\s*{escaped}=(?:"({value_pattern})"|({value_pattern}))\s*(?:;|$)'
        )


def session_cookie(options: Mapping[str, Any]) -> CookieSpec:
    """The session cookie the ``cookie_*`` options (checked) describe."""
    name = options["cookie_name"]
    secure = options["cookie_secure"]
    if name is None:
        # __Host- wherever the browser allows it: a sibling subdomain can then neither set
        # nor shadow the cookie, so it cannot plant a session of its choosing (fixation).
        # At another path, __Secure-: no plain-http page can set it, at least.
        name = DEFAULT_COOKIE_NAME
        if secure and not options["cookie_domain"]:
            name = ("__Host-" if options["cookie_path"] == "/" else "__Secure-") + name
    return CookieSpec(name, secure=secure, samesite=options["cookie_samesite"],
                      domain=options["cookie_domain"], path=options["cookie_path"],
                      httponly=options["cookie_httponly"],
                      partitioned=options["cookie_partitioned"],
                      spelling=options["cookie_spelling"])


def expires_date(now: float, max_age: int) -> str:
    """The ``Expires`` date of a cookie set at ``now`` with ``max_age``: the epoch for a
    ``max_age`` of 0 or less, at most the last date HTTP can write (a framework's
    "forever")."""
    # The whole second of that moment, its fraction dropped (formatdate rounds to the
    # microsecond first: within half a microsecond of the next second it names that one).
    return _http_date(int(min(now + max_age, _LAST_DATE)) if max_age > 0 else 0)


@lru_cache(maxsize=256)
def _http_date(second: int) -> str:
    # Kept: a cookie refreshed on every answer names the same few seconds again and again,
    # and formatdate costs several times the rest of the header.
    return formatdate(second, usegmt=True)


class CookieConflict(NamedTuple):
    """A framework's own setting for the session cookie that cannot hold beside the
    middleware's: which attribute, what the middleware's cookie has, why, and the
    middleware's option that would change it (None: none may)."""

    attribute: str
    current: object
    why: str
    option: str | None


# Browsers key cookies by name, domain, path and partition: a framework's other attributes
# make a second cookie beside the middleware's, and a sign-out clears only one of them.
_RULES: dict[str, tuple[str, str | None]] = {
    "name": ("the middleware finds the session by its cookie's name before the app runs",
             "cookie_name"),
    "domain": ("the middleware's own answers (the hand-off's callback, the sign-out) set "
               "and clear the cookie for its domain; a cookie of the same name for another "
               "domain would be a second one beside it", "cookie_domain"),
    "path": ("the middleware's own answers (the hand-off's callback, the sign-out) set and "
             "clear the cookie at its path; a cookie at another path would be a second one "
             "beside it, and the sign-out would clear only one of them", "cookie_path"),
    "secure": ("the cookie must carry the middleware's Secure flag: without it the session "
               "travels over plain http, with it an http app never gets it back",
               "cookie_secure"),
    "httponly": ("the middleware's own answers set the cookie with its HttpOnly flag; a "
                 "script would see the cookie or not depending on which answer set it last",
                 "cookie_httponly"),
    "samesite": ("the hand-off needs the cookie on the redirect back from the IdP (which "
                 "Strict withholds), and cross-site requests must not carry it (which None "
                 "allows)", "cookie_samesite"),
    "partitioned": ("a partitioned cookie is a second cookie beside an unpartitioned one of "
                    "the same name, and the middleware's own answers set one kind",
                    "cookie_partitioned"),
}


def cookie_conflicts(
    cookie: CookieSpec | None, asked: Mapping[str, object]
) -> list[CookieConflict]:
    """The settings in ``asked`` (attribute -> value: ``name``, ``domain``, ``path``,
    ``secure``, ``httponly``, ``samesite``, ``partitioned``) that differ from the
    session cookie ``cookie``; an adapter passes only what the app set itself.

    ``cookie`` None (no middleware seen yet): a middleware option could make any
    attribute hold, so only that ``samesite`` is one a cookie can have is checked.
    """
    found = []
    for attribute, value in asked.items():
        why, option = _RULES[attribute]
        if cookie is None:
            if attribute != "samesite" or (
                value is None or (isinstance(value, str) and value.lower() in _SAMESITE)
            ):
                continue
            current: object = "Lax"
        else:
            current = {"name": cookie.name, "domain": cookie.domain, "path": cookie.path,
                       "secure": cookie.secure, "httponly": cookie.httponly,
                       "samesite": cookie.samesite, "partitioned": cookie.partitioned,
                       }[attribute]
        if _same(attribute, value, current):
            continue
        if attribute == "samesite" and not (
            isinstance(value, str) and value.lower() in _SAMESITE
        ):
            why, option = "a cookie's SameSite is Lax, Strict or None, nothing else", None
        found.append(CookieConflict(attribute, current, why, option))
    return found


def _same(attribute: str, value: object, current: object) -> bool:
    if attribute == "samesite" and isinstance(value, str):
        return _SAMESITE.get(value.lower()) == current
    if attribute == "domain" and isinstance(value, str) and isinstance(current, str):
        # A leading dot is what browsers ignore (RFC 6265): ".example.com" is "example.com".
        return value.lstrip(".").lower() == current.lstrip(".").lower()
    return value == current
