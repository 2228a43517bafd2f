"""sessionshare.core.ids: session ids, per-app cookie values, keyed store digests."""

from __future__ import annotations

import pytest

from sessionshare import SyncKey
from sessionshare.core import ids as ids_module
from sessionshare.core.cookies import CookieSpec
from sessionshare.core.ids import COOKIE_VALUE_PATTERN, SESSION_ID_PATTERN, SessionIds
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
