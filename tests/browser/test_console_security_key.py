"""An admin's security key in the console, with Chromium's virtual authenticator (WebAuthn
over the DevTools protocol) against the running pipeline and its control plane: an
emergency orchestration is refused while the admin has no key, and refused when the key's
answer does not verify; with a key registered from the account page the console makes the
step-up itself and the emergency starts; signing in again asks for the key. Notifications:
permission granted and the subscription asked for, and the service worker shows a pushed
alert."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from deltaomega.config import Settings
from deltaomega.security.roles import Role
from tests.api_client import auth
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, account, console_pipeline, signed_in
from tests.conftest import RunningService, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


def _orchestrations(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/orchestration", headers=auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["orchestrations"]
    return found


def _audit(url: str, action: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/audit", params={"action": action}, headers=auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def _request_emergency(page: Page, voice: str) -> str:
    page.get_by_role("link", name="Orchestration").click()
    ask = page.get_by_role("form", name="Request an orchestration")
    ask.get_by_label("Strategy").select_option("emergency")
    ask.get_by_label("Voices (comma-separated)").fill(voice)
    ask.get_by_label("Minutes active").fill("5")
    ask.get_by_label("Rationale").fill(f"mute {voice} now (browser test)")
    ask.get_by_role("button", name="Request").click()
    message = page.get_by_test_id("orchestration-message")
    expect(message).not_to_be_empty()
    return message.inner_text()


def test_emergency_needs_the_admins_security_key(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    browser: Browser,
    screenshots: Path,
) -> None:
    service, _ = console_pipeline(settings_factory, service_factory, control=True)
    # WebAuthn binds a key to a domain name, never an address: the console at localhost.
    url = service.url.replace("127.0.0.1", "localhost")
    account(url, "ada", "admin")
    page = signed_in(browser, url, "ada", DESKTOP)

    # -- no key yet: the emergency is refused, nothing is requested
    refused = _request_emergency(page, "voice-02")
    assert "needs a security-key step-up" in refused, refused
    assert "ada has no security key" in refused, refused
    assert _orchestrations(url) == []

    # -- a key registered from the account page (Chromium's virtual authenticator)
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    authenticator = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": False,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]
    page.get_by_role("link", name="Account").click()
    form = page.get_by_role("form", name="Add a security key")
    form.get_by_label("Name of the key").fill("desk key")
    form.get_by_role("button", name="Add a security key").click()
    expect(page.get_by_test_id("account-message")).to_contain_text("Security key “desk key” added")
    expect(page.get_by_test_id("security-keys")).to_contain_text("desk key")
    expect(page.get_by_test_id("accounts")).to_contain_text("ada")
    page.screenshot(path=str(screenshots / "account-desktop.png"), full_page=True)
    held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(held["credentials"]) == 1 and held["credentials"][0]["rpId"] == "localhost"

    # -- the emergency again: the console proves the key (a step-up) and it starts at once
    accepted = _request_emergency(page, "voice-02")
    assert accepted.startswith("Requested: orchestration "), accepted
    oid = accepted.split()[-1]
    wait_for(
        lambda: (
            [o["state"] for o in _orchestrations(url) if o["orchestration_id"] == oid] == ["ACTIVE"]
        ),
        30,
        "the emergency orchestration active",
    )
    (started,) = _orchestrations(url)
    assert (started["strategy"], started["requested_by"], started["decided_by"]) == (
        "emergency",
        "user:ada",
        "user:ada",
    )
    wait_for(
        lambda: (
            [(e["principal"], e["outcome"]) for e in _audit(url, "session.step-up")]
            == [("user:ada", "OK")]
        ),
        30,
        "the step-up in the audit log",
    )
    held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    # its counter moved at registering and once more for the one step-up
    assert held["credentials"][0]["signCount"] == 2

    # -- a reload resumes the sign-in with a plain token; an answer with a bad signature
    #    is refused, and so is the emergency
    page.reload()
    expect(page.get_by_test_id("who")).to_contain_text("ada")
    devtools.send(
        "WebAuthn.setResponseOverrideBits",
        {"authenticatorId": authenticator, "isBogusSignature": True},
    )
    forged = _request_emergency(page, "voice-03")
    assert forged.startswith("Refused: "), forged
    assert "does not verify" in forged, forged
    assert len(_orchestrations(url)) == 1
    devtools.send(
        "WebAuthn.setResponseOverrideBits",
        {"authenticatorId": authenticator, "isBogusSignature": False},
    )

    # -- the audit view: every emergency request, the refused ones (no step-up) as well
    page.get_by_role("link", name="Audit").click()
    audit = page.get_by_role("form", name="Filter the audit log")
    audit.get_by_label("Action").fill("orchestration.request")
    audit.get_by_role("button", name="Show").click()
    rows = page.get_by_test_id("audit").locator("tbody tr")
    # refused with no key; refused then (after the step-up) accepted; refused (bad signature)
    expect(rows).to_have_count(4, timeout=15_000)
    outcomes = rows.locator("td:nth-child(5)").all_inner_texts()
    assert sorted(outcomes) == ["DENIED", "DENIED", "DENIED", "OK"], outcomes
    assert set(rows.locator("td:nth-child(2)").all_inner_texts()) == {"user:ada"}
    page.screenshot(path=str(screenshots / "audit-desktop.png"), full_page=True)

    # -- signing in again asks for the key (the virtual authenticator answers)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_contain_text("ada · admin")
    wait_for(
        lambda: (
            [e["detail"] for e in _audit(url, "session.sign-in") if e["outcome"] == "OK"].count(
                "with a security key"
            )
            == 1
        ),
        30,
        "the sign-in with a security key in the audit log",
    )

    # -- notifications: permission granted, the browser asked to subscribe; the service
    #    worker shows a pushed alert (delivered through DevTools: no push service here)
    page.context.grant_permissions(["notifications"], origin=url)
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Turn on notifications on this device").click()
    pushed = page.get_by_test_id("push-message")
    expect(pushed).not_to_be_empty()
    text = pushed.inner_text()
    print(f"notifications: {text}")
    assert text == "Notifications are on for this device." or text.startswith(
        "permission granted, but the browser's push service did not subscribe"
    ), text
    assert page.evaluate("() => Notification.permission") == "granted"
    registrations: list[dict[str, Any]] = []
    devtools.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    devtools.send("ServiceWorker.enable")
    for _ in range(50):  # the sync API hands events over while it waits
        if any(r["scopeURL"].endswith("/console/") for r in registrations):
            break
        page.wait_for_timeout(200)
    (registration,) = {
        r["registrationId"] for r in registrations if r["scopeURL"].endswith("/console/")
    }
    alert = {
        "title": "[CRITICAL] conflict on voice-02->voice-03",
        "body": "they pull apart",
        "url": f"{url}/console/alerts?condition=c1",
        "tag": "conflict:voice-02->voice-03@1",
        "severity": "CRITICAL",
        "kind": "opened",
    }
    devtools.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": url, "registrationId": registration, "data": json.dumps(alert)},
    )
    shown = (
        "async () => (await self.registration.getNotifications())"
        ".map(n => [n.title, n.body, n.tag, n.data.url])"
    )
    (worker,) = page.context.service_workers
    for _ in range(50):
        if worker.evaluate(shown):
            break
        page.wait_for_timeout(200)
    assert worker.evaluate(shown) == [[alert["title"], alert["body"], alert["tag"], alert["url"]]]

    page.set_viewport_size(PHONE)
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_test_id("security-keys")).to_contain_text("desk key")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    page.screenshot(path=str(screenshots / "account-phone.png"), full_page=True)
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_test_id("audit").locator("tbody tr").first).to_be_visible()
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    page.screenshot(path=str(screenshots / "audit-phone.png"), full_page=True)
