"""The IdP's allow-list of remote apps it may send a browser back to.

A callback URL arrives from the network, so it is an attacker's string until
proven otherwise. An open redirect here hands a live login token to another
host, which is the bug behind most single-sign-on CVEs (oauth2-proxy
CVE-2020-5233 / CVE-2021-21291, the PHP bundle this design grew from:
``http://remote.test.evil.com/`` passed its prefix check). So the URL is
parsed once, by this module's own strict grammar rather than
:func:`urllib.parse.urlsplit` (CVE-2023-24329: leading blanks; CVE-2022-0391:
tabs and newlines), and the redirect always goes to the *canonical* form that
was checked, never to the raw input.

Entry forms (``SESSIONSHARE_KNOWN_REMOTE_HOSTS``, comma or space separated):

==============================  =============================================
``shop.example``                https, port 443, the configured callback path
``shop.example:8443``           https on that port
``*.partner.example``           https, any true subdomain (never the apex)
``http://127.0.0.1:8001``       exactly that origin (http and IP only here)
``https://shop.example/cb``     exactly that callback URL
==============================  =============================================

A callback passes only if: scheme http(s) as the entry allows, no userinfo,
no backslash, ``%``, control character or white space anywhere, a host that
is a valid lower-case DNS name (or IDNA, or an IP literal in canonical form
that is listed), a port equal to the entry's, no query or fragment, and a path
equal to the callback path.

    allow = AllowList(["shop.example", "*.partner.example"])
    allow.check_callback("https://SHOP.example:443/_sessionshare/callback").url
    # 'https://shop.example/_sessionshare/callback'
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import CallbackReason, CallbackRejected, ConfigurationError

__all__ = ["AllowList", "AllowedCallback", "canonical_origin"]

MAX_URL_LENGTH = 2048
DEFAULT_CALLBACK_PATH = "/_sessionshare/callback"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_IPV4_PART = re.compile(r"0|[1-9][0-9]{0,2}")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/-]*")
_IGNORED_BY_IDNA = frozenset("\u115f\u1160")  # Hangul fillers: alphanumeric to Python


@dataclass(frozen=True)
class AllowedCallback:
    """A callback that passed: its canonical URL and its origin (the token audience)."""

    url: str
    origin: str


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    is_ip: bool
    port: int
    rest: str  # path, query and fragment, exactly as given

    @property
    def origin(self) -> str:
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


@dataclass(frozen=True)
class _Entry:
    scheme: str
    host: str  # exact host, or for a wildcard the suffix with its leading dot
    wildcard: bool
    is_ip: bool
    port: int
    path: str | None

    def host_matches(self, url: _Url) -> bool:
        if self.wildcard:
            # ".partner.example" matches "a.partner.example", never the apex
            # and never "evilpartner.example".
            return not url.is_ip and url.host.endswith(self.host) and len(url.host) > len(self.host)
        return url.is_ip == self.is_ip and url.host == self.host


def _canonical_host(host: str) -> tuple[str, bool]:
    """Lower-case, IDNA-encoded host and whether it is an IP literal."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise CallbackRejected("bad_host", "unbalanced bracket")
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]", True
        except ValueError:
            raise CallbackRejected("bad_host", "bad IPv6 literal") from None
    if not host or len(host) > 253:
        raise CallbackRejected("bad_host", "empty or too long")
    labels = host.split(".")
    if any(not label for label in labels):
        # Also refuses a trailing dot: "shop.example." is another origin to a browser.
        raise CallbackRejected("bad_host", "empty label")
    labels = [_ascii_label(label) for label in labels]
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A browser reads such a host as IPv4 (127.1, 0x7f.1, 2130706433, 0177.0.0.1):
        # accept only the one canonical dotted-quad spelling.
        if len(labels) == 4 and all(
            _IPV4_PART.fullmatch(p) and int(p) <= 255 for p in labels
        ):
            return ".".join(labels), True
        raise CallbackRejected("bad_ip", "IPv4 address not in dotted-quad form")
    return ".".join(labels), False


def _ascii_label(label: str) -> str:
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--") and _LABEL.fullmatch(label):
            # An A-label must be the encoding of a Unicode label accepted below: a browser
            # checks that (as soon as any label of the host is Unicode), so do it always.
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                raise CallbackRejected("bad_host", "invalid punycode") from None
            if decoded.isascii() or _ascii_label(decoded) != label:
                raise CallbackRejected("bad_host", "not the A-label of a valid Unicode label")
    else:
        # Only plain, already-normalised lower-case letters and digits are turned into
        # punycode; anything a browser would first *map* (full-width forms, other dots,
        # upper case, compatibility characters) is refused instead of guessed at.
        if unicodedata.normalize("NFC", label) != label or label.lower() != label or not all(
            ch.isalnum() or ch == "-" for ch in label
        ) or unicodedata.normalize("NFKC", label) != label:
            raise CallbackRejected("bad_host", "non-ASCII label needing mapping")
        if label.casefold() != label or label.startswith("xn--") or any(
            ch in _IGNORED_BY_IDNA or unicodedata.bidirectional(ch) in ("R", "AL", "AN")
            for ch in label
        ):
            # Where UTS 46 and Python disagree, the checked host would not be the one a
            # browser resolves: case folding (Cherokee small letters fold to capitals,
            # sharp s and final sigma differ between IDNA versions), a Unicode label
            # posing as an A-label, the bidi rule of right-to-left labels, and fillers a
            # browser drops.
            raise CallbackRejected("bad_host", "non-ASCII label browsers read differently")
        label = "xn--" + label.encode("punycode").decode("ascii")
    if not _LABEL.fullmatch(label):
        raise CallbackRejected("bad_host", "not a DNS label")
    return label


