"""Security keys (WebAuthn) through the API: registering one, the second factor it makes of
sign-in, and the step-up an emergency orchestration asks a person for (RFC 9470's 401),
with answers from a software key signed as an authenticator signs. Machines (API keys)
are judged by role alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from deltaomega.config import Settings
from deltaomega.security.roles import Role
from tests.api_client import auth
from tests.conftest import RunningService
from tests.security_key import SoftKey

PASSWORD = "correct horse battery staple"
EMERGENCY = {"target_voices": ["voice-01"], "duration": 5, "rationale": "runaway stress"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign_in(url: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/api/v1/auth/sign-in", json={"username": "ada", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _emergency(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/orchestration/emergency", json=EMERGENCY, headers=headers)


def test_security_key_second_factor_and_emergency_step_up(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(rate_limits=False)
    url = service_factory(settings, worker=False).url
    created = httpx.post(
        f"{url}/api/v1/accounts",
        json={"username": "ada", "password": PASSWORD, "role": "admin"},
        headers=auth(Role.ADMIN),
    )
    assert created.status_code == 201 and created.json()["security_keys"] == 0, created.text
    signed = _sign_in(url)
    assert set(signed) >= {"access_token", "refresh_token"}
    person = _bearer(signed["access_token"])

    # A person's emergency needs a step-up; with no key there is none to make.
    refused = _emergency(url, person)
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Step-up required" and refused.json()["max_age"] == 300
    assert refused.headers["www-authenticate"].startswith(
        'Bearer realm="deltaomega", error="insufficient_user_authentication"'
    )
    no_key = httpx.post(f"{url}/api/v1/auth/step-up/challenge", headers=person)
    assert no_key.status_code == 409 and "ada has no security key" in no_key.json()["detail"]
    # A machine has no key to prove: its role decides.
    assert _emergency(url, auth(Role.ADMIN)).status_code == 202
    machine = httpx.get(f"{url}/api/v1/auth/security-keys", headers=auth(Role.ADMIN))
    assert machine.status_code == 409, machine.text

    # Registering a key.
    key = SoftKey()
    begun = httpx.post(f"{url}/api/v1/auth/security-keys/challenge", headers=person).json()
    options = begun["public_key"]
    assert options["rp"]["id"] == "127.0.0.1" and options["user"]["name"] == "ada"
    elsewhere = httpx.post(
        f"{url}/api/v1/auth/security-keys",
        json={
            "ceremony": begun["ceremony"],
            "credential": key.create(options, "https://phish.example"),
            "name": "desk key",
        },
        headers=person,
    )
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["errors"][0]["field"] == "credential"
    begun = httpx.post(f"{url}/api/v1/auth/security-keys/challenge", headers=person).json()
    answer = {
        "ceremony": begun["ceremony"],
        "credential": key.create(begun["public_key"], url),
        "name": "desk key",
    }
    registered = httpx.post(f"{url}/api/v1/auth/security-keys", json=answer, headers=person)
    assert registered.status_code == 201, registered.text
    assert registered.json()["name"] == "desk key"
    replayed = httpx.post(f"{url}/api/v1/auth/security-keys", json=answer, headers=person)
    assert replayed.status_code == 422 and "used already" in replayed.json()["detail"]
    listed = httpx.get(f"{url}/api/v1/auth/security-keys", headers=person).json()
    assert [k["name"] for k in listed] == ["desk key"] and "public_key" not in listed[0]

    # Sign-in now needs the key; proving it counts as a step-up.
    second = _sign_in(url)
    assert second["second_factor"] == "security-key" and "access_token" not in second
    wrong_key = SoftKey()
    wrong_key.credential_id = key.credential_id
    forged = httpx.post(
        f"{url}/api/v1/auth/sign-in/security-key",
        json={
            "ceremony": second["ceremony"],
            "credential": wrong_key.get(second["public_key"], url),
        },
    )
    assert forged.status_code == 401 and "does not verify" in forged.json()["detail"]
    second = _sign_in(url)
    finished = httpx.post(
        f"{url}/api/v1/auth/sign-in/security-key",
        json={"ceremony": second["ceremony"], "credential": key.get(second["public_key"], url)},
    )
    assert finished.status_code == 200, finished.text
    tokens = finished.json()
    me = httpx.get(f"{url}/api/v1/auth/me", headers=_bearer(tokens["access_token"])).json()
    assert me["subject"] == "user:ada" and me["stepped_up_at"] is not None
    assert _emergency(url, _bearer(tokens["access_token"])).status_code == 202

    # A refreshed token is a plain one again; a step-up makes it do emergencies.
    refreshed = httpx.post(
        f"{url}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    ).json()
    plain = _bearer(refreshed["access_token"])
    assert _emergency(url, plain).status_code == 401
    challenge = httpx.post(f"{url}/api/v1/auth/step-up/challenge", headers=plain).json()
    proof = {"ceremony": challenge["ceremony"], "credential": key.get(challenge["public_key"], url)}
    stepped = httpx.post(f"{url}/api/v1/auth/step-up", json=proof, headers=plain)
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["expires_in"] == 300
    assert _emergency(url, _bearer(stepped.json()["access_token"])).status_code == 202
    # another key: a taken access token alone must not add one
    second_key = httpx.post(f"{url}/api/v1/auth/security-keys/challenge", headers=plain)
    assert second_key.status_code == 401
    assert "adding another security key needs a security-key step-up" in second_key.json()["detail"]
    allowed = httpx.post(
        f"{url}/api/v1/auth/security-keys/challenge",
        headers=_bearer(stepped.json()["access_token"]),
    )
    assert allowed.status_code == 200, allowed.text
    again = httpx.post(f"{url}/api/v1/auth/step-up", json=proof, headers=plain)
    assert again.status_code == 401 and "used already" in again.json()["detail"]

    # An admin's reset: the password alone signs in again.
    accounts = httpx.get(f"{url}/api/v1/accounts", headers=auth(Role.ADMIN)).json()
    assert [a["security_keys"] for a in accounts if a["username"] == "ada"] == [1]
    reset = httpx.delete(f"{url}/api/v1/accounts/ada/security-keys", headers=auth(Role.ADMIN))
    assert reset.status_code == 200 and reset.json() == {"username": "ada", "removed": 1}
    assert "access_token" in _sign_in(url)
    nobody = httpx.delete(f"{url}/api/v1/accounts/nobody/security-keys", headers=auth(Role.ADMIN))
    assert nobody.status_code == 404
