"""The orchestration state machine through the real broker and the control plane: proposal,
approval by a second operator (the requester refused), the parameter changes and commands
it publishes, rollback restoring the parameters, rejection, an admin's emergency, expiry of
an unapproved proposal and completion when its time is up, all audited."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from deltaomega.config import Settings
from deltaomega.schemas.records import ORCHESTRATION_EVENT
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService, wait_for
from tests.kafka_tools import produce_avro, wait_for_records

ALICE = api_client.auth(Role.OPERATOR, subject="alice")
BOB = api_client.auth(Role.OPERATOR, subject="bob")
ROOT = api_client.auth(Role.ADMIN, subject="root")


def _send_event(settings: Settings, oid: str, action: str, **fields: Any) -> None:
    """An OrchestrationEvent straight onto the topic, past the API's checks."""
    event = {
        "event_id": uuid.uuid4().hex,
        "orchestration_id": oid,
        "action": action,
        "strategy": "",
        "target_voices": [],
        "duration_seconds": 0,
        "voice_parameters": {},
        "strategy_parameters": {},
        "rationale": "sent straight",
        "actor": "",
        "actor_role": "",
        "at": int(time.time() * 1000),
    } | fields
    topic = Topics.from_settings(settings).orchestration
    produce_avro(settings, topic, oid, ORCHESTRATION_EVENT, event)


def _orchestration(url: str, oid: str) -> dict[str, Any]:
    response = api_client.get(f"{url}/api/v1/orchestration/{oid}")
    return dict(response.json()) if response.status_code == 200 else {}


def _until_state(url: str, oid: str, state: str) -> dict[str, Any]:
    wait_for(lambda: _orchestration(url, oid).get("state") == state, 30, f"{oid} {state}")
    return _orchestration(url, oid)


def _request(url: str, strategy: str, headers: dict[str, str], **body: Any) -> str:
    payload = {"target_voices": ["a", "b"], "duration": 10, "rationale": "calm a and b"} | body
    response = httpx.post(f"{url}/api/v1/orchestration/{strategy}", json=payload, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["orchestration_id"])


def _decide(url: str, oid: str, action: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/orchestration/{oid}/{action}",
        json={"rationale": f"{action} it"},
        headers=headers,
    )


def _parameters(url: str, voice: str) -> dict[str, Any]:
    return dict(api_client.get(f"{url}/api/v1/voices/{voice}/parameters").json())


def test_approval_by_a_second_operator_starts_it_and_rollback_restores(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False, rate_limits=False)
    service = service_factory(settings, control=True)
    url = service.url
    topics = Topics.from_settings(settings)
    # b starts from a changed influence weight: adaptive halves what each voice has
    change = {"parameters": {"influence_weight": 1.6}, "rationale": "b leads"}
    assert (
        httpx.post(f"{url}/api/v1/voices/b/parameters", json=change, headers=ALICE).status_code
        == 202
    )
    wait_for(
        lambda: _parameters(url, "b")["parameters"]["influence_weight"] == 1.6, 30, "b's weight"
    )

    oid = _request(url, "adaptive", ALICE, strategy_parameters={"scale": 0.5})
    proposed = _until_state(url, oid, "PROPOSED")
    assert proposed["voice_parameters"] == {
        "a": {"influence_weight": 0.5, "sensitivity": 0.5},
        "b": {"influence_weight": 0.8, "sensitivity": 0.5},
    }
    assert (proposed["requested_by"], proposed["duration_seconds"]) == ("alice", 600)

    own = _decide(url, oid, "approve", ALICE)
    assert own.status_code == 409
    assert own.json()["detail"] == "the requester cannot approve their own request"
    assert _decide(url, oid, "rollback", BOB).status_code == 409  # not active yet
    viewer = _decide(url, oid, "approve", api_client.auth(Role.VIEWER))
    assert viewer.status_code == 403

    assert _decide(url, oid, "approve", BOB).status_code == 202
    active = _until_state(url, oid, "ACTIVE")
    assert active["decided_by"] == "bob" and active["version"] == 3  # proposed, approved, active
    assert active["ends_at"] is not None

    commands = wait_for_records(settings, topics.commands, 2)
    assert sorted((k, c["command"], c["parameters"]["influence_weight"]) for k, c in commands) == [
        (b"a", "START", 0.5),
        (b"b", "START", 0.8),
    ]
    assert {c["orchestration_id"] for _, c in commands} == {oid}
    wait_for(lambda: _parameters(url, "b")["parameters"]["influence_weight"] == 0.8, 30, "applied")
    assert _parameters(url, "a")["last_change"]["requested_by"] == f"orchestration:{oid}"

    assert _decide(url, oid, "rollback", BOB).status_code == 202
    rolled = _until_state(url, oid, "ROLLED_BACK")
    assert rolled["version"] == 4
    wait_for(lambda: _parameters(url, "b")["parameters"]["influence_weight"] == 1.6, 30, "restored")
    restored_a = _parameters(url, "a")
    assert restored_a["parameters"] == {
        "sensitivity": 1.0,
        "activation_threshold": 0.5,
        "influence_weight": 1.0,
        "context_modifiers": {},
    }
    assert restored_a["last_change"]["reverts"] == f"{oid}:a"
    every = [c for _, c in wait_for_records(settings, topics.commands, 4)]
    assert sorted((c["voice_id"], c["command"]) for c in every) == [
        ("a", "START"),
        ("a", "STOP"),
        ("b", "START"),
        ("b", "STOP"),
    ]

    def actions() -> list[tuple[str, str, str]]:
        events = api_client.get(f"{url}/api/v1/audit", params={"limit": 100}).json()["events"]
        return sorted(
            (e["action"], e["principal"], e["outcome"])
            for e in events
            if e["action"].startswith("orchestration.") and e["target"] == oid
        )

    expected = sorted(
        [
            ("orchestration.request", "alice", "OK"),
            ("orchestration.approve", "alice", "DENIED"),
            ("orchestration.rollback", "bob", "DENIED"),
            ("orchestration.approve", "bob", "OK"),
            ("orchestration.rollback", "bob", "OK"),
            ("orchestration.proposed", "alice", "OK"),
            ("orchestration.approved", "bob", "OK"),
            ("orchestration.active", "bob", "OK"),
            ("orchestration.rolled_back", "bob", "OK"),
        ]
    )
    wait_for(lambda: actions() == expected, 30, "every step in the audit log")


