"""An operator and a viewer at work in the console, against the running pipeline, its
simulator and the control plane: a parameter change from the voice page lands on
voice.parameters and in the audit log; an alert is acknowledged from the inbox; the viewer
sees no write control and a forged write is refused; the app installs (manifest, service
worker) and its shell says when it is offline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.records import ALERT
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests.api_client import auth
from tests.browser.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    account,
    console_pipeline,
    signed_in,
)
from tests.conftest import RunningService, wait_for
from tests.kafka_tools import avro_records, produce_avro

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


def _audit(url: str, action: str) -> list[dict[str, object]]:
    response = httpx.get(f"{url}/api/v1/audit", params={"action": action}, headers=auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


def test_operator_changes_a_voice_and_acknowledges_an_alert_viewer_cannot(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    browser: Browser,
    screenshots: Path,
) -> None:
    service, settings = console_pipeline(settings_factory, service_factory, control=True)
    url = service.url
    account(url, "olga", "operator")
    account(url, "vera", "viewer")
    topics = Topics.from_settings(settings)

    # -- the operator changes voice-01's influence weight from its page
    page = signed_in(browser, url, "olga", DESKTOP)
    wait_for(
        lambda: (
            httpx.get(f"{url}/api/v1/voices/voice-01/state", headers=auth()).json()["state"]
            is not None
        ),
        30,
        "a closed window of voice-01",
    )
    page.get_by_role("link", name="voice-01").click()
    expect(page.get_by_role("heading", name="voice-01")).to_be_visible()
    form = page.get_by_role("form", name="Change parameters")
    form.get_by_label("Influence weight (0–2)").fill("0.5")
    form.get_by_label("Minutes (empty: until changed)").fill("30")
    form.get_by_label("Rationale").fill("calm voice-01 down (browser test)")
    form.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("change-result")).to_contain_text("Accepted: change ")
    change_id = page.get_by_test_id("change-result").inner_text().split()[2].rstrip(",")
    changes = [
        r for _, r in avro_records(settings, topics.parameters) if r["change_id"] == change_id
    ]
    assert len(changes) == 1
    assert (changes[0]["voice_id"], changes[0]["influence_weight"]) == ("voice-01", 0.5)
    assert changes[0]["requested_by"] == "user:olga"
    assert changes[0]["expected_duration_minutes"] == 30
    wait_for(
        lambda: any(e["target"] == "voice-01" for e in _audit(url, "parameters.set")),
        30,
        "the change's audit entry",
    )
    entry = next(e for e in _audit(url, "parameters.set") if e["target"] == "voice-01")
    assert (entry["principal"], entry["role"], entry["rationale"], entry["outcome"]) == (
        "user:olga",
        "operator",
        "calm voice-01 down (browser test)",
        "OK",
    )
    # the page lists the change once the sink has it
    expect(page.get_by_test_id("changes")).to_contain_text(
        "user:olga: calm voice-01 down (browser test)", timeout=20_000
    )
    page.screenshot(path=str(screenshots / "voice-desktop.png"), full_page=True)

    # -- an alert reaches the inbox and the operator acknowledges it
    now = int(time.time() * 1000)
    window = now // 2000 * 2000
    alert = alert_record(
        "stress_trend",
        "voice-03",
        window,
        "WARNING",
        "stress rising",
        0.8,
        0.7,
        ["lower its sensitivity"],
        "test",
        now,
    )
    produce_avro(settings, topics.alerts, "voice-03", ALERT, alert)
    page.get_by_role("link", name="Alerts").click()
    page.get_by_label("State").select_option("")  # any: it stays listed once acknowledged
    item = page.get_by_test_id("conditions").locator("li", has_text="stress_trend · voice-03")
    expect(item).to_contain_text("OPEN", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept("looking into it"))
    item.get_by_role("button", name="Acknowledge").click()
    # acknowledged (and, as it does not persist in 2 s windows, soon resolved)
    expect(item).to_contain_text("(acknowledged by user:olga)", timeout=30_000)
    conditions = httpx.get(
        f"{url}/api/v1/alerts/conditions", params={"rule": "stress_trend"}, headers=auth()
    ).json()["conditions"]
    assert [(c["subject"], c["acknowledged_by"]) for c in conditions] == [("voice-03", "user:olga")]
    page.screenshot(path=str(screenshots / "alerts-desktop.png"), full_page=True)

    # -- an orchestration requested by one operator and approved by another
    account(url, "otto", "operator")
    page.get_by_role("link", name="Orchestration").click()
    ask = page.get_by_role("form", name="Request an orchestration")
    ask.get_by_label("Strategy").select_option("adaptive")
    ask.get_by_label("Voices (comma-separated)").fill("voice-02, voice-04")
    ask.get_by_label("Rationale").fill("halve their influence (browser test)")
    ask.get_by_role("button", name="Request").click()
    expect(page.get_by_test_id("orchestration-message")).to_contain_text("Requested: ")
    oid = page.get_by_test_id("orchestration-message").inner_text().split()[-1]
    mine = page.locator(f'li[data-id="{oid}"]')
    expect(mine).to_contain_text("PROPOSED adaptive · voice-02, voice-04 · requested by user:olga")
    expect(mine.get_by_role("button", name="Reject")).to_be_visible()
    expect(mine.get_by_role("button", name="Approve")).to_have_count(0)  # not her own
    page.screenshot(path=str(screenshots / "orchestration-desktop.png"), full_page=True)
    second = signed_in(browser, url, "otto", PHONE)
    second.goto(f"{url}/console/orchestration")
    theirs = second.locator(f'li[data-id="{oid}"]')
    second.once("dialog", lambda dialog: dialog.accept("agreed: they dominate"))
    theirs.get_by_role("button", name="Approve").click()
    expect(theirs).to_contain_text("ACTIVE adaptive", timeout=30_000)
    expect(theirs).to_contain_text("decided by user:otto")
    expect(theirs.get_by_role("button", name="Rollback")).to_be_visible()
    widths = second.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    second.screenshot(path=str(screenshots / "orchestration-phone.png"), full_page=True)

    # -- the viewer: the same pages without write controls; a forged write is refused
    viewer = signed_in(browser, url, "vera", PHONE)
    viewer.goto(f"{url}/console/voices/voice-01")
    expect(viewer.get_by_role("heading", name="voice-01")).to_be_visible()
    expect(viewer.get_by_test_id("parameters")).to_be_visible()
    expect(viewer.get_by_role("form", name="Change parameters")).to_have_count(0)
    viewer.screenshot(path=str(screenshots / "voice-phone-viewer.png"), full_page=True)
    viewer.get_by_role("link", name="Alerts").click()
    viewer.get_by_label("State").select_option("")
    expect(viewer.get_by_test_id("conditions")).to_contain_text("stress_trend · voice-03")
    expect(viewer.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Resolve")).to_have_count(0)
    viewer.screenshot(path=str(screenshots / "alerts-phone-viewer.png"), full_page=True)
    signed = httpx.post(
        f"{url}/api/v1/auth/sign-in", json={"username": "vera", "password": PASSWORD}
    ).json()
    forged = httpx.post(
        f"{url}/api/v1/voices/voice-01/parameters",
        json={"parameters": {"influence_weight": 2.0}, "rationale": "forged by a viewer"},
        headers={"Authorization": f"Bearer {signed['access_token']}"},
    )
    assert forged.status_code == 403
    assert forged.json()["detail"] == (
        "this route needs the operator role or above; user:vera is a viewer"
    )

    # -- installable: the manifest, a service worker in control, an offline shell
    manifest = httpx.get(f"{url}/console/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    assert (manifest.json()["start_url"], manifest.json()["display"]) == (
        "/console/",
        "standalone",
    )
    script = viewer.evaluate("() => navigator.serviceWorker.ready.then((r) => r.active.scriptURL)")
    assert script == f"{url}/console/sw.js"
    viewer.reload()  # now under the worker's control, which caches the shell
    expect(viewer.get_by_test_id("who")).to_contain_text("vera")
    viewer.context.set_offline(True)
    viewer.reload()
    expect(viewer.get_by_test_id("offline")).to_contain_text("You are offline")
    viewer.screenshot(path=str(screenshots / "offline-phone.png"))
    viewer.context.set_offline(False)
