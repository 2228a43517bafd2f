"""Hypothesis strategies: URLs, paths and protocol values built from the pieces attacks use.

A purely random string almost never gets past ``scheme://``, so the URL
strategies assemble *plausible* URLs -- scheme, separator, userinfo, host,
port, path, query/fragment -- from short lists of the pieces real bypasses
were made of (mixed case, ``@``, ``\\``, percent-encodings, IDNA and
look-alike Unicode, numeric IPs, odd ports, dot segments, blanks and
control characters), then splice a few more such pieces in at random
places. About one draw in five is an allowed callback, written in one of its
harmless spellings, so acceptance is exercised as much as rejection.
"""

from __future__ import annotations

from hypothesis import strategies as st

from .corpus import CB

__all__ = [
    "NOISE",
    "callback_urls",
    "harmless_spellings",
    "query_values",
    "return_paths",
    "unicode_wildcard_callbacks",
    "wsgi_text",
]

# Each component: the plain choices first, then the tricky ones (drawn one time in four).
SCHEMES = (["http", "https"],
           ["HTTP", "HtTpS", "ftp", "javascript", "data", "ws", "file", "https+http", "htt", ""])
SEPARATORS = (["://"], [":/", ":", ":\\\\", ":/\\", ":\\/", ":///", "%3a//", "//"])
USERINFO = ([""], ["user@", "user:pass@", "shop.test@", "@", "a@b@", "evil.com\\@", ";@",
                   "shop.test:80@", "%40", "+&@"])
HOST_LABELS = (["a", "x-y", "b", "z9", "SHOP", "Partner", "xn--bcher-kva", "b\u00fccher"],
               ["xn--a", "xn--", "-a", "a-", "a_b", "0x7f", "127", "0", "1", "2130706433", "*",
                "", "\u00df", "\u03c2", "\uab70", "\u0661", "\u115f", "sh\u043ep",
                "\uff53\uff48\uff4f\uff50", "sh\u00adop", "\u0130", "\u0131", "\u01c5",
                "\u2168", "evil", "shop"])
HOST_SUFFIXES = (["shop.test", "blog.test", "secure.test", "partner.test"],
                 ["evil.com", "id.test", "test", "", "shop.test.evil.com",
                  "partner.test.evil.com", "evilpartner.test", "shop.test."])
HOSTS = (["shop.test", "blog.test", "secure.test", "a.partner.test", "SHOP.TEST"],
         ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[0:0::1]", "[", "]", "[::1", "evil.com",
          "shop.test.", "shop\u3002test", "shop\uff0etest", "%73hop.test", "shop%2etest",
          "shop.test.evil.com", "evilshop.test"])
PORTS = (["", ":80", ":443"],
         [":8080", ":8443", ":", ":0", ":0080", ":65616", ":+80", ":-1", ":80:80", ": 80",
          ":%38%30", ":99999999999"])
PATHS = ([CB],
         [CB + "/", "/", "", CB.upper(), "/_sessionshare/./callback", "/" + CB, CB + "/..",
          "/_sessionshare%2fcallback", "\\_sessionshare\\callback", "/_sessionshare/call\tback",
          "/_sessionshare/callback/../callback", "/orders"])
TAILS = ([""], ["?", "?x=1", "#", "#@evil.com", "?next=//evil.com", "?token=x"])
NOISE = ["\t", "\n", "\r", " ", "\x00", "\x01", "\x1f", "\x7f", "\x85", "\xa0", "\\", "%",
         "@", "#", "?", "/", ".", ":", ";", "\u200b", "\u00ad", "\u3002", "\uff0e", "\uff0f",
         "\u2028", "\ufeff", "%09", "%0a", "%2f", "%5c", "%00", "%2e", "%40", "%25", "\ud800",
         "\U0001f4a9", "xn--", "//", "..", "A", "a"]

Pieces = tuple[list[str], list[str]]


def _piece(draw: st.DrawFn, pieces: Pieces) -> str:
    plain, tricky = pieces
    return draw(st.sampled_from(tricky if draw(st.integers(0, 3)) == 0 else plain))


#: The allowed callbacks of security.corpus.ALLOWED, and harmless ways to write them.
_CANONICAL = [
    ("http", "shop.test", 80),
    ("http", "blog.test", 80),
    ("https", "secure.test", 443),
]


def _ldh_label() -> st.SearchStrategy[str]:
    return st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@st.composite
