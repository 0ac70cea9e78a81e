"""A real headless Chromium for the dashboard's tests: Debian's `chromium` and `chromium-driver`
driven by Selenium (Playwright's own browser download does not work on CI machines here).

`.ci/run` installs both. Without them the browser tests skip, saying how to install them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "the dashboard's browser tests need Debian's Chromium and its driver: "
    "`sudo apt-get install -y chromium chromium-driver` (or set MINGA_CHROMIUM and MINGA_CHROMEDRIVER)"
)
WINDOW = (1366, 900)  # a laptop screen


def _find(variable: str, *names: str) -> str | None:
    given = os.environ.get(variable)
    if given:
        return given if Path(given).exists() else None
    return next((found for name in names if (found := shutil.which(name))), None)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver), or None when either is missing."""
    browser = _find("MINGA_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver = _find("MINGA_CHROMEDRIVER", "chromedriver")
    return (browser, driver) if browser and driver else None


def chrome_options(browser: str, profile: Path) -> Any:
    """Headless Chromium at `browser`, a laptop-sized window, a profile of its own."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    return options


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Chromium (selenium WebDriver), one per test module; skips without one."""
    paths = chromium_paths()
    if paths is None:
        if os.environ.get("CI"):  # .ci/run installs it: there a missing browser is a failure, not a skip
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = paths
    options = chrome_options(browser, tmp_path_factory.mktemp("chromium"))
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_page_load_timeout(30)
    try:
        yield session
    finally:
        session.quit()