def _parse(url: object) -> _Url:
    if not isinstance(url, str) or not url:
        raise CallbackRejected("malformed", "missing")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRejected("malformed", "too long")
    for ch in url:
        if ch <= " " or ch == "\x7f" or ch in "\\%" or ch.isspace() or not ch.isprintable():
            raise CallbackRejected("bad_character", f"U+{ord(ch):04X} is not allowed")
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme not in _DEFAULT_PORTS:
        raise CallbackRejected("bad_scheme", "only http and https")
    assert m is not None
    rest = url[m.end() :]
    if not rest.startswith("//") or rest.startswith("///"):
        raise CallbackRejected("bad_authority", "expected scheme://host")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise CallbackRejected("userinfo", "user information is not allowed")
    host, port_text = authority, ""
    if authority.startswith("["):
        close = authority.find("]")
        host, port_text = authority[: close + 1], authority[close + 1 :]
        if close < 0 or (port_text and not port_text.startswith(":")):
            raise CallbackRejected("bad_host", "bad IPv6 literal")
        port_text = port_text[1:]
        if not port_text and authority.endswith(":"):
            raise CallbackRejected("bad_port", "empty port")
    elif ":" in authority:
        host, port_text = authority.split(":", 1)
        if not port_text:
            raise CallbackRejected("bad_port", "empty port")
    if port_text:
        if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
            raise CallbackRejected("bad_port", "not a port number")
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    canonical, is_ip = _canonical_host(host)
    if not tail.isascii():
        raise CallbackRejected("bad_character", "non-ASCII path")
    return _Url(scheme, canonical, is_ip, port, tail)


def canonical_origin(url: str, *, setting: str = "app_url") -> str:
    """The canonical origin of a configured URL (``https://Shop.Example:443/`` -> ``https://shop.example``).

    Raises :class:`ConfigurationError` naming ``setting`` when ``url`` is not
    an http(s) origin, optionally followed by a path.
    """
    try:
        parsed = _parse(url)
    except CallbackRejected as exc:
        raise ConfigurationError(f"{setting}={url!r} is not a valid URL ({exc})") from None
    if "?" in parsed.rest or "#" in parsed.rest:
        raise ConfigurationError(f"{setting}={url!r} must not have a query or fragment")
    return parsed.origin


class AllowList:
    """The remote apps an IdP may redirect to, parsed and validated once."""

    __slots__ = ("_entries", "callback_path", "entries")

    def __init__(
        self, entries: Iterable[str] | str, *, callback_path: str = DEFAULT_CALLBACK_PATH
    ) -> None:
        if isinstance(entries, str):
            entries = re.split(r"[\s,]+", entries.strip())
        if not _PATH.fullmatch(callback_path):
            raise ConfigurationError(f"callback_path={callback_path!r} must be an absolute path")
        self.callback_path = callback_path
        self.entries = tuple(e for e in entries if e)
        self._entries = tuple(self._parse_entry(e) for e in self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"AllowList({list(self.entries)!r})"

    @property
    def plain_http_entries(self) -> tuple[str, ...]:
        """The entries that allow a plain ``http://`` callback, as written.

        An https IdP refuses them unless told otherwise (``allow_insecure``): a
        token sent to an http callback, and the session cookie that remote then
        sets, travel in clear.
        """
        return tuple(
            text for text, entry in zip(self.entries, self._entries, strict=True)
            if entry.scheme == "http"
        )

    @staticmethod
    def _parse_entry(text: str) -> _Entry:
        def bad(why: str) -> ConfigurationError:
            return ConfigurationError(
                f"known remote host {text!r} {why}; use host, host:port, *.domain, "
                "or a full origin such as http://127.0.0.1:8001"
            )

        raw = text.strip()
        wildcard = False
        if "://" not in raw:
            if raw.startswith("*."):
                wildcard, raw = True, raw[2:]
            raw = "https://" + raw
        try:
            url = _parse(raw)
        except CallbackRejected as exc:
            raise bad(f"is not valid ({exc.reason}: {exc.detail})") from None
        path: str | None = None
        if url.rest not in ("", "/"):
            if not _PATH.fullmatch(url.rest):
                raise bad("must not have a query or fragment")
            path = url.rest
        if wildcard:
            if url.is_ip:
                raise bad("is a wildcard over an IP address")
            if "." not in url.host and url.host != "localhost":
                raise bad("is a wildcard over a whole top-level domain")
            host = "." + url.host
        else:
            host = url.host
        return _Entry(url.scheme, host, wildcard, url.is_ip, url.port, path)

    def check_callback(self, url: object) -> AllowedCallback:
        """The canonical callback, or :class:`CallbackRejected` with a reason code."""
        parsed = _parse(url)
        if "?" in parsed.rest:
            raise CallbackRejected("query", "a callback has no query")
        if "#" in parsed.rest:
            raise CallbackRejected("fragment", "a callback has no fragment")
        reason: CallbackReason = "host_not_allowed"
        for entry in self._entries:
            if not entry.host_matches(parsed):
                continue
            if entry.scheme != parsed.scheme:
                reason = "scheme_not_allowed"
            elif entry.port != parsed.port:
                reason = "port_not_allowed"
            elif parsed.rest != (entry.path or self.callback_path):
                reason = "path_not_allowed"
            else:
                origin = parsed.origin
                return AllowedCallback(url=origin + parsed.rest, origin=origin)
        raise CallbackRejected(reason, origin=parsed.origin)

    def is_allowed_callback(self, url: object) -> bool:
        """True when :meth:`check_callback` would accept ``url``."""
        try:
            self.check_callback(url)
        except CallbackRejected:
            return False
        return True
