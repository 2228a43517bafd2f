"""Differential check against a real browser's URL parser (headless Chromium).

The allow-list parses callbacks with its own strict grammar; the browser
that follows the redirect parses with the WHATWG URL standard. An open
redirect lives exactly where the two disagree. So for every URL of the
corpus, and for batches of generated ones, Chromium evaluates
``new URL(u)`` and we assert, whenever ``AllowList`` accepts ``u``:

- Chromium's origin of ``u`` equals the allowed origin
  (:attr:`AllowedCallback.origin`, the token's audience), and
- Chromium's parse of the canonical URL we redirect to is that same URL,
  character for character (so the ``Location`` we send means what we checked).

For the remote's return path, Chromium resolves ``safe_return_path(p)``
against the remote's page and must stay on the remote's origin; it also
checks the test suite's own browser model (:func:`security.harness.browser_origin`):
whenever the model says "same origin", Chromium agrees.

One ``execute_script`` call per batch, on ``about:blank``: no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chromium import chromium
from flow import BLOG
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionshare import AllowList, CallbackRejected
from sessionshare.core.request import safe_return_path

from .corpus import ACCEPTED, ALLOWED, CALLBACK_ATTACKS, EVIL_RETURN_PATHS, KEPT_RETURN_PATHS
from .harness import browser_origin
from .profiles import PROFILE, budget
from .strategies import callback_urls, return_paths, unicode_wildcard_callbacks

pytestmark = pytest.mark.browser

ALLOW = AllowList(ALLOWED)
_PARSE = """
const base = arguments[1];
return arguments[0].map(u => {
  try {
    const url = base === null ? new URL(u) : new URL(u, base);
    return [url.href, url.origin];
  } catch (e) {
    return null;
  }
});
"""
BATCH = 200
#: Batches of BATCH generated URLs: 100,000 URLs in the thorough profile.
THOROUGH_BATCHES = 100_000 // BATCH


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium() as browser:
        browser.get("about:blank")
        yield browser


def parse(driver: Any, urls: list[str], base: str | None = None) -> list[tuple[str, str] | None]:
    results = driver.execute_script(_PARSE, urls, base)
    assert len(results) == len(urls)
    return [tuple(r) if r is not None else None for r in results]


def _accepted(urls: list[str]) -> list[tuple[str, str, str]]:
    """(url, canonical url, origin) for each url the allow-list accepts."""
    out = []
    for url in urls:
        try:
            allowed = ALLOW.check_callback(url)
        except CallbackRejected:
            continue
        out.append((url, allowed.url, allowed.origin))
    return out


def _assert_browser_agrees(driver: Any, urls: list[str]) -> int:
    accepted = _accepted(urls)
    if not accepted:
        return 0
    raw = parse(driver, [u for u, _, _ in accepted])
    canonical = parse(driver, [c for _, c, _ in accepted])
    for (url, canon, origin), seen, seen_canon in zip(accepted, raw, canonical, strict=True):
        assert seen is not None and seen[1] == origin, (url, origin, seen)
        assert seen_canon == (canon, origin), (url, canon, seen_canon)
    return len(accepted)


def test_corpus_accepted_urls_mean_the_same_to_chromium(driver: Any) -> None:
    urls = [a.value for a in CALLBACK_ATTACKS] + list(ACCEPTED)
    assert _assert_browser_agrees(driver, urls) == len(ACCEPTED)
    # And the hostile ones are not accepted by accident somewhere in between.
    assert not _accepted([a.value for a in CALLBACK_ATTACKS])


def test_corpus_rejections_include_urls_chromium_reads_as_allowed(driver: Any) -> None:
    # Evidence that the corpus bites: many hostile strings are *allowed origins* to a
    # browser (tabs stripped, backslashes read as slashes, leading blanks trimmed, soft
    # hyphens dropped), which is exactly why the allow-list refuses them unparsed.
    urls = [a.value for a in CALLBACK_ATTACKS]
    allowed_origins = {"http://shop.test", "http://blog.test", "https://secure.test"}
    seen = parse(driver, urls)
    lookalikes = [u for u, s in zip(urls, seen, strict=True) if s and s[1] in allowed_origins]
    assert len(lookalikes) >= 20, lookalikes


_batch_settings = (
    settings(budget(), max_examples=THOROUGH_BATCHES) if PROFILE == "thorough" else budget(0.08)
)


@_batch_settings
@given(st.lists(callback_urls(), min_size=BATCH, max_size=BATCH))
def test_generated_accepted_urls_mean_the_same_to_chromium(driver: Any, urls: list[str]) -> None:
    _assert_browser_agrees(driver, urls)


def test_return_paths_stay_on_the_origin_in_chromium(driver: Any) -> None:
    candidates = [a.value for a in EVIL_RETURN_PATHS] + KEPT_RETURN_PATHS
    _assert_return_paths(driver, candidates)


@_batch_settings
@given(st.lists(return_paths(), min_size=BATCH, max_size=BATCH))
def test_generated_return_paths_stay_on_the_origin_in_chromium(driver: Any,
                                                               paths: list[str]) -> None:
    _assert_return_paths(driver, paths)


def _assert_return_paths(driver: Any, candidates: list[str]) -> None:
    page = BLOG + "/some/page"
    safe = [safe_return_path(p) for p in candidates]
    for path, seen in zip(safe, parse(driver, safe, page), strict=True):
        assert seen is not None and seen[1] == BLOG, (path, seen)
    # The suite's browser model never calls a cross-origin location "same origin".
    for path, seen in zip(candidates, parse(driver, candidates, page), strict=True):
        if browser_origin(path, BLOG) == BLOG:
            assert seen is not None and seen[1] == BLOG, (path, seen)


@_batch_settings
@given(st.lists(unicode_wildcard_callbacks(), min_size=BATCH, max_size=BATCH))
def test_generated_unicode_hosts_mean_the_same_to_chromium(driver: Any, urls: list[str]) -> None:
    # IDNA in particular: whatever Unicode label the allow-list accepts under the wildcard
    # must be the host Chromium resolves, in the same A-label form.
    _assert_browser_agrees(driver, urls)
