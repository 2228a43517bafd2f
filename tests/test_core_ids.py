"""sessionshare.core.ids: session ids, per-app cookie values, keyed store digests."""

from __future__ import annotations

import pytest

from sessionshare import SyncKey
from sessionshare.core import ids as ids_module
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.ids import (
    COOKIE_VALUE_PATTERN,
    SESSION_ID_PATTERN,
    TIMED_COOKIE_VALUE_PATTERN,
    SessionIds,
)
from sessionshare.core.lifecycle import Lifecycle

KEY = SyncKey.parse(SyncKey.generate())


def _ids(audience: str = "https://shop.example", key: SyncKey = KEY) -> SessionIds:
    return SessionIds(key, audience=audience, idle_timeout=1800, absolute_timeout=8 * 3600)


def test_an_id_carries_its_key_and_limits_and_a_cookie_value_its_audience() -> None:
    import re

    shop, blog = _ids(), _ids("https://blog.example")
    sid = shop.new()
    assert re.fullmatch(SESSION_ID_PATTERN, sid)
    assert sid.split(".")[1] == KEY.fingerprint_bytes()[0].hex()
    assert shop.limits(sid) == (1800, 8 * 3600)
    value = shop.cookie_value(sid)
    assert re.fullmatch(COOKIE_VALUE_PATTERN, value)
    assert shop.from_cookie(value) == sid
    assert blog.from_cookie(value) is None  # another audience
    assert blog.from_cookie(blog.cookie_value(sid)) == sid
    assert shop.digest(sid) == blog.digest(sid)  # one session, one store key
    other = _ids(key=SyncKey.parse(SyncKey.generate()))
    assert not other.is_known(sid) and other.lookup(sid) is None  # another deployment


def _timed(max_age: int, audience: str = "https://shop.example") -> SessionIds:
    return SessionIds(KEY, audience=audience, idle_timeout=1800, absolute_timeout=8 * 3600,
                      cookie_max_age=max_age)


def test_a_timed_value_carries_its_issue_time_and_ages_out() -> None:
    import re

    shop = _timed(60)
    sid = shop.new()
    value = shop.timed_cookie_value(sid, 1_800_000_000)
    assert re.fullmatch(TIMED_COOKIE_VALUE_PATTERN, value)
    assert not re.fullmatch(COOKIE_VALUE_PATTERN, value)
    assert value.split(".")[4] == f"{1_800_000_000:x}"
    assert shop.from_timed_cookie(value, 1_800_000_000) == (sid, 1_800_000_000)
    assert shop.from_timed_cookie(value, 1_800_000_059.9) == (sid, 1_800_000_000)
    assert shop.from_timed_cookie(value, 1_800_000_060) is None  # as old as its Max-Age
    blog = _timed(60, "https://blog.example")
    assert blog.from_timed_cookie(value, 1_800_000_000) is None  # another audience


def test_a_timed_values_time_is_under_the_mac() -> None:
    shop = _timed(60)
    sid = shop.new()
    value = shop.timed_cookie_value(sid, 1_800_000_000)
    body, tag = value.rsplit(".", 1)
    younger = f"{body.rsplit('.', 1)[0]}.{1_800_000_100:x}.{tag}"
    assert shop.from_timed_cookie(younger, 1_800_000_100) is None
    # The untimed form's tag does not pass for a timed value, nor the other way round.
    untimed = shop.cookie_value(sid)
    assert shop.from_timed_cookie(
        f"{sid}.{1_800_000_000:x}.{untimed.rsplit('.', 1)[1]}", 1_800_000_000) is None
    assert shop.from_cookie(f"{sid}.{tag}") is None


def test_an_age_of_zero_or_less_is_always_expired() -> None:
    for age in (0, -1):
        shop = _timed(age)
        sid = shop.new()
        assert shop.from_timed_cookie(shop.timed_cookie_value(sid, 100), 100) is None


def test_without_max_age_the_value_is_as_it_always_was() -> None:
    import base64
    from hashlib import blake2b

    shop = _ids()
    assert shop.cookie_max_age is None
    sid = shop.new()
    (subkey,) = KEY.derive("session cookie")[:1]
    mac = blake2b(b"https://shop.example\n" + sid.encode(), key=subkey, digest_size=16)
    tag = base64.urlsafe_b64encode(mac.digest()).decode()[:22]
    assert shop.cookie_value(sid) == f"{sid}.{tag}"


def test_the_memo_keeps_only_what_passed_and_stays_right_when_it_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids_module, "_MEMO", 8)
    shop = _ids()
    sid = shop.new()
    value = shop.cookie_value(sid)
    forged = value[:-1] + ("A" if value[-1] != "A" else "B")
    for _ in range(2):  # asked twice: a refusal is never remembered as a pass
        assert shop.from_cookie(forged) is None
    assert shop.from_cookie(value) == sid and shop.from_cookie(value) == sid
    for _ in range(50):
        other = shop.new()
        assert shop.from_cookie(shop.cookie_value(other)) == other
        assert shop.lookup(other) == (shop.digest(other), 1800, 8 * 3600)
    assert shop.from_cookie(forged) is None
    assert shop.from_cookie(value) == sid
    assert shop.lookup(sid) == (shop.digest(sid), 1800, 8 * 3600)


def test_a_remembered_id_keeps_its_own_limits() -> None:
    shop = _ids()
    sid = shop.new(remember=(7 * 86400, 30 * 86400))
    assert shop.is_remembered(sid) and not shop.is_remembered(shop.new())
    assert shop.limits(sid) == (7 * 86400, 30 * 86400)  # longer than the app's own
    assert shop.lookup(sid) == (shop.digest(sid), 7 * 86400, 30 * 86400)


def test_the_store_key_is_a_digest_keyed_by_the_sync_key() -> None:
    """A known answer: BLAKE2b-256 of the id, keyed with the sync key's HKDF-SHA256 subkey
    for "session store key" (info ``sessionshare/v1/session store key``). Computed once
    outside the library; an unkeyed digest, or one keyed by anything else, differs."""
    key = SyncKey.parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")  # bytes 0..31
    sid = "A" * 43 + ".c5aa953e830b.708.7080"
    ids = SessionIds(key, audience="http://a.test", idle_timeout=1800, absolute_timeout=28800)
    assert ids.is_known(sid)
    expected = "1f481afb275efd4cd08f6740aafbb4f46e6f22d597bd5e323b532adc98cb3712"
    assert ids.digest(sid) == expected
    assert ids.lookup(sid) == (expected, 1800, 28800)
    rules = Lifecycle(cookie=CookieSpec("sid", secure=False), key=key, audience="http://a.test",
                      idle_timeout=1800, absolute_timeout=28800, key_prefix="p:",
                      max_session_bytes=64 * 1024)
    assert rules.session_key(sid) == "p:s:{" + expected + "}"
