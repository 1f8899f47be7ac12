"""Headless Chromium for the console tests: Debian's chromium and chromium-driver, via Selenium."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path(os.environ.get("CAUCE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CAUCE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
# The README's pictures are refreshed by `make screenshots`; other runs keep theirs in /tmp, so
# `make test` leaves the work tree clean.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("CAUCE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "cauce-screenshots"
)


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile, closed afterwards."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not found: `make test` installs Debian's chromium and "
            "chromium-driver (or: apt-get install -y chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="cauce-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def find(browser: WebDriver, css: str) -> WebElement:
    """The element matching the CSS selector."""
    return browser.find_element(By.CSS_SELECTOR, css)


def wait_text(browser: WebDriver, css: str, text: str, *, timeout: float = 120) -> str:
    """Wait until an element matching `css` shows `text`; return all it shows, or fail with
    what it showed instead."""
    seen: list[str] = []

    def shows(driver: WebDriver) -> bool:
        elements = driver.find_elements(By.CSS_SELECTOR, css)
        seen[:] = [e.text for e in elements]
        return any(text in shown for shown in seen)

    try:
        WebDriverWait(
            browser,
            timeout,
            poll_frequency=0.2,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(shows)  # a live part of the page may be replaced while it is read
    except Exception as exc:
        raise AssertionError(f"{css} never showed {text!r}; last seen {seen!r}") from exc
    return next(shown for shown in seen if text in shown)


def fill(browser: WebDriver, element_id: str, text: str) -> None:
    """Replace the text of an input or text area."""
    element = browser.find_element(By.ID, element_id)
    element.clear()
    if text:
        element.send_keys(text)


def screenshot(browser: WebDriver, name: str) -> Path:
    """Save the whole page (up to 2,400 pixels tall) as <name>.png in SCREENSHOTS."""
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height, 600), 2400))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(1280, 1000)
    return path