def harmless_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """(a spelling of an allowed callback, the canonical URL the allow-list must give)."""
    if draw(st.booleans()):
        scheme, host, port = draw(st.sampled_from(_CANONICAL))
        labels = host.split(".")
    else:
        scheme, port = "https", 443
        sub = draw(st.lists(st.one_of(_ldh_label(), st.just("b\u00fccher")), min_size=1,
                            max_size=3))
        labels = [*sub, "partner", "test"]
    canonical_host = ".".join(
        "xn--bcher-kva" if label == "b\u00fccher" else label for label in labels
    )
    written = ".".join(
        draw(st.sampled_from([label, label.upper(), label.title()]))
        if label.isascii() else label
        for label in labels
    )
    written_scheme = draw(st.sampled_from([scheme, scheme.upper(), scheme.title()]))
    written_port = draw(st.sampled_from(["", f":{port}"]))
    return (
        f"{written_scheme}://{written}{written_port}{CB}",
        f"{scheme}://{canonical_host}{CB}",
    )


@st.composite
def _assembled(draw: st.DrawFn) -> str:
    scheme = _piece(draw, SCHEMES)
    separator = _piece(draw, SEPARATORS)
    userinfo = _piece(draw, USERINFO)
    if draw(st.booleans()):
        host = _piece(draw, HOSTS)
    else:
        labels = [_piece(draw, HOST_LABELS) for _ in range(draw(st.integers(0, 3)))]
        host = ".".join([*labels, _piece(draw, HOST_SUFFIXES)])
    port = _piece(draw, PORTS)
    path = _piece(draw, PATHS)
    tail = _piece(draw, TAILS)
    return f"{scheme}{separator}{userinfo}{host}{port}{path}{tail}"


@st.composite
def _spliced(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(NOISE), st.characters()))
        text = text[:position] + piece + text[position:]
    return text


def _unicode_label() -> st.SearchStrategy[str]:
    # Letters, marks and digits of every script (what IDNA is about), hyphens, and the
    # A-label prefix: where Python's and a browser's IDNA processing can part ways.
    text = st.text(
        st.one_of(st.characters(categories=["Ll", "Lu", "Lo", "Lm", "Lt", "Mn", "Mc", "Nd",
                                            "Nl", "No", "Cf"]),
                  st.sampled_from("-aZ09")),
        min_size=1, max_size=6,
    )
    return st.tuples(st.sampled_from(["", "", "", "xn--", "-"]), text).map("".join)


def unicode_wildcard_callbacks() -> st.SearchStrategy[str]:
    """Callbacks under the wildcard entry with one or two Unicode labels."""
    return st.lists(_unicode_label(), min_size=1, max_size=2).map(
        lambda labels: "https://" + ".".join(labels) + ".partner.test" + CB
    )


def callback_urls() -> st.SearchStrategy[str]:
    """Plausible callback URLs: mostly hostile, about one in five an allowed spelling."""
    return st.one_of(
        _assembled(),
        _assembled(),
        _spliced(_assembled()),
        harmless_spellings().map(lambda pair: pair[0]),
        _spliced(harmless_spellings().map(lambda pair: pair[0])),
        unicode_wildcard_callbacks(),
        st.text(max_size=80),
    )


RETURN_PIECES = ["/", "//", "\\", "/\\", "%2f", "%2F", "%5c", "%5C", "%09", "%0a", "%0d",
                 "%00", "%7f", "%20", "%25", "%2e", ".", "..", "evil.com", "@", "?", "#",
                 "\t", "\n", "\r", " ", "\x00", "\x7f", "\u3002", "\uff0f", "\u2215",
                 "https:", "javascript:", "a", "x", ";", ":", "orders", "read", "Orders"]


def return_paths() -> st.SearchStrategy[str]:
    """Candidate return paths: joined tricky pieces, or any text."""
    return st.one_of(
        st.lists(st.sampled_from(RETURN_PIECES), max_size=8).map("".join),
        st.lists(st.sampled_from(RETURN_PIECES), max_size=6).map(lambda p: "/" + "".join(p)),
        st.text(max_size=40),
    )


def wsgi_text(max_size: int = 300) -> st.SearchStrategy[str]:
    """What a WSGI server may put in an environ string: any bytes, decoded as latin-1."""
    return st.binary(max_size=max_size).map(lambda b: b.decode("latin-1"))


def query_values() -> st.SearchStrategy[str]:
    """Values for one query parameter: any text, or tricky pieces."""
    return st.one_of(
        st.text(max_size=200),
        st.lists(st.sampled_from(NOISE + ["A" * 16, "-", "_", "=", "&"]), max_size=12).map(
            "".join
        ),
    )