def test_reject_emergency_and_the_requesters_own_approval_in_the_state_machine(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False, rate_limits=False)
    service = service_factory(settings, control=True)
    url = service.url
    rejected = _request(url, "direct", ALICE, parameters={"sensitivity": 1.2})
    _until_state(url, rejected, "PROPOSED")
    assert _decide(url, rejected, "reject", BOB).status_code == 202
    assert _until_state(url, rejected, "REJECTED")["decided_by"] == "bob"
    late = _decide(url, rejected, "approve", BOB)
    assert late.status_code == 409
    assert late.json()["detail"] == (
        "only a proposed orchestration can be approved; this one is REJECTED"
    )

    emergency = _request(url, "emergency", ROOT, target_voices=["c"])
    started = _until_state(url, emergency, "ACTIVE")
    assert started["voice_parameters"] == {
        "c": {"influence_weight": 0.0, "activation_threshold": 1.0}
    }
    assert started["decided_by"] == "root"
    by_operator = _request(url, "emergency", ALICE, target_voices=["c"])
    assert _until_state(url, by_operator, "PROPOSED")["decided_by"] == ""

    # The state machine itself refuses a requester's approval that reaches it.
    oid = _request(url, "direct", ALICE, parameters={"influence_weight": 0.3})
    _until_state(url, oid, "PROPOSED")
    _send_event(settings, oid, "APPROVE", actor="alice", actor_role="operator")
    wait_for(lambda: _orchestration(url, oid).get("version") == 2, 30, "the refusal")
    refused = _orchestration(url, oid)
    assert (refused["state"], refused["detail"]) == (
        "PROPOSED",
        "the requester cannot approve their own request",
    )


def test_an_unapproved_proposal_expires_and_an_active_one_completes(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(
        models_enabled=False, rate_limits=False, orchestration_approval_seconds=2
    )
    service = service_factory(settings, control=True)
    url = service.url
    stale = _request(url, "direct", ALICE, parameters={"sensitivity": 0.4})
    expired = _until_state(url, stale, "EXPIRED")
    assert (expired["detail"], expired["decided_by"]) == ("not approved in time", "")

    # An admin's emergency of 2 s (the API's shortest is a minute): straight onto the topic.
    oid = "0123456789abcdef0123456789abcdef"
    _send_event(
        settings,
        oid,
        "REQUEST",
        strategy="emergency",
        target_voices=["d"],
        duration_seconds=2,
        voice_parameters={"d": {"influence_weight": 0.0, "activation_threshold": 1.0}},
        actor="root",
        actor_role="admin",
    )
    completed = _until_state(url, oid, "COMPLETED")
    assert completed["version"] == 2  # active at once, then completed
    wait_for(
        lambda: _parameters(url, "d")["parameters"]["influence_weight"] == 1.0,
        30,
        "d's parameters back when it completed",
    )
    assert _parameters(url, "d")["last_change"]["reverts"] == f"{oid}:d"
