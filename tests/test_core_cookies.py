"""sessionshare.core.cookies: a cookie's name and attributes, validated once, rendered."""

from __future__ import annotations

import re
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionshare import ConfigurationError
from sessionshare.core.cookies import CookieSpec, cookie_conflicts, expires_date


def test_cookie_pattern_finds_plain_and_quoted_values_only_by_exact_name() -> None:
    spec = CookieSpec("sid", secure=False)
    pattern = spec.pattern("[a-z]+")
    for header, value in [
        ("sid=abc", "abc"), ("a=1; sid=abc; b=2", "abc"), ('sid="abc"', "abc"),
        ("xsid=zzz; sid=abc", "abc"),
    ]:
        match = pattern.search(header)
        assert match is not None and (match.group(1) or match.group(2)) == value, header
    for header in ["xsid=abc", "sid=ABC", "sid=abc1", 'sid="abc', "sid_x=abc"]:
        assert pattern.search(header) is None, header


def test_cookie_set_and_clear() -> None:
    spec = CookieSpec("s", secure=True, samesite="Strict", path="/p", max_age=60)
    assert spec.set("v") == "s=v; Max-Age=60; Path=/p; Secure; HttpOnly; SameSite=Strict"
    assert spec.set("v", name="s-2").startswith("s-2=v;")
    cleared = spec.clear()
    assert cleared.startswith("s=;") and "Max-Age=0" in cleared and "Path=/p" in cleared
    assert "SameSite" not in CookieSpec("s", samesite=None).set("v")
    assert "Domain=example.com" in CookieSpec("s", domain="example.com").set("v")
    # RFC 6265: a leading dot is ignored by browsers; written without it.
    dotted = CookieSpec("s", domain=".example.com")
    assert "Domain=example.com;" in dotted.set("v") and dotted.domain == "example.com"


@pytest.mark.parametrize(
    "options",
    [{"secure": False}, {"path": "/app"}, {"domain": "example.com"}],
)
def test_host_prefix_rules_are_enforced(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="__Host-"):
        CookieSpec("__Host-ss", **options)


def test_samesite_none_needs_secure_and_bad_values_fail() -> None:
    with pytest.raises(ConfigurationError, match="secure"):
        CookieSpec("ss", samesite="None", secure=False)
    with pytest.raises(ConfigurationError, match="samesite"):
        CookieSpec("ss", samesite="sometimes")
    with pytest.raises(ConfigurationError, match="cookie name"):
        CookieSpec("bad name;")


# -- a framework's own cookie settings beside the middleware's cookie -------------------------
@pytest.mark.parametrize(
    ("asked", "conflicting"),
    [
        ({}, []),
        ({"name": "sessionshare", "samesite": "lax", "domain": ".shop.example", "path": "/",
          "secure": True, "httponly": True, "partitioned": False}, []),
        ({"name": "session"}, ["name"]),
        ({"samesite": "Strict", "secure": False}, ["samesite", "secure"]),
        ({"samesite": None}, ["samesite"]),  # no attribute is not Lax
        ({"domain": "other.example", "path": "/app"}, ["domain", "path"]),
        ({"httponly": False, "partitioned": True}, ["httponly", "partitioned"]),
    ],
    ids=["nothing", "all-alike", "name", "samesite-secure", "no-samesite", "domain-path",
         "httponly-partitioned"],
)
def test_cookie_conflicts_names_each_setting_unlike_the_cookie(
    asked: dict[str, object], conflicting: list[str]
) -> None:
    cookie = CookieSpec("sessionshare", domain="shop.example")
    found = cookie_conflicts(cookie, asked)
    assert [conflict.attribute for conflict in found] == conflicting
    assert all(conflict.why for conflict in found)


def test_cookie_conflicts_without_a_cookie_judges_only_a_samesite_no_cookie_can_have() -> None:
    # Every attribute has a middleware option now (cookie_path, cookie_httponly,
    # cookie_partitioned among them): without the middleware's cookie nothing else can be
    # judged yet.
    asked = {"name": "session", "domain": "x.example", "secure": True, "samesite": "Strict",
             "httponly": False, "path": "/app", "partitioned": True}
    assert cookie_conflicts(None, asked) == []
    (bad,) = cookie_conflicts(None, {"samesite": "sometimes"})
    assert bad.option is None and "Lax, Strict or None" in bad.why


def test_cookie_conflicts_compare_path_httponly_and_partitioned_with_the_cookies_own() -> None:
    cookie = CookieSpec("__Secure-s", path="/app", httponly=False, partitioned=True)
    assert cookie_conflicts(cookie, {"path": "/app", "httponly": False,
                                     "partitioned": True}) == []
    found = cookie_conflicts(cookie, {"path": "/", "httponly": True, "partitioned": False})
    assert [(c.attribute, c.option) for c in found] == [
        ("path", "cookie_path"), ("httponly", "cookie_httponly"),
        ("partitioned", "cookie_partitioned")]


