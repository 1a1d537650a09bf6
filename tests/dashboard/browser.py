"""Headless Chromium driven by Selenium, and a check that a screenshot shows something.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (scripts/test.sh
installs both when they are missing). The tests are skipped, saying why, only when
neither is on the machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
# Regenerate the README's screenshots with
#   DBOS_DASHBOARD_SHOTS=docs/dashboard pytest tests/dashboard/test_browser.py -k fastapi
README_SHOTS = frozenset(
    {
        "fastapi-live",
        "fastapi-detail",
        "fastapi-queues",
        "fastapi-health",
        "fastapi-phone",
        "fastapi-dark",
    }
)
# Seconds to wait for a page, a live update or a state in the database.
WAIT = 30


def start_browser() -> WebDriver:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "chromium and chromium-driver are not installed (scripts/test.sh installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='dbos-chromium-')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    # Live pages replace their elements: one read between replacements may go stale.
    wait = WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message=what)


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def attribute(driver: WebDriver, css: str, name: str) -> str | None:
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    return elements[0].get_attribute(name) if elements else None


def screenshot(driver: WebDriver, folder: Path, name: str) -> Path:
    """Save the page as ``name``.png and fail if it is blank (one flat color)."""
    data = driver.get_screenshot_as_png()
    image = Image.open(BytesIO(data)).convert("L")
    width, height = image.size
    assert width >= 300 and height >= 300, f"{name}: screenshot is only {width}x{height}"
    spread = ImageStat.Stat(image).stddev[0]
    colors = len(image.getcolors(maxcolors=1 << 16) or ())
    assert spread > 8 and colors > 16, (
        f"{name}: the screenshot looks blank ({spread=:.1f}, {colors=})"
    )
    path = folder / f"{name}.png"
    path.write_bytes(data)
    docs = os.environ.get("DBOS_DASHBOARD_SHOTS")
    if docs and name in README_SHOTS:
        # The README's pictures: smaller, in a 64-color palette.
        picture = Image.open(BytesIO(data)).convert("RGB")
        picture.thumbnail((960, 960))
        picture.quantize(64).save(Path(docs) / f"{name}.png", optimize=True)
    return path


def no_horizontal_overflow(driver: WebDriver) -> bool:
    return bool(
        driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
    )


def unlabeled_controls(driver: WebDriver) -> list[str]:
    """Form controls a screen reader could not name."""
    return list(
        driver.execute_script(
            """
            return Array.from(document.querySelectorAll(
                'input:not([type=hidden]), select, textarea'))
              .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.outerHTML.slice(0, 80));
            """
        )
    )


def mark_page(driver: WebDriver) -> None:
    """Leave a mark on the current document: a reload would remove it."""
    driver.execute_script("window.__dbosNoReload = 'kept';")


def page_kept(driver: WebDriver) -> bool:
    return driver.execute_script("return window.__dbosNoReload || null") == "kept"
