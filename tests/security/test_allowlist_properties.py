"""Property-based tests of the allow-list: what it accepts is exactly the canonical callbacks.

The property, precisely. For the allow-list ``A`` of
:data:`security.corpus.ALLOWED`, the set ``C(A)`` of canonical callbacks is

- ``http://shop.test/_sessionshare/callback``,
  ``http://blog.test/_sessionshare/callback``,
  ``https://secure.test/_sessionshare/callback`` (the exact entries), and
- ``https://<labels>.partner.test/_sessionshare/callback`` where ``<labels>``
  is one or more lower-case LDH labels (``[a-z0-9]``, inner ``-``, at most
  63 characters each) and the host is at most 253 characters (the wildcard).

For every string ``u``, ``A.check_callback(u)`` either raises
``CallbackRejected`` (and nothing else) or returns ``r`` with

1. ``r.url`` in ``C(A)`` -- nothing outside the list, ever;
2. ``r.url == reserialise(u)`` -- the accepted URL *is* ``u``, only written
   canonically (scheme and host lower-cased, a Unicode host IDNA-encoded, a
   default port dropped), computed here independently with ``urlsplit`` on
   the (by then known to be clean) input and the stdlib IDNA codec; so ``u``
   had no userinfo, query, fragment, or other path;
3. ``r.origin`` is ``r.url`` without the callback path, and checking
   ``r.url`` again gives ``r`` (a fixed point).

And conversely every harmless spelling of a member of ``C(A)`` is accepted
as that member, so the property cannot hold by rejecting everything.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from hypothesis import event, given
from hypothesis import strategies as st

from sessionshare import AllowList, CallbackRejected, ConfigurationError

from .corpus import ALLOWED, CB
from .profiles import budget
from .strategies import NOISE, callback_urls, harmless_spellings

ALLOW = AllowList(ALLOWED)
EXACT = {"http://shop.test" + CB, "http://blog.test" + CB, "https://secure.test" + CB}
_LDH = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
WILDCARD = re.compile(rf"https://((?:{_LDH}\.)+partner\.test){re.escape(CB)}")
REASONS = {
    "malformed", "bad_character", "bad_scheme", "bad_authority", "userinfo", "bad_host",
    "bad_ip", "bad_port", "query", "fragment", "host_not_allowed", "scheme_not_allowed",
    "port_not_allowed", "path_not_allowed",
}


def in_canonical_set(url: str) -> bool:
    if url in EXACT:
        return True
    match = WILDCARD.fullmatch(url)
    return match is not None and len(match.group(1)) <= 253


def reserialise(url: str) -> str:
    """The canonical spelling of a clean absolute URL, by the stdlib's parser."""
    parts = urlsplit(url)
    assert parts.username is None and parts.password is None, url
    assert "?" not in url and "#" not in url, url
    host = parts.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _check(url: object) -> None:
    try:
        allowed = ALLOW.check_callback(url)
    except CallbackRejected as exc:
        event(f"rejected: {exc.reason}")
        assert exc.reason in REASONS, exc.reason
        assert ALLOW.is_allowed_callback(url) is False
        return
    event("accepted")
    assert isinstance(url, str)
    assert in_canonical_set(allowed.url), (url, allowed)
    assert allowed.url == reserialise(url), (url, allowed)
    assert allowed.url == allowed.origin + CB
    assert ALLOW.check_callback(allowed.url) == allowed
    assert ALLOW.is_allowed_callback(url) is True


@budget(4)
@given(callback_urls())
def test_accepts_only_canonical_callbacks(url: str) -> None:
    _check(url)


@budget(1)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")),
                 st.lists(st.sampled_from(NOISE), max_size=20).map("".join)))
def test_any_text_is_rejected_cleanly_or_canonical(url: str) -> None:
    _check(url)


@budget(1)
@given(harmless_spellings())
def test_every_harmless_spelling_is_accepted(pair: tuple[str, str]) -> None:
    spelling, canonical = pair
    allowed = ALLOW.check_callback(spelling)
    assert allowed.url == canonical
    assert in_canonical_set(canonical)


@budget(1)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=5))))
def test_non_strings_are_rejected(value: object) -> None:
    assert ALLOW.is_allowed_callback(value) is False


@budget(1)
@given(st.lists(callback_urls(), min_size=1, max_size=3))
def test_bad_entries_fail_at_construction_and_nowhere_else(entries: list[str]) -> None:
    # Configuration is parsed once, by the same grammar: it either builds or
    # raises ConfigurationError with a message -- never another exception.
    try:
        allow = AllowList(entries)
    except ConfigurationError as exc:
        assert "known remote host" in str(exc) or "callback_path" in str(exc)
        return
    for entry in allow.entries:
        allow.is_allowed_callback(entry)