def test_partitioned_needs_secure_and_is_set_and_cleared_with_it() -> None:
    with pytest.raises(ConfigurationError, match="Partitioned cookie needs secure=True"):
        CookieSpec("s", secure=False, partitioned=True)
    spec = CookieSpec("s", partitioned=True)
    assert spec.set("v") == "s=v; Path=/; Secure; HttpOnly; SameSite=Lax; Partitioned"
    assert spec.clear().endswith("; Partitioned") and "Max-Age=0" in spec.clear()
    assert "Partitioned" not in CookieSpec("s").set("v")


def test_httponly_off_and_another_path_in_set_and_clear() -> None:
    spec = CookieSpec("s", httponly=False, path="/shop")
    for header in (spec.set("v"), spec.clear()):
        assert "HttpOnly" not in header and "Path=/shop" in header


def test_a_persistent_cookie_carries_max_age_and_expires_when_given_the_time() -> None:
    spec = CookieSpec("s")
    now = 1_800_000_000.0
    assert spec.set("v", max_age=60, now=now) == (
        "s=v; Expires=Fri, 15 Jan 2027 08:01:00 GMT; Max-Age=60; Path=/; Secure; HttpOnly; "
        "SameSite=Lax")
    # 0 or less: already expired, as given, with an Expires every clock has passed.
    for age in (0, -5):
        header = spec.set("v", max_age=age, now=now)
        assert f"Max-Age={age};" in header
        assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header
    assert spec.set("v", max_age=60) == "s=v; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_a_max_age_past_the_last_http_date_expires_at_that_date() -> None:
    # A framework's "forever" (Flask's PERMANENT_SESSION_LIFETIME, Django's
    # SESSION_COOKIE_AGE, cookie_max_age of 10**12) reaches past year 9999, which no HTTP
    # date can write: the cookie is set for as long as a date can say, not a 500 on
    # every answer that sets it.
    spec = CookieSpec("s")
    now = 1_800_000_000.0
    for age in (300_000_000_000, 10**13, 2**63):
        header = spec.set("v", max_age=age, now=now)
        assert f"Max-Age={age};" in header
        assert "Expires=Fri, 31 Dec 9999 23:59:59 GMT;" in header


# -- spelling: how the attributes' names are written, never which ----------------------------
def test_a_spelling_changes_only_the_case_of_the_names_it_lists() -> None:
    spelling = {"Path": "path", "Domain": "domain", "HttpOnly": "httponly",
                "SameSite": "samesite", "Secure": "secure", "Expires": "expires",
                "Partitioned": "partitioned"}
    spec = CookieSpec("s", samesite="Lax", domain="example.com", partitioned=True,
                      spelling=spelling)
    assert spec.set("v", max_age=60, now=0) == (
        "s=v; expires=Thu, 01 Jan 1970 00:01:00 GMT; Max-Age=60; path=/; domain=example.com; "
        "secure; httponly; samesite=Lax; partitioned")
    assert spec.set("v", mount="/app") == (
        "s=v; path=/app/; domain=example.com; secure; httponly; samesite=Lax; partitioned")
    assert spec.clear() == ("s=; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; path=/; "
                            "domain=example.com; secure; httponly; samesite=Lax; partitioned")
    # The same cookie as without a spelling, attribute for attribute, case aside.
    plain = CookieSpec("s", samesite="Lax", domain="example.com", partitioned=True)
    assert spec.set("v").lower() == plain.set("v").lower() != plain.set("v")
    assert spec.spelling == spelling
    # A framework's spelling writes the domain as given (Starlette keeps a leading dot,
    # which browsers ignore); RFC 6265's drops the dot.
    dotted = CookieSpec("s", domain=".example.com", spelling={"Domain": "domain"})
    assert "; domain=.example.com;" in dotted.set("v")
    assert "; Domain=example.com;" in CookieSpec("s", domain=".example.com").set("v")


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ({"Path": "Domain"}, "'Domain' is not a spelling of Path"),
        ({"Max-Age": "max_age"}, "'max_age' is not a spelling of Max-Age"),
        ({"Comment": "comment"}, "'Comment' is not an attribute"),
        ({"path": "path"}, "'path' is not an attribute"),
        ({"Path": 1}, "1 is not a spelling of Path"),
    ],
    ids=["another-attribute", "another-name", "unknown", "key-not-canonical", "not-text"],
)
def test_a_spelling_cannot_add_or_rename_an_attribute(spelling: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        CookieSpec("s", spelling=spelling)


@given(now=st.floats(0, 2**40, allow_nan=False), max_age=st.integers(-10, 2**40))
def test_the_expires_date_is_formatdates_whatever_the_time_and_age(
    now: float, max_age: int
) -> None:
    # The date is kept per whole second (a refreshed cookie names the same seconds on
    # every answer): the kept text is formatdate's for that moment's whole second.
    expected = formatdate(int(min(now + max_age, 253_402_300_799)) if max_age > 0 else 0,
                          usegmt=True)
    assert expires_date(now, max_age) == expected
    assert expires_date(now, max_age) == expected  # the kept one, the second time
