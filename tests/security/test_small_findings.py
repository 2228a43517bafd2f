"""Issue 16, findings 4 and 8: one test (or a few) per defect, each failing before its fix.

Where a store is involved the test runs on MemoryStore and on real Redis (the
``store`` fixture). Test names are the ones SECURITY.md's threat table cites.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping

import pytest
from flow import SHOP, Browser

from sessionshare import MemoryStore, RedisStore, SessionStore
from sessionshare.store.base import SessionRecord

from .deploy import security_deployment


# -- 8a. A damaged store record is no session, not a 500 --------------------------------------
# Valid JSON of the wrong shape (another writer, a bug in an older version, a hand edit)
# raised AttributeError/TypeError on every request that presented the session's cookie.

DAMAGED = [
    '{"d": [], "m": "x"}',
    '{"d": {"user": 5}, "m": {}}',
    '{"d": {"user": "\\"alice\\""}, "m": {"c": "soon"}}',
    '{"d": "user", "m": []}',
    '{"d": {"user": null}, "m": {"c": true}}',
]


class _DamagingStore:
    """A store whose every session read returns one damaged record (any backend can)."""

    def __init__(self, inner: SessionStore, damaged: str) -> None:
        self.inner = inner
        self.damaged = json.loads(damaged)
        self.damage = False

    def load(self, key: str, idle_ttl: int) -> SessionRecord | None:
        record = self.inner.load(key, idle_ttl)
        if record is not None and self.damage:
            return SessionRecord(self.damaged["d"], self.damaged["m"])
        return record

    def save(self, key: str, *, changed: Mapping[str, str], deleted: Collection[str] = (),
             meta: Mapping[str, int] | None = None, ttl: int, create: bool = False) -> bool:
        return self.inner.save(key, changed=changed, deleted=deleted, meta=meta, ttl=ttl,
                               create=create)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def put_ticket(self, key: str, value: str, ttl: int) -> None:
        self.inner.put_ticket(key, value, ttl)

    def take_ticket(self, key: str) -> str | None:
        return self.inner.take_ticket(key)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def _session_keys(store: SessionStore) -> list[str]:
    if isinstance(store, RedisStore):
        names = [k.decode() if isinstance(k, bytes) else k for k in store.client.keys("*")]
        return [k for k in names if k.startswith("sessionshare:s:")]
    assert isinstance(store, MemoryStore)
    return list(store.sessions())


@pytest.mark.parametrize("damaged", DAMAGED)
def test_damaged_store_record_reads_as_no_session(
    store: SessionStore, clock: Callable[[], float], damaged: str
) -> None:
    wrapped = _DamagingStore(store, damaged)
    dep = security_deployment(wrapped, clock)  # type: ignore[arg-type]
    browser = Browser(dep)
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    if isinstance(store, RedisStore):
        # The real thing: the bytes in Redis are damaged, the parser meets them.
        for key in _session_keys(store):
            store.client.set(key, damaged, keepttl=True)
    else:
        wrapped.damage = True
    for url in (SHOP + "/orders", SHOP + "/about", "http://id.test/"):
        page = browser.get(url)
        assert page.status_int < 500, (url, page.status)
    assert browser.get(SHOP + "/orders").status_int == 302  # signed out: sent to sign in
    assert browser.get(SHOP + "/write?cart=1").status_int == 302
