"""sessionshare.crypto: sync keys, tokens and the allow-list (tickets: test_tickets.py)."""

from __future__ import annotations

import base64

import pytest
from itsdangerous import SignatureExpired

from sessionshare import AllowList, ConfigurationError, SyncKey, TokenRejected
from sessionshare.core.tickets import new_ticket
from sessionshare.crypto import open_token, seal_token

CB = "/_sessionshare/callback"
ALLOW = AllowList(
    [
        "remote.test",
        "*.partner.test",
        "shop.test:8443",
        "http://127.0.0.1:8001",
        "https://exact.test/custom/cb",
        "https://[::1]:9000",
        "bücher.test",
    ]
)

# (callback, canonical URL it is accepted as) -- every one must pass.
ACCEPTED = {
    "plain host": (f"https://remote.test{CB}", f"https://remote.test{CB}"),
    "upper-case host and scheme": (f"HTTPS://REMOTE.Test{CB}", f"https://remote.test{CB}"),
    "explicit default port": (f"https://remote.test:443{CB}", f"https://remote.test{CB}"),
    "wildcard subdomain": (f"https://a.partner.test{CB}", f"https://a.partner.test{CB}"),
    "wildcard deep subdomain": (f"https://x.y.partner.test{CB}", f"https://x.y.partner.test{CB}"),
    "host with port": (f"https://shop.test:8443{CB}", f"https://shop.test:8443{CB}"),
    "listed http IP origin": (f"http://127.0.0.1:8001{CB}", f"http://127.0.0.1:8001{CB}"),
    "exact callback URL": ("https://exact.test/custom/cb", "https://exact.test/custom/cb"),
    "listed IPv6 origin": (f"https://[::1]:9000{CB}", f"https://[::1]:9000{CB}"),
    "IPv6 written long": (f"https://[0:0::1]:9000{CB}", f"https://[::1]:9000{CB}"),
    "IDNA host as Unicode": (f"https://bücher.test{CB}", f"https://xn--bcher-kva.test{CB}"),
    "IDNA host as punycode": (f"https://xn--bcher-kva.test{CB}", f"https://xn--bcher-kva.test{CB}"),
}

