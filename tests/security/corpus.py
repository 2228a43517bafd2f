"""The attack corpus: hostile callback URLs and return paths, grouped by where they come from.

Every group names the advisory whose bypass shape it replays, against the
allow-list of :data:`ALLOWED` (two http remotes, one https host, one
wildcard). The shapes were learnt from the advisories and their fixes; the
strings are written for this deployment (``shop.test`` is the remote, the
attacker owns ``evil.com``).

A callback reaches the IdP as one query parameter, so each string here is
what the IdP sees *after* one percent-decoding (``%09`` in a string below
is the three characters ``%``, ``0``, ``9``; ``\\t`` is a real tab).

``ACCEPTED`` are the positive controls: spellings the allow-list must take
(and redirect to in canonical form), so a test that expects a rejection can
tell "rejected" from "never reached the check".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACCEPTED",
    "ALLOWED",
    "CALLBACK_ATTACKS",
    "EVIL_RETURN_PATHS",
    "KEPT_RETURN_PATHS",
    "QUERY_ATTACKS",
    "Attack",
]

CB = "/_sessionshare/callback"

#: The IdP's allow-list in the security deployment (see deploy.py).
ALLOWED = ["http://shop.test", "http://blog.test", "secure.test", "*.partner.test"]


@dataclass(frozen=True)
class Attack:
    group: str
    value: str

    @property
    def id(self) -> str:
        return f"{self.group}:{self.value!r}"[:90]


def _group(name: str, values: list[str]) -> list[Attack]:
    return [Attack(name, v) for v in values]


CALLBACK_ATTACKS: list[Attack] = [
    # The PHP bundle this design grew from checked the callback with a string
    # prefix, so `http://remote.test.evil.com/` passed for `http://remote.test`.
    *_group("php-bundle-suffix", [
        "http://shop.test.evil.com/",
        "http://shop.test.evil.com" + CB,
        "http://shop.test.evil.com:80" + CB,
        "http://shop.testevil.com" + CB,
        "http://shop.test-evil.com" + CB,
        "http://shop.test_evil.com" + CB,
        "http://evilshop.test" + CB,
        "http://evil-shop.test" + CB,
        "http://evil.shop.test" + CB,
        "http://shop.test." + CB,
        "http://shop.test.." + CB,
        "http://shop.tes" + CB,
        "http://shop.test:80.evil.com" + CB,
        "http://evil.com/http://shop.test" + CB,
        "http://evil.com" + CB + "?http://shop.test" + CB,
        "http://evil.com/?u=http://shop.test" + CB,
    ]),
    # oauth2-proxy CVE-2020-5233 (GHSA-qqxw-m5fj-f7gv): a backslash is a slash
    # to a browser but not to the checking parser (`/\evil.com`).
    *_group("CVE-2020-5233-backslash", [
        "/\\evil.com",
        "/\\evil.com" + CB,
        "\\\\evil.com" + CB,
        "http:\\\\evil.com" + CB,
        "http:/\\evil.com" + CB,
        "http:\\/evil.com" + CB,
        "http://evil.com\\@shop.test" + CB,
        "http://shop.test\\@evil.com" + CB,
        "http://shop.test\\.evil.com" + CB,
        "http://evil.com\\shop.test" + CB,
        "http://shop.test\\" + CB[1:],
        "http://shop.test/_sessionshare\\callback",
        "http://shop.test" + CB + "\\..\\..\\evil.com",
    ]),
    # oauth2-proxy CVE-2020-11053 (GHSA-j7px-6hwj-hpjg): encoded white space
    # (%09, %0a, %0b, %0d) between the slashes slipped past the `//` check;
    # raw white space does the same after a lenient parser strips it.
    *_group("CVE-2020-11053-encoded-whitespace", [
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0b/evil.com",
        "/%0d/evil.com",
        "http://%09evil.com" + CB,
        "http://shop.test%09.evil.com" + CB,
        "http://shop.test%0a@evil.com" + CB,
        "http://shop.test" + CB + "%0d%0aLocation:%20http://evil.com",
        "http://shop.test\t.evil.com" + CB,
        "http://shop.test\v" + CB,
        "http://shop.test\f" + CB,
        "/\t/evil.com",
        "/\n/evil.com",
        "http://shop.test " + CB,
        "http://shop.test" + CB + "\r\nLocation: http://evil.com",
        "http://shop.test" + CB + "\r\nSet-Cookie: sessionshare=planted",
    ]),
    # oauth2-proxy CVE-2020-4037 (GHSA-5m6c-jp6f-2vcv): dot segments and mixed
    # slashes (`/./\evil.com`, `/./../../\evil.com`) reached another host.
    *_group("CVE-2020-4037-dot-segments", [
        "/./\\evil.com",
        "/./../../\\evil.com",
        "/../evil.com",
        "http://shop.test/./" + CB[1:],
        "http://shop.test/_sessionshare/./callback",
        "http://shop.test/_sessionshare/x/../callback",
        "http://shop.test" + CB + "/../../evil.com",
        "http://shop.test" + CB + "/.",
        "http://shop.test/" + CB,
        "http://shop.test" + CB + "/..//evil.com",
        "http://shop.test/%2e/" + CB[1:],
        "http://shop.test/_sessionshare/%2e%2e/%2e%2e/evil.com",
    ]),
    # oauth2-proxy CVE-2021-21291 (GHSA-4mf2-f3wh-gvf2): a whitelisted
    # `.example.com` also matched `badexample.com` (a suffix without the dot).
    *_group("CVE-2021-21291-wildcard-suffix", [
        "https://evilpartner.test" + CB,
        "https://partner.test" + CB,
        "https://a.evilpartner.test" + CB,
        "https://partner.test.evil.com" + CB,
        "https://a.partner.test.evil.com" + CB,
        "https://.partner.test" + CB,
        "https://a..partner.test" + CB,
        "https://*.partner.test" + CB,
        "https://a.partner.test.:443" + CB,
        "http://a.partner.test" + CB,
        "https://evil.com/.partner.test" + CB,
        "https://evil.com?.partner.test",
        "https://a.partner.test@evil.com" + CB,
        "https://a_b.partner.test" + CB,
        "https://-a.partner.test" + CB,
        "https://a-.partner.test" + CB,
        "https://" + "a" * 64 + ".partner.test" + CB,
    ]),
    # Pomerium CVE-2021-29651 (GHSA-35vc-w93w-75c2): a signed-in user was sent,
    # token attached, to any URL the login link named. Here the token may only
    # go to the callback endpoint itself, of a listed origin, on its port and
    # scheme -- never to another page of an allowed host.
    *_group("CVE-2021-29651-token-destination", [
        "http://shop.test",
        "http://shop.test/",
        "http://shop.test/orders",
        "http://shop.test/_sessionshare/logout",
        "http://shop.test" + CB + "/",
        "http://shop.test" + CB + "x",
        "http://shop.test/_SESSIONSHARE/CALLBACK",
        "http://shop.test" + CB + "?next=http://evil.com",
        "http://shop.test" + CB + "?",
        "http://shop.test" + CB + "#",
        "http://shop.test" + CB + "#@evil.com",
        "http://shop.test:8080" + CB,
        "http://shop.test:443" + CB,
        "https://shop.test" + CB,
        "https://secure.test:8443" + CB,
        "http://secure.test" + CB,
        "http://id.test" + CB,
        "http://evil.com" + CB,
    ]),
    # Python urlsplit CVE-2023-24329 (gh-102153): leading C0 controls and
    # blanks made urlsplit miss the scheme, so a block-list let them through.
    *_group("CVE-2023-24329-leading-blanks", [
        " http://shop.test" + CB,
        "\x00http://shop.test" + CB,
        "\x01http://evil.com" + CB,
        "\x08//evil.com",
        "\x0chttp://evil.com" + CB,
        "\x1fhttp://evil.com" + CB,
        " javascript:alert(1)",
        "\tjavascript:alert(1)//http://shop.test" + CB,
        "\u3000http://shop.test" + CB,
        "\ufeffhttp://shop.test" + CB,
    ]),
    # Python urlsplit CVE-2022-0391 (bpo-43882): tabs and newlines are removed
    # anywhere in a URL by browsers, so `shop\n.test` is shop.test to one
    # parser and something else to another. They are refused outright.
    *_group("CVE-2022-0391-tab-newline", [
        "http://shop\n.test" + CB,
        "http://shop.test\n" + CB,
        "ht\ttp://shop.test" + CB,
        "http\n://evil.com" + CB,
        "http://evil.com\r\n.shop.test" + CB,
        "http://shop.test/_sessionshare/call\tback",
        "http://shop.test" + CB + "\n",
        "http://sh\rop.test" + CB,
    ]),
    # Django CVE-2017-7233: is_safe_url() took numeric and slash-less URLs
    # (`http:999999999`) as relative; browsers read them as hosts or IPs.
    *_group("CVE-2017-7233-numeric-and-slashless", [
        "http:999999999",
        "ftp:9999999999",
        "http:shop.test" + CB,
        "http:/shop.test" + CB,
        "http:///shop.test" + CB,
        "https:evil.com",
        "http://999999999" + CB,
        "http://2130706433" + CB,
        "http://0x7f.1" + CB,
        "http://0177.0.0.1" + CB,
        "http://127.1" + CB,
        "http://127.0.0.1.nip.io" + CB,
        "http://[::ffff:127.0.0.1]" + CB,
        "http://[2001:cdba:0000:0000:0000:0000:3257:9652" + CB,
        "http://2001:cdba:0000:0000:0000:0000:3257:9652]" + CB,
        "http://[::1]x" + CB,
        "http://[fe80::1%25eth0]" + CB,
    ]),
    # Open-redirect scheme tricks (CWE-601 class): protocol-relative, pseudo
    # schemes, no scheme at all.
    *_group("cwe-601-scheme", [
        "//shop.test" + CB,
        "//evil.com",
        "///evil.com",
        "javascript:alert(1)//http://shop.test" + CB,
        "JaVaScRiPt:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ws://shop.test" + CB,
        "shop.test" + CB,
        "http//shop.test" + CB,
        "http:" + CB,
        "https+http://shop.test" + CB,
        "",
    ]),
    # Userinfo confusion (RFC 3986 section 7.6, "semantic attacks"): whatever
    # stands before `@` is a user name, not the host.
    *_group("cwe-601-userinfo", [
        "http://shop.test@evil.com" + CB,
        "http://shop.test:80@evil.com" + CB,
        "http://user:pass@shop.test" + CB,
        "http://evil.com@shop.test" + CB,
        "http://@shop.test" + CB,
        "http://a@b@shop.test" + CB,
        "http://shop.test%40evil.com" + CB,
        "http://%73hop.test@evil.com" + CB,
        "http://shop.test;@evil.com" + CB,
        "http://shop.test+&@evil.com#+@shop.test" + CB,
    ]),
    # Percent-encoded separators (oauth2-proxy open-redirect list class):
    # a decoding step between check and use turns them into real ones.
    *_group("cwe-601-encoded-separators", [
        "http://shop.test%2f@evil.com" + CB,
        "http://evil.com%2f.shop.test" + CB,
        "http://evil.com%23.shop.test" + CB,
        "http://evil.com%3f.shop.test" + CB,
        "http://evil.com%5c%5c.shop.test" + CB,
        "http://shop.test%2eevil.com" + CB,
        "http%3a//evil.com",
        "http%3A%2F%2Fshop.test%2F_sessionshare%2Fcallback",
        "http://shop.test/_sessionshare%2fcallback",
        "http://shop.test/_sessionshare%2Fcallback",
        "http://%73%68%6f%70.test" + CB,
        "http://shop.test:%38%30" + CB,
    ]),
    # IDNA and Unicode look-alikes (homograph / UTS #46 mapping class): a
    # browser maps full-width letters, ideographic dots and ignorable code
    # points before resolving; none of these is the listed host.
    *_group("idna-unicode", [
        "http://sh\u043ep.test" + CB,  # Cyrillic o
        "http://\uff53\uff48\uff4f\uff50.test" + CB,  # full-width "shop"
        "http://shop\u3002test" + CB,  # ideographic full stop
        "http://shop\uff0etest" + CB,  # full-width full stop
        "http://shop\uff61test" + CB,  # half-width ideographic full stop
        "http://sh\u00adop.test" + CB,  # soft hyphen, mapped to nothing
        "http://shop.test\u200b" + CB,  # zero-width space
        "http://sh\u200dop.test" + CB,  # zero-width joiner
        "http://shop.test\uff0f_sessionshare\uff0fcallback",  # full-width solidus
        "http://evil.com\u2044shop.test" + CB,  # fraction slash
        "http://evil.c\u2100" + CB,  # account-of, NFKC "a/c"
        "http://evil.com\uff03.shop.test" + CB,  # full-width number sign
        "http://SHOP.TEST\u0130" + CB,  # dotted capital I
        "http://\u0455hop.test" + CB,  # Cyrillic dze
        "http://xn--shp-..test" + CB,
        "https://\uab70.partner.test" + CB,  # Cherokee small a: UTS 46 maps it to U+13A0
        "https://a\u0662.partner.test" + CB,  # Arabic digit after Latin: fails the bidi rule
        "https://\u00df.partner.test" + CB,  # sharp s: transitional vs non-transitional
        "https://\u115fa.partner.test" + CB,  # Hangul filler: a browser drops it
        "https://xn--b\u00fccher.partner.test" + CB,  # a U-label may not start with xn--
        "https://xn--kz9a.partner.test" + CB,  # the A-label of the Cherokee case above
        "https://xn--0.partner.test" + CB,  # not punycode at all
        "https://xn--0.\u0101.partner.test" + CB,  # ...which a browser checks next to Unicode
        "https://xn--ls8h.partner.test" + CB,  # a symbol, not a letter: refused in any form
    ]),
    # Port confusion (CWE-601 class; WHATWG vs RFC 3986 port parsing).
    *_group("cwe-601-port", [
        "http://shop.test:80:80" + CB,
        "http://shop.test:" + CB,
        "http://shop.test:0080" + CB,
        "http://shop.test:65616" + CB,
        "http://shop.test:+80" + CB,
        "http://shop.test:-80" + CB,
        "http://shop.test:8o" + CB,
        "http://shop.test:0" + CB,
        "http://shop.test:99999999999999999999" + CB,
        "https://secure.test:443:443" + CB,
    ]),
]

_SHOP_Q = "http%3A%2F%2Fshop.test%2F_sessionshare%2Fcallback"
_EVIL_Q = "http%3A%2F%2Fevil.com%2F"

#: Parameter pollution and malformed login queries (raw query strings; ``{S}`` is a valid
#: state). HTTP parameter pollution (OWASP WSTG-INPV-04): two parsers pick different copies.
QUERY_ATTACKS: list[Attack] = _group("http-parameter-pollution", [
    f"callback={_EVIL_Q}&callback={_SHOP_Q}&state={{S}}",
    f"callback={_SHOP_Q}&callback={_EVIL_Q}&state={{S}}",
    f"callback={_SHOP_Q}&state={{S}}&state={{S}}",
    f"callback={_SHOP_Q}",
    f"callback={_SHOP_Q}&state=short",
    f"callback={_SHOP_Q}&state=" + "A" * 129,
    f"callback={_SHOP_Q}&state=AAAAAAAAAAAAAAAA%21%21",
    f"callback={_SHOP_Q}&state=AAAAAAAAAAAAAAAA%C3%A9",
    f"callback={_SHOP_Q};callback=http://evil.com&state={{S}}",
    f"callback={_SHOP_Q}&state={{S}}&" + "x=1&" * 70,
    "callback=%ff%fe&state={S}",
    f"callback={_EVIL_Q}" + "a" * 5000 + "&state={S}",
    "state={S}",
    f"callback={_SHOP_Q}&state={{S}}%00",
    f"callback={_SHOP_Q}%00&state={{S}}",
])

#: Spellings of allowed callbacks the allow-list must accept (canonical form after ->).
ACCEPTED: dict[str, str] = {
    "http://shop.test" + CB: "http://shop.test" + CB,
    "HTTP://Shop.Test:80" + CB: "http://shop.test" + CB,
    "http://blog.test" + CB: "http://blog.test" + CB,
    "https://secure.test" + CB: "https://secure.test" + CB,
    "https://SECURE.test:443" + CB: "https://secure.test" + CB,
    "https://a.partner.test" + CB: "https://a.partner.test" + CB,
    "https://X.Y.partner.test:443" + CB: "https://x.y.partner.test" + CB,
    "https://xn--bcher-kva.partner.test" + CB: "https://xn--bcher-kva.partner.test" + CB,
    "https://b\u00fccher.partner.test" + CB: "https://xn--bcher-kva.partner.test" + CB,
}

# The remote's return path: request paths (as a WSGI server hands them over,
# i.e. PATH_INFO after percent-decoding) that must never send the browser to
# another origin after the hand-off. oauth2-proxy CVE-2020-5233 (`/\`),
# CVE-2020-11053 (`/%09/`), CVE-2020-4037 (`/./\`), and the kin.
EVIL_RETURN_PATHS: list[Attack] = [
    *_group("CVE-2020-5233-backslash", [
        "/\\evil.com", "/\\/evil.com", "/\\\\evil.com", "/ \\evil.com", "/\t\\evil.com",
    ]),
    *_group("CVE-2020-11053-whitespace", [
        "/\t/evil.com", "/\n/evil.com", "/\r/evil.com", "/\v/evil.com", "/\f/evil.com",
        "/ /evil.com", "/\t/\t\\evil.com", "/%09/evil.com", "/%0a/evil.com", "/%0D/evil.com",
    ]),
    *_group("CVE-2020-4037-dot-segments", [
        "/./\\evil.com", "/./../../\\evil.com",
    ]),
    *_group("cwe-601-protocol-relative", [
        "//evil.com", "///evil.com", "////evil.com", "//evil.com/%2e%2e",
        "//evil.com@shop.test", "//%09/evil.com",
    ]),
    *_group("cwe-601-encoded-slash", [
        "/%5cevil.com", "/%5Cevil.com", "/%2f%2fevil.com", "/%2F/evil.com", "/%2f%5cevil.com",
        "/%5c%5cevil.com",
    ]),
    *_group("cwe-601-unicode", [
        "/\uff0f/evil.com", "/\u3002evil.com", "/\u2215\u2215evil.com", "/\u00a0/evil.com",
    ]),
]

#: Same-origin paths that must survive the hand-off unchanged (positive controls).
KEPT_RETURN_PATHS = [
    "/articles",
    "/articles/2024/hello-world",
    "/a/b/c.html",
    "/search?q=evil.com&next=//evil.com",
    "/./x",
    "/a/../b",
    "/@evil.com",
    "/evil.com",
]
