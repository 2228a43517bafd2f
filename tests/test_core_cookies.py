"""sessionshare.core.cookies: a cookie's name and attributes, validated once, rendered."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sessionshare import ConfigurationError
from sessionshare.core.cookies import CookieSpec, cookie_conflicts


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


def test_cookie_conflicts_without_a_cookie_judges_only_what_no_option_changes() -> None:
    asked = {"name": "session", "domain": "x.example", "secure": True, "samesite": "Strict",
             "httponly": False, "path": "/app", "partitioned": True}
    found = cookie_conflicts(None, asked)
    assert [c.attribute for c in found] == ["httponly", "path", "partitioned"]
    assert all(c.option is None for c in found)
    (bad,) = cookie_conflicts(None, {"samesite": "sometimes"})
    assert bad.option is None and "Lax, Strict or None" in bad.why


# -- spelling: how the attributes' names are written, never which ----------------------------
def test_a_spelling_changes_only_the_case_of_the_names_it_lists() -> None:
    spelling = {"Path": "path", "Domain": "domain", "HttpOnly": "httponly",
                "SameSite": "samesite", "Secure": "secure", "Expires": "expires"}
    spec = CookieSpec("s", samesite="Lax", domain="example.com", spelling=spelling)
    assert spec.set("v", max_age=60) == (
        "s=v; Max-Age=60; path=/; domain=example.com; secure; httponly; samesite=Lax")
    assert spec.set("v", mount="/app") == (
        "s=v; path=/app/; domain=example.com; secure; httponly; samesite=Lax")
    assert spec.clear() == ("s=; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; path=/; "
                            "domain=example.com; secure; httponly; samesite=Lax")
    # The same cookie as without a spelling, attribute for attribute, case aside.
    plain = CookieSpec("s", samesite="Lax", domain="example.com")
    assert spec.set("v").lower() == plain.set("v").lower() != plain.set("v")
    assert spec.spelling == spelling


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