# callback -> reason code. Every one must be refused.
REJECTED = {
    # Suffix confusion (the PHP bundle's bypass) and look-alikes.
    f"https://remote.test.evil.com{CB}": "host_not_allowed",
    f"https://evilremote.test{CB}": "host_not_allowed",
    f"https://evilpartner.test{CB}": "host_not_allowed",
    f"https://partner.test.evil.com{CB}": "host_not_allowed",
    f"https://a.partner.test.evil.com{CB}": "host_not_allowed",
    # A wildcard never matches its apex.
    f"https://partner.test{CB}": "host_not_allowed",
    # Userinfo, including several @.
    f"https://remote.test@evil.com{CB}": "userinfo",
    f"https://user:pass@remote.test{CB}": "userinfo",
    f"https://evil.com@remote.test@evil.com{CB}": "userinfo",
    f"https://remote.test%40evil.com{CB}": "bad_character",
    # Backslashes.
    f"https://evil.com\\@remote.test{CB}": "bad_character",
    f"https://remote.test\\.evil.com{CB}": "bad_character",
    f"https:\\\\remote.test{CB}": "bad_character",
    # Protocol-relative, triple slash, missing slashes.
    f"//remote.test{CB}": "bad_scheme",
    f"https:///remote.test{CB}": "bad_authority",
    f"https:remote.test{CB}": "bad_authority",
    f"https:/remote.test{CB}": "bad_authority",
    # Leading blanks and C0 controls (CVE-2023-24329), tab/newline inside (CVE-2022-0391).
    f" https://remote.test{CB}": "bad_character",
    f"\x00https://remote.test{CB}": "bad_character",
    f"\x1fhttps://remote.test{CB}": "bad_character",
    f"https://remote.test\t{CB}": "bad_character",
    f"https://remo\nte.test{CB}": "bad_character",
    f"https://remote.test{CB}\r": "bad_character",
    f"https://remote.test{CB}\x7f": "bad_character",
    # Numeric and bracketed IP forms.
    f"http://2130706433:8001{CB}": "bad_ip",
    f"http://0x7f.0.0.1:8001{CB}": "bad_ip",
    f"http://0177.0.0.1:8001{CB}": "bad_ip",
    f"http://127.1:8001{CB}": "bad_ip",
    f"http://127.0.0.1.:8001{CB}": "bad_host",
    f"http://[::ffff:127.0.0.1]:8001{CB}": "host_not_allowed",
    f"https://[::1]{CB}": "port_not_allowed",
    f"http://127.0.0.2:8001{CB}": "host_not_allowed",
    # Scheme downgrade and port mismatch.
    f"http://remote.test{CB}": "scheme_not_allowed",
    f"https://127.0.0.1:8001{CB}": "scheme_not_allowed",
    f"https://remote.test:8443{CB}": "port_not_allowed",
    f"https://shop.test{CB}": "port_not_allowed",
    f"http://127.0.0.1:8002{CB}": "port_not_allowed",
    f"https://remote.test:0443{CB}": "bad_port",
    f"https://remote.test:{CB}": "bad_port",
    f"https://remote.test:99999{CB}": "bad_port",
    f"https://remote.test:+443{CB}": "bad_port",
    # Trailing dot (another origin to a browser) and empty labels.
    f"https://remote.test.{CB}": "bad_host",
    f"https://remote..test{CB}": "bad_host",
    f"https://.remote.test{CB}": "bad_host",
    # Percent-encoded separators: . / \ # ? @ and the rest.
    f"https://remote%2etest{CB}": "bad_character",
    f"https://evil.com%2fremote.test{CB}": "bad_character",
    f"https://evil.com%5c.remote.test{CB}": "bad_character",
    f"https://evil.com%23.remote.test{CB}": "bad_character",
    f"https://evil.com%3f.remote.test{CB}": "bad_character",
    "https://remote.test/_sessionshare%2fcallback": "bad_character",
    # Other schemes.
    "javascript:alert(1)//remote.test/_sessionshare/callback": "bad_scheme",
    "data:text/html,<script>alert(1)</script>": "bad_scheme",
    f"ftp://remote.test{CB}": "bad_scheme",
    f"httpss://remote.test{CB}": "bad_scheme",
    # A query or fragment, even empty.
    f"https://remote.test{CB}?next=https://evil.com": "query",
    f"https://remote.test{CB}?": "query",
    f"https://remote.test{CB}#frag": "fragment",
    f"https://remote.test{CB}#": "fragment",
    # A path other than the callback path.
    "https://remote.test/": "path_not_allowed",
    "https://remote.test": "path_not_allowed",
    f"https://remote.test{CB}/": "path_not_allowed",
    f"https://remote.test{CB}/../../evil": "path_not_allowed",
    f"https://remote.test/x/..{CB}": "path_not_allowed",
    f"https://exact.test{CB}": "path_not_allowed",
    # Non-ASCII hosts that a browser would first map to something else.
    f"https://ｒｅｍｏｔｅ.test{CB}": "bad_host",
    f"https://remote。test{CB}": "bad_host",
    f"https://Bücher.test{CB}": "bad_host",
    f"https://remote.test{CB}é": "bad_character",
    f"https://bu\u0308cher.test{CB}": "bad_host",
    # Nothing, or not a string.
    "": "malformed",
    "https://" + "a" * 2100 + ".test" + CB: "malformed",
}


