"""Headless Chromium from Debian's package (`make system-packages`), driven by Playwright
for Python; nothing is downloaded. Screenshots go to ``test-screenshots/`` (ignored by git)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no chromium on PATH: `make system-packages` installs Debian's")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root (CI containers) has no sandbox
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(autouse=True)
def _close_pages(browser: Browser, service_factory: object) -> Iterator[None]:
    """Every page a test opened is closed before its services stop (an open feed would
    hold up the server's shutdown)."""
    yield
    for context in browser.contexts:
        context.close()
