"""Headless Chromium from Debian's package (`make system-packages`), driven by Playwright
for Python; nothing is downloaded. Screenshots go to ``test-screenshots/`` (ignored by git)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from deltaomega.config import Settings
from deltaomega.producer import SimulationConfig
from deltaomega.security.roles import Role
from tests.api_client import auth
from tests.conftest import RunningService

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no chromium on PATH: `make system-packages` installs Debian's")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module: while Playwright's sync API runs, its event loop is the thread's running
    loop, and every later test's ``asyncio.run`` would be refused."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
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


#: every console account the browser tests make has this password
PASSWORD = "a long enough password"


def console_pipeline(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    control: bool = False,
) -> tuple[RunningService, Settings]:
    """The pipeline with six simulated voices in 2 s windows (1 s grace), its API, and its
    settings."""
    settings = settings_factory(window_seconds=2, interaction_window_seconds=2, grace_seconds=1)
    simulation = SimulationConfig(voices=6, rate=120, interaction_rate=30, seed=3)
    return service_factory(settings, simulation=simulation, control=control), settings


def account(url: str, username: str, role: str) -> None:
    """A console account, made through the admin API."""
    created = httpx.post(
        f"{url}/api/v1/accounts",
        json={"username": username, "password": PASSWORD, "role": role},
        headers=auth(Role.ADMIN),
    )
    assert created.status_code == 201, created.text


def signed_in(browser: Browser, url: str, username: str, viewport: dict[str, int]) -> Page:
    """A new browser context's page, signed in to the console as ``username``."""
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{url}/console/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_contain_text(username)
    return page
