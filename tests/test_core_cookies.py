"""sessionshare.core.cookies: a cookie's name and attributes, validated once, rendered."""

from __future__ import annotations

from typing import Any

import pytest

from sessionshare import ConfigurationError
from sessionshare.core.cookies import CookieSpec


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
