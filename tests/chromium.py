"""Headless Chromium for the tests: Debian's ``chromium`` + ``chromium-driver``.

Selenium drives the system binaries (no browser download). The flags keep
Chromium off the network: this machine has none, and background requests
would only fail noisily. ``*.localhost`` names are mapped to 127.0.0.1, so
each example app gets its own origin and cookie jar on one machine.

    with chromium() as driver:
        driver.get("http://shop.localhost:8001/")
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SESSIONSHARE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SESSIONSHARE_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"


def require_chromium() -> None:
    """Skip (a failure in CI, where SESSIONSHARE_NO_SKIP is set) without Chromium."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(
            "needs Debian's chromium and chromium-driver: "
            "apt-get install chromium chromium-driver"
        )


@contextmanager
def chromium(
    *, host_rules: str = "MAP *.localhost 127.0.0.1", profile: str | None = None,
    flags: Sequence[str] = (), block_cookies_of: Sequence[str] = (),
) -> Iterator[object]:
    """A headless Chromium; ``flags`` are more command-line switches (they come last).

    ``block_cookies_of``: origins whose cookies this browser blocks, as a user does in
    its site settings (it neither keeps nor sends any of theirs; other sites' are kept).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    keep = profile is not None  # a profile of the test's own outlives this browser
    profile = profile or tempfile.mkdtemp(prefix="sessionshare-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # A window the browser counts as hidden (a popup behind its opener, a window the
    # test switched away from) may be backgrounded in the new headless mode, its
    # renderer throttled; chromedriver's next command on it then waits on that renderer
    # up to the page-load timeout. CI saw that once on the popup-flood test ("Timed out
    # receiving message from renderer: 30.000"), and these switches, which browser
    # automation commonly sets, keep every window running as if it were in front.
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-backgrounding-occluded-windows", "--disable-renderer-backgrounding",
        "--disable-background-timer-throttling",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        f"--host-resolver-rules={host_rules}", "--window-size=1200,900", *flags,
    ):
        options.add_argument(flag)
    if block_cookies_of:
        # The profile's content setting "cookies: blocked" for each origin (2 = block).
        options.add_experimental_option("prefs", {
            "profile.content_settings.exceptions.cookies": {
                f"{origin},*": {"setting": 2} for origin in block_cookies_of
            },
        })
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        if not keep:
            shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(driver: object, name: str) -> Path:
    """Keep a screenshot under tests/artifacts/ (for a failing browser test)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path
