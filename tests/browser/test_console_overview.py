"""The console in a real browser against the running pipeline and its simulator: a person
signs in, the overview fills from the voice-state feed and moves on with the next window,
the first load stays within its JavaScript budget, and the phone layout never scrolls
sideways; collective dynamics draws its network and heat maps; a keyboard alone signs in
and moves between pages, with the focus always shown. Screenshots of the pages, desktop
and phone, go to test-screenshots/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from deltaomega.config import Settings
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, account, console_pipeline
from tests.conftest import RunningService

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

#: compressed JavaScript of the first load of /console
JS_BUDGET_BYTES = 300_000


def _sign_in(page: Page, url: str, username: str) -> float:
    """Signs in; the seconds from pressing the button to the voices' states shown."""
    page.goto(f"{url}/console/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    pressed = time.monotonic()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_have_text(f"{username} · viewer")
    expect(page.get_by_test_id("voice-count")).not_to_have_text("0", timeout=30_000)
    return time.monotonic() - pressed


def test_a_viewer_sees_the_overview_live_on_desktop_and_phone(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    browser: Browser,
    screenshots: Path,
) -> None:
    service, _ = console_pipeline(settings_factory, service_factory)
    account(service.url, "vera", "viewer")

    desktop = browser.new_context(viewport=DESKTOP)
    page = desktop.new_page()
    scripts: list[Response] = []
    page.on(
        "response",
        lambda r: scripts.append(r) if r.url.endswith(".js") and "/console/" in r.url else None,
    )
    first_update = _sign_in(page, service.url, "vera")
    expect(page.get_by_test_id("feed-status")).to_have_text("live")
    expect(page.get_by_test_id("voice-count")).to_have_text("6", timeout=15_000)
    rows = page.get_by_test_id("voices").locator("tbody tr")
    expect(rows).to_have_count(6)
    assert rows.locator("th").all_inner_texts() == [f"voice-{n:02d}" for n in range(6)]

    # pipeline health: ready, lag, events per second (once two answers are apart), model
    expect(page.get_by_test_id("pipeline-ready")).to_have_text("ready")
    expect(page.get_by_test_id("pipeline-model")).to_have_text(re.compile(r"^\S+$"))
    expect(page.get_by_test_id("pipeline-model")).not_to_have_text("—")
    expect(page.get_by_test_id("pipeline-lag")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_test_id("pipeline-rate")).to_have_text(
        re.compile(r"^\d+(\.\d)?$"), timeout=15_000
    )
    rate = float(page.get_by_test_id("pipeline-rate").inner_text())
    assert 0 < rate < 1000, rate  # the simulator sends 120 events/s (and 30 interactions/s)

    # the next window arrives without a reload (one window is 2 s, plus the 1 s grace)
    window = page.get_by_test_id("latest-window").inner_text()
    expect(page.get_by_test_id("latest-window")).not_to_have_text(window, timeout=10_000)

    compressed = 0
    for response in scripts:
        assert response.status == 200
        assert response.headers.get("content-encoding") == "gzip"
        compressed += int(response.headers["content-length"])
    assert 0 < compressed < JS_BUDGET_BYTES, compressed
    print(
        f"console first load: {compressed / 1000:.1f} kB of compressed JS in {len(scripts)} "
        f"files; sign-in → the voices' states shown {first_update:.2f} s"
    )
    page.screenshot(path=str(screenshots / "overview-desktop.png"), full_page=True)

    # collective dynamics: the network (Cytoscape's canvases), the matrix per kind, harmony
    # over time; a viewer is told that emergence markers are for analysts
    page.get_by_role("link", name="Dynamics").click()
    scores = page.get_by_test_id("dynamics-scores")
    expect(scores.locator("div").first).to_have_text("Voices6", timeout=15_000)
    network = page.get_by_test_id("network")
    expect(network).to_have_attribute("aria-label", re.compile(r": 6 voices, [1-9]\d* links, "))
    assert network.locator("canvas").count() >= 1
    expect(page.get_by_test_id("heatmap").locator("canvas").first).to_be_attached()
    page.get_by_role("radio", name="Suppression").check()
    expect(page.get_by_test_id("heatmap")).to_have_attribute(
        "aria-label", "Suppression strength from each voice (rows) to each voice (columns)"
    )
    expect(page.get_by_text("Emergence markers are shown to analysts and above.")).to_be_visible()
    page.screenshot(path=str(screenshots / "dynamics-desktop.png"), full_page=True)

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    shown = _sign_in(mobile, service.url, "vera")  # windows have closed by now
    print(f"phone, with windows closed before: sign-in → the voices' states shown {shown:.2f} s")
    expect(mobile.get_by_test_id("voice-count")).to_have_text("6", timeout=15_000)
    widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], widths
    mobile.screenshot(path=str(screenshots / "overview-phone.png"), full_page=True)
    mobile.get_by_role("link", name="Dynamics").click()
    expect(mobile.get_by_test_id("network").locator("canvas").first).to_be_attached()
    widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    mobile.screenshot(path=str(screenshots / "dynamics-phone.png"), full_page=True)

    # keyboard only: sign in, reach a page through the navigation, focus always visible
    keys = browser.new_context(viewport=DESKTOP).new_page()
    keys.goto(f"{service.url}/console/")
    expect(keys.get_by_label("Username")).to_be_focused()
    keys.keyboard.type("vera")
    keys.keyboard.press("Tab")
    keys.keyboard.type(PASSWORD)
    keys.keyboard.press("Enter")
    expect(keys.get_by_test_id("who")).to_have_text("vera · viewer")
    for _ in range(12):
        keys.keyboard.press("Tab")
        focused = keys.evaluate(
            "() => [document.activeElement.textContent, getComputedStyle(document.activeElement)"
            ".outlineStyle]"
        )
        assert focused[1] != "none", focused  # the focus ring shows where the keyboard is
        if focused[0] == "Dynamics":
            break
    else:
        raise AssertionError("the Dynamics link is not reachable with Tab")
    keys.keyboard.press("Enter")
    expect(keys.get_by_role("heading", name="Collective dynamics")).to_be_visible()
    expect(keys).to_have_url(re.compile(r"/console/dynamics$"))

    # the sign-in page itself, for the record
    signed_out = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
    signed_out.goto(f"{service.url}/console/")
    expect(signed_out.get_by_role("button", name="Sign in")).to_be_visible()
    signed_out.screenshot(path=str(screenshots / "sign-in-phone.png"))