@pytest.mark.parametrize(("url", "canonical"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_allow_list_accepts(url: str, canonical: str) -> None:
    allowed = ALLOW.check_callback(url)
    assert allowed.url == canonical
    assert canonical.startswith(allowed.origin) and canonical[len(allowed.origin)] == "/"
    assert ALLOW.is_allowed_callback(url)


@pytest.mark.parametrize(("url", "reason"), REJECTED.items(), ids=[repr(u)[:60] for u in REJECTED])
def test_allow_list_rejects(url: str, reason: str) -> None:
    from sessionshare import CallbackRejected

    with pytest.raises(CallbackRejected) as info:
        ALLOW.check_callback(url)
    assert info.value.reason == reason
    assert not ALLOW.is_allowed_callback(url)


def test_allow_list_table_is_large_enough() -> None:
    assert len(ACCEPTED) + len(REJECTED) >= 40


@pytest.mark.parametrize("value", [None, 42, b"https://remote.test/_sessionshare/callback"])
def test_allow_list_rejects_non_strings(value: object) -> None:
    assert not ALLOW.is_allowed_callback(value)


@pytest.mark.parametrize(
    "entry",
    ["*", "*.test", "*.127.0.0.1", "https://remote.test/cb?x=1", "user@remote.test",
     "ftp://remote.test", "remote.test:http", "remote test", "https://remote.test/a b"],
)
def test_bad_allow_list_entries_fail_at_construction(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="known remote host"):
        AllowList([entry])


def test_allow_list_parses_a_setting_string_and_custom_callback_path() -> None:
    allow = AllowList("a.test, b.test  c.test", callback_path="/sso/cb")
    assert len(allow) == 3
    assert allow.check_callback("https://c.test/sso/cb").url == "https://c.test/sso/cb"
    assert not allow.is_allowed_callback(f"https://c.test{CB}")


# -- keys -----------------------------------------------------------------------


def test_keygen_makes_32_byte_urlsafe_keys() -> None:
    text = SyncKey.generate()
    assert len(text) == 43 and "=" not in text
    assert len(base64.urlsafe_b64decode(text + "=")) == 32
    assert SyncKey.generate() != text


def test_fingerprint_is_stable_public_and_per_key() -> None:
    text = SyncKey.generate()
    a, b = SyncKey.parse(text), SyncKey.parse(text)
    assert a.fingerprint == b.fingerprint
    assert len(a.fingerprint.replace("-", "")) == 12
    assert a.fingerprint != SyncKey.parse(SyncKey.generate()).fingerprint
    assert text not in repr(a) and a.fingerprint in repr(a)


def test_purposes_get_different_subkeys() -> None:
    key = SyncKey.parse(SyncKey.generate())
    assert key.derive("token") != key.derive("state-cookie")


@pytest.mark.parametrize("text", ["", "   ", "not base64 at all!", "c2hvcnQ", "A" * 60])
def test_bad_keys_fail_with_a_clear_message(text: str) -> None:
    with pytest.raises(ConfigurationError, match="keygen"):
        SyncKey.parse(text)


def test_several_keys_newest_first() -> None:
    new, old = SyncKey.generate(), SyncKey.generate()
    both = SyncKey.parse(f"{new}, {old}")
    assert both.fingerprints == (
        SyncKey.parse(new).fingerprint,
        SyncKey.parse(old).fingerprint,
    )



def test_a_serializer_ages_its_signatures_by_the_clock_it_is_given() -> None:
    # The state cookie's signer: dated and aged by the side's clock, through the signer it
    # is built with (itsdangerous' signer= seam), not by patching a built serializer.
    now = [1_800_000_000.0]
    key = SyncKey.parse(SyncKey.generate())
    serializer = key.serializer("state-cookie", salt="test", clock=lambda: now[0])
    value = serializer.dumps(["state", "/orders"])
    now[0] += 60
    assert serializer.loads(value, max_age=60) == ["state", "/orders"]
    now[0] += 1
    with pytest.raises(SignatureExpired):
        serializer.loads(value, max_age=60)
    # The control: the same value under the wall clock (2027) is long expired, so the
    # clock above is what kept it alive.
    with pytest.raises(SignatureExpired):
        key.serializer("state-cookie", salt="test").loads(value, max_age=60)

# -- tokens ---------------------------------------------------------------------

AUD, ISS, STATE, NOW = "https://shop.example", "https://id.example", "s" * 43, 1_800_000_000


def _seal(key: SyncKey, **overrides: object) -> str:
    args: dict[str, object] = {"audience": AUD, "issuer": ISS, "state": STATE, "now": NOW}
    args.update(overrides)
    return seal_token(key, new_ticket(), **args)  # type: ignore[arg-type]


def _open(key: SyncKey, token: str, **overrides: object) -> object:
    args: dict[str, object] = {"audience": AUD, "issuer": ISS, "ttl": 60, "now": NOW + 1}
    args.update(overrides)
    return open_token(key, token, **args)  # type: ignore[arg-type]


@pytest.fixture
def key() -> SyncKey:
    return SyncKey.parse(SyncKey.generate())


def test_token_round_trip_is_short_and_urlsafe(key: SyncKey) -> None:
    ticket = new_ticket()
    token = seal_token(key, ticket, audience=AUD, issuer=ISS, state="t" * 128, now=NOW)
    assert len(token) <= 512
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    claims = open_token(key, token, audience=AUD, issuer=ISS, ttl=60, now=NOW)
    assert (claims.ticket, claims.state, claims.issued_at) == (ticket, "t" * 128, NOW)


def _flip(token: str, position: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[position] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("position", "reason"),
    [(0, "unsupported_version"), (3, "unknown_key"), (10, "bad_seal"), (30, "bad_seal"),
     (-1, "bad_seal"), (-20, "bad_seal")],
)
def test_tampered_tokens_are_rejected(key: SyncKey, position: int, reason: str) -> None:
    with pytest.raises(TokenRejected) as info:
        _open(key, _flip(_seal(key), position))
    assert info.value.reason == reason


def test_truncated_and_extended_tokens_are_rejected(key: SyncKey) -> None:
    token = _seal(key)
    for bad in (token[:-1], token[:-4], token[:40], token + "A", token + "AAAA", token[1:]):
        with pytest.raises(TokenRejected) as info:
            _open(key, bad)
        assert info.value.reason in {"malformed", "bad_seal", "unsupported_version", "unknown_key"}


def test_re_encoded_tokens_are_rejected(key: SyncKey) -> None:
    token = _seal(key)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for variant in (
        base64.b64encode(raw).decode(),  # standard alphabet (+ / =)
        base64.urlsafe_b64encode(raw).decode(),  # with padding
        token.replace("-", "%2D"),
        " " + token,
        token.upper(),
    ):
        if variant == token:
            continue
        with pytest.raises(TokenRejected):
            _open(key, variant)


def test_non_canonical_base64_is_rejected(key: SyncKey) -> None:
    token = _seal(key)
    # The last character's unused low bits can vary without changing the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    sibling = token[:-1] + alphabet[last ^ 1]
    with pytest.raises(TokenRejected):
        _open(key, sibling)


@pytest.mark.parametrize("state_length", [44, 45], ids=["4 spare bits", "2 spare bits"])
def test_non_canonical_spelling_of_the_same_bytes_is_malformed(
    key: SyncKey, state_length: int
) -> None:
    # A 43-character state makes the token a whole number of base64 groups, with no
    # spare bits to vary, so the test above cannot tell "non-canonical" from "altered".
    # These lengths leave spare bits in the last character: the sibling decodes to the
    # very same bytes, and only the one-spelling rule refuses it.
    token = _seal(key, state="s" * state_length)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]

    def decoded(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    assert sibling != token and decoded(sibling) == decoded(token)
    _open(key, token)  # the canonical spelling opens
    with pytest.raises(TokenRejected) as info:
        _open(key, sibling)
    assert info.value.reason == "malformed"


def test_token_from_another_key_is_unknown_key(key: SyncKey) -> None:
    other = SyncKey.parse(SyncKey.generate())
    with pytest.raises(TokenRejected) as info:
        _open(key, _seal(other))
    assert info.value.reason == "unknown_key"


def test_expired_and_future_tokens(key: SyncKey) -> None:
    token = _seal(key)
    _open(key, token, now=NOW + 60 + 5)  # lifetime plus leeway still opens
    with pytest.raises(TokenRejected) as info:
        _open(key, token, now=NOW + 66)
    assert info.value.reason == "expired"
    with pytest.raises(TokenRejected) as info:
        _open(key, _seal(key, now=NOW + 30), now=NOW)
    assert info.value.reason == "not_yet_valid"


def test_audience_and_issuer_are_checked(key: SyncKey) -> None:
    token = _seal(key)
    with pytest.raises(TokenRejected) as info:
        _open(key, token, audience="https://blog.example")
    assert info.value.reason == "wrong_audience"
    with pytest.raises(TokenRejected) as info:
        _open(key, token, issuer="https://evil.example")
    assert info.value.reason == "wrong_issuer"


@pytest.mark.parametrize(
    "token", ["", "A" * 513, "A" * 5000, "!!!!", "€uro", "A", "AAAAA", None, 7, b"bytes"]
)
def test_garbage_is_malformed_and_never_another_exception(key: SyncKey, token: object) -> None:
    with pytest.raises(TokenRejected) as info:
        _open(key, token)  # type: ignore[arg-type]
    assert info.value.reason == "malformed"


def test_key_rotation(key: SyncKey) -> None:
    old_text, new_text = SyncKey.generate(), SyncKey.generate()
    old, new = SyncKey.parse(old_text), SyncKey.parse(new_text)
    both = SyncKey.parse([new_text, old_text])
    sealed_old = _seal(old)
    _open(both, sealed_old)  # the old key still opens while configured
    _open(new, _seal(both))  # new tokens are sealed with the newest key...
    with pytest.raises(TokenRejected) as info:
        _open(new, sealed_old)  # ...and once the old key is removed, its tokens die
    assert info.value.reason == "unknown_key"



def test_a_token_of_the_first_protocol_version_is_refused_as_unsupported(
    key: SyncKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Protocol v2 (issue 16) changed what a ticket points to: an IdP still on v1 hands
    # out sessions a v2 remote cannot read, so its tokens are refused by name.
    from sessionshare.crypto import tokens

    assert tokens.VERSION == 2
    monkeypatch.setattr(tokens, "VERSION", 1)
    old = _seal(key)
    monkeypatch.undo()
    with pytest.raises(TokenRejected) as info:
        _open(key, old)
    assert info.value.reason == "unsupported_version"
