"""Parameter changes over the API: the exact Avro record on the compacted voice.parameters
topic, its audit row, every validation error naming its field, and the write budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from deltaomega.config import Settings
from deltaomega.security.roles import Role, Tier
from deltaomega.topics import Topics
from tests import api_client
from tests.api_client import assert_invalid
from tests.conftest import RunningService, wait_for
from tests.kafka_tools import wait_for_records

VALID: dict[str, Any] = {
    "parameters": {
        "sensitivity": 1.5,
        "activation_threshold": 0.25,
        "influence_weight": 0.5,
        "context_modifiers": {"mode": "calm", "gain": 2},
    },
    "rationale": "damp the conflict between alpha and beta",
    "expected_duration": 10,
    "monitoring_enabled": True,
}


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_a_change_is_the_exact_avro_record_on_the_topic_and_audited(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False)
    service = service_factory(settings)
    operator = api_client.auth(Role.OPERATOR, Tier.STANDARD)
    response = httpx.post(
        f"{service.url}/api/v1/voices/team%2Falpha/parameters",
        json=VALID,
        headers={**operator, "X-Request-ID": "change-1"},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    requested_at = _ms(accepted["requested_at"])
    assert accepted["voice_id"] == "team/alpha" and accepted["status"] == "accepted"
    assert _ms(accepted["expires_at"]) == requested_at + 10 * 60_000

    [(key, record)] = wait_for_records(settings, Topics.from_settings(settings).parameters, 1)
    expected = {
        "change_id": accepted["change_id"],
        "voice_id": "team/alpha",
        "sensitivity": 1.5,
        "activation_threshold": 0.25,
        "influence_weight": 0.5,
        "context_modifiers": {"mode": "calm", "gain": 2.0},
        "rationale": "damp the conflict between alpha and beta",
        "expected_duration_minutes": 10,
        "monitoring_enabled": True,
        "requested_by": "tester",
        "requested_at": requested_at,
        "expires_at": requested_at + 600_000,
        "reverts": None,
    }
    assert key == b"team/alpha"
    assert record == expected

    def audited() -> list[dict[str, Any]]:
        events = api_client.get(
            f"{service.url}/api/v1/audit", params={"action": "parameters.set"}
        ).json()["events"]
        return list(events)

    wait_for(lambda: len(audited()) == 1, 30, "the change's audit row")
    [row] = audited()
    assert {k: v for k, v in row.items() if k not in ("event_id", "occurred_at", "after")} == {
        "principal": "tester",
        "role": "operator",
        "auth_method": "token",
        "action": "parameters.set",
        "target": "team/alpha",
        "rationale": "damp the conflict between alpha and beta",
        "request_id": "change-1",
        "client": "127.0.0.1",
        "outcome": "OK",
        "status": 202,
        "detail": "",
        "before": "",
    }
    assert json.loads(row["after"]) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"parameters": {"sensitivity": 2.5}}, "parameters.sensitivity"),
        ({"parameters": {"activation_threshold": -0.1}}, "parameters.activation_threshold"),
        ({"parameters": {"influence_weight": "heavy"}}, "parameters.influence_weight"),
        ({"parameters": {"volume": 1}}, "parameters.volume"),
        ({"parameters": {"context_modifiers": {"m": [1]}}}, "parameters.context_modifiers.m"),
        ({"rationale": "ok"}, "rationale"),
        ({"rationale": "x" * 2001}, "rationale"),
        ({"expected_duration": 0}, "expected_duration"),
        ({"expected_duration": 10081}, "expected_duration"),
        ({"monitoring_enabled": "maybe"}, "monitoring_enabled"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_changes_get_422_naming_the_field(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    change: dict[str, Any],
    field: str,
) -> None:
    service = _api(settings_factory, service_factory)
    body = {**VALID, **change}  # one bad part; the parameters given are only the bad one
    response = httpx.post(
        f"{service.url}/api/v1/voices/v1/parameters", json=body, headers=api_client.auth()
    )
    assert_invalid(response, field)


def test_missing_parts_are_named(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = _api(settings_factory, service_factory)
    url = f"{service.url}/api/v1/voices/v1/parameters"
    assert_invalid(
        httpx.post(url, json={"rationale": "why"}, headers=api_client.auth()), "parameters"
    )
    assert_invalid(httpx.post(url, json={"parameters": {}}, headers=api_client.auth()), "rationale")


def _api(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> RunningService:
    return service_factory(settings_factory(rate_limits=False), worker=False)


def test_the_21st_write_in_a_minute_is_refused_and_admins_have_100(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(), worker=False)
    url = f"{service.url}/api/v1/voices/v1/parameters"
    body = {"parameters": {"sensitivity": 1.0}, "rationale": "budget test"}

    def writes(count: int, headers: dict[str, str]) -> list[int]:
        with httpx.Client(headers=headers, timeout=10) as client:
            return [client.post(url, json=body).status_code for _ in range(count)]

    operator = api_client.auth(Role.OPERATOR, Tier.PREMIUM)
    assert writes(20, operator) == [202] * 20
    refused = httpx.post(url, json=body, headers=operator)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["detail"].startswith("20 write requests per minute for this caller")
    # reads are another budget
    assert httpx.get(f"{service.url}/api/v1/voices", headers=operator).status_code == 200
    admin = api_client.auth(Role.ADMIN, Tier.STANDARD)
    assert writes(21, admin) == [202] * 21
