"""The control plane reverts a parameter change when its expected duration ends: one revert
by `system`, the exact record on voice.parameters, audited, and the API's current values,
what they replaced and the history all say so."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from deltaomega.config import Settings
from deltaomega.schemas.records import PARAMETER_CHANGE
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService, wait_for
from tests.kafka_tools import avro_records, produce_avro, wait_for_records


def test_a_change_is_reverted_once_when_its_duration_ends(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False)
    service = service_factory(settings, control=True)
    operator = api_client.auth(Role.OPERATOR)
    lasting = httpx.post(
        f"{service.url}/api/v1/voices/a/parameters",
        json={
            "parameters": {"influence_weight": 0.5, "context_modifiers": {"tone": "warm"}},
            "rationale": "a lasting change",
        },
        headers=operator,
    )
    assert lasting.status_code == 202
    # A change that ends in 2 s (the API's shortest is a minute): straight onto the topic.
    now = int(time.time() * 1000)
    temporary: dict[str, Any] = {
        "change_id": "temp-1",
        "voice_id": "a",
        "sensitivity": 1.8,
        "activation_threshold": None,
        "influence_weight": None,
        "context_modifiers": {"mode": "alert"},
        "rationale": "a short change",
        "expected_duration_minutes": None,
        "monitoring_enabled": True,
        "requested_by": "tester",
        "requested_at": now,
        "expires_at": now + 2_000,
        "reverts": None,
    }
    topic = Topics.from_settings(settings).parameters
    produce_avro(settings, topic, "a", PARAMETER_CHANGE, temporary)

    records = wait_for_records(settings, topic, 3)
    assert [key for key, _ in records] == [b"a", b"a", b"a"]
    revert = records[2][1]
    assert revert["requested_at"] >= now + 2_000
    assert {k: v for k, v in revert.items() if k not in ("change_id", "requested_at")} == {
        "voice_id": "a",
        "sensitivity": 1.0,
        "activation_threshold": None,
        "influence_weight": None,
        "context_modifiers": {"tone": "warm"},
        "rationale": "the expected duration of change temp-1 ended",
        "expected_duration_minutes": None,
        "monitoring_enabled": True,
        "requested_by": "system",
        "expires_at": None,
        "reverts": "temp-1",
    }

    def current() -> dict[str, Any]:
        return dict(api_client.get(f"{service.url}/api/v1/voices/a/parameters").json())

    wait_for(
        lambda: (current().get("last_change") or {}).get("reverts") == "temp-1",
        30,
        "the revert in ClickHouse",
    )
    state = current()
    assert state["parameters"] == {
        "sensitivity": 1.0,
        "activation_threshold": 0.5,
        "influence_weight": 0.5,
        "context_modifiers": {"tone": "warm"},
    }
    assert state["replaced"] == {
        "sensitivity": 1.8,
        "activation_threshold": 0.5,
        "influence_weight": 0.5,
        "context_modifiers": {"tone": "warm", "mode": "alert"},
    }
    assert state["expires_at"] is None
    history = api_client.get(f"{service.url}/api/v1/voices/a/parameters/history").json()
    assert [c["requested_by"] for c in history["changes"]] == ["system", "tester", "tester"]
    assert history["changes"][1]["change_id"] == "temp-1"

    audited = api_client.get(
        f"{service.url}/api/v1/audit", params={"action": "parameters.revert"}
    ).json()["events"]
    assert len(audited) == 1
    assert (audited[0]["principal"], audited[0]["auth_method"], audited[0]["target"]) == (
        "system",
        "system",
        "a",
    )
    assert json.loads(audited[0]["after"])["reverts"] == "temp-1"
    # the timer keeps running: three seconds on, still the three records, one revert
    time.sleep(3)
    assert len(avro_records(settings, topic)) == 3
