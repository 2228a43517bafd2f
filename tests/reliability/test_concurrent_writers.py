"""Two apps, 16 threads each, writing 1,000 distinct keys each into ONE shared session.

The shop and the blog are separate middlewares with separate RedisStore
clients (separate connection pools, as two deployments would have), over
one real Redis. Every request loads the session and writes one key of its
own through the remote's protected ``/write`` path; the store merges
changed keys on the server, so nothing another writer did in between is
lost. At the end all 2,000 keys hold exactly the values written -- a
store that wrote whole sessions back would lose most of them.

The same key written by both apps is last-write-wins, as documented: its
final value is one of the values written, and the session stays intact.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import webtest
from flow import BLOG, SHOP, Browser, Deployment

from sessionshare import RedisStore

from .figures import report

KEYS_PER_APP = 1000
THREADS_PER_APP = 16


def _writer(app: Any, host: str, cookie: str, keys: list[str],
            statuses: Counter[int], lock: threading.Lock,
            barrier: threading.Barrier) -> Callable[[], None]:
    def write_all() -> None:
        # A TestApp per thread: WebTest's cookie jar is not meant to be shared.
        client = webtest.TestApp(app, extra_environ={"HTTP_HOST": host})
        seen: Counter[int] = Counter()
        barrier.wait()
        for key in keys:
            response = client.get(f"/write?{key}={key}-value&shared={key}",
                                  headers={"Cookie": cookie, "Accept": "text/html"},
                                  status="*")
            seen[response.status_int] += 1
        with lock:
            statuses.update(seen)

    return write_all


def test_two_apps_32_threads_2000_keys_nothing_lost(redis_url: str) -> None:
    shop_store, blog_store = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    shop_dep = Deployment(shop_store, time.time)
    blog_dep = Deployment(blog_store, time.time, key=shop_dep.key)
    browser = Browser(shop_dep)
    assert browser.sign_in_at(SHOP + "/orders").json["user"] == "alice"
    assert browser.sign_in_at(BLOG + "/x").json["user"] == "alice"
    # The one shared session, through each app's own cookie value.
    cookies = {host: f"sessionshare={browser.cookie(host)}" for host in ("shop.test", "blog.test")}
    assert browser.session_id("shop.test") == browser.session_id("blog.test") is not None

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(2 * THREADS_PER_APP)
    threads = []
    for app, host, prefix in ((shop_dep.shop, "shop.test", "shop"),
                              (blog_dep.blog, "blog.test", "blog")):
        keys = [f"{prefix}{i:04d}" for i in range(KEYS_PER_APP)]
        for t in range(THREADS_PER_APP):
            work = _writer(app, host, cookies[host], keys[t::THREADS_PER_APP], statuses, lock,
                           barrier)
            threads.append(threading.Thread(target=work, daemon=True))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert statuses == {200: 2 * KEYS_PER_APP}, statuses

    # Read back through an app, as a user would see it.
    page = Browser(blog_dep)
    page.apps["blog.test"].set_cookie("sessionshare", browser.cookie("blog.test") or "")
    seen = page.get(BLOG + "/read").json
    assert seen["user"] == "alice"
    session = seen["session"]
    expected = {f"{p}{i:04d}": f"{p}{i:04d}-value" for p in ("shop", "blog")
                for i in range(KEYS_PER_APP)}
    missing = [k for k in expected if k not in session]
    wrong = [k for k in expected if k in session and session[k] != expected[k]]
    assert not missing and not wrong, f"{len(missing)} missing, {len(wrong)} wrong"
    # Same key from both apps: last write wins, and it is one of the writes.
    assert session["shared"] in expected
    assert session["user"] == "alice"
    assert set(session) == set(expected) | {"shared", "user"}
    report("concurrent writers", {
        "writes": sum(statuses.values()), "keys_present": len(expected) - len(missing),
        "seconds": round(elapsed, 1),
    })
    shop_store.close()
    blog_store.close()
