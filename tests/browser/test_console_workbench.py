"""An analyst's workbench in the browser (a query over the project's tables runs, one
reaching outside them is refused, a query is saved), and a sign-in whose refresh token was
used elsewhere: the console's next refresh ends it, for the thief as well."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from deltaomega.config import Settings
from deltaomega.security.roles import Role
from tests.api_client import auth
from tests.browser.conftest import DESKTOP, PHONE, account, console_pipeline, signed_in
from tests.conftest import RunningService, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


def test_workbench_queries_and_a_stolen_refresh_token_ends_the_sign_in(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    browser: Browser,
    screenshots: Path,
) -> None:
    service, settings = console_pipeline(settings_factory, service_factory)
    url = service.url
    account(url, "ana", "analyst")
    account(url, "vera", "viewer")
    wait_for(
        lambda: (
            all(
                v["state"] is not None
                for v in httpx.get(f"{url}/api/v1/voices", headers=auth(Role.ADMIN)).json()[
                    "voices"
                ]
            )
            and len(httpx.get(f"{url}/api/v1/voices", headers=auth(Role.ADMIN)).json()["voices"])
            == 6
        ),
        60,
        "a closed window of every voice",
    )

    page = signed_in(browser, url, "ana", DESKTOP)
    page.get_by_role("link", name="Workbench").click()
    expect(page.get_by_role("group").filter(has_text="voice_states")).to_have_count(1)
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_test_id("query-summary")).to_contain_text("6 rows in ")
    result = page.get_by_test_id("query-result")
    assert result.locator("thead th").all_inner_texts() == ["voice_id", "windows", "stress"]
    assert result.locator("tbody tr td:first-child").all_inner_texts() == [
        f"voice-{n:02d}" for n in range(6)
    ]
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute("download", "query.csv")
    page.get_by_label("Save as").fill("per-voice")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("saved")).to_contain_text("per-voice")
    page.get_by_role("button", name="Show chart").click()
    expect(page.get_by_role("img", name="The query's numeric columns")).to_be_visible()
    page.screenshot(path=str(screenshots / "workbench-desktop.png"), full_page=True)

    page.get_by_label("SQL").fill("SELECT name FROM system.tables")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_test_id("query-error")).to_have_text(
        f"sql: only the {settings.clickhouse_database} database may be read (not system)"
    )
    expect(page.get_by_test_id("query-result")).to_have_count(0)

    # the predictions page: the next window of every voice (6 rows, riskiest first), the
    # conflicts ranked, the pattern history; a voice's charts shade their predicted intervals
    page.get_by_role("link", name="Predictions").click()
    riskiest = page.get_by_test_id("riskiest").locator("tbody tr")
    expect(riskiest).to_have_count(6, timeout=20_000)
    risks = [float(t.rstrip(" %")) for t in riskiest.locator("td:nth-child(2)").all_inner_texts()]
    assert risks == sorted(risks, reverse=True), risks
    conflicts = page.get_by_test_id("likeliest-conflicts").locator("meter")
    values = [float(v) for v in conflicts.evaluate_all("ms => ms.map(m => m.value)")]
    assert values == sorted(values, reverse=True), values
    expect(page.get_by_test_id("patterns").locator("tbody tr").first).to_be_visible()
    page.screenshot(path=str(screenshots / "predictions-desktop.png"), full_page=True)
    riskiest.first.get_by_role("link").click()
    shaded = page.get_by_role("img", name=re.compile("predicted interval of each window"))
    expect(shaded).to_have_count(4, timeout=15_000)  # a chart per metric, each shaded
    page.screenshot(path=str(screenshots / "voice-predicted-desktop.png"), full_page=True)

    # a viewer is not offered the workbench nor the predictions
    viewer = signed_in(browser, url, "vera", PHONE)
    expect(viewer.get_by_role("link", name="Workbench")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Predictions")).to_have_count(0)

    # the analyst's refresh token, taken and used elsewhere: the console's next refresh
    # presents the retired one, and the sign-in ends for both
    stolen = page.evaluate("() => sessionStorage.getItem('deltaomega.refresh')")
    used = httpx.post(f"{url}/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert used.status_code == 200
    page.reload()
    expect(page.get_by_role("alert")).to_have_text(
        "this refresh token was already used: the sign-in is ended; sign in again"
    )
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    thief = httpx.post(
        f"{url}/api/v1/auth/refresh", json={"refresh_token": used.json()["refresh_token"]}
    )
    assert thief.status_code == 401
    assert thief.json()["detail"] == "this sign-in has ended (a refresh token was used twice)"
    mobile = signed_in(browser, url, "ana", PHONE)
    mobile.goto(f"{url}/console/workbench")
    expect(mobile.get_by_role("button", name="Run")).to_be_visible()
    widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    mobile.screenshot(path=str(screenshots / "workbench-phone.png"), full_page=True)
    mobile.get_by_role("link", name="Predictions").click()
    expect(mobile.get_by_test_id("riskiest").locator("tbody tr")).to_have_count(6)
    widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    mobile.screenshot(path=str(screenshots / "predictions-phone.png"), full_page=True)
