"""Policies in the control plane, fed alerts straight onto voice.alerts: an automatic policy's
proposal is approved by `system` and changes the voices' parameters; the same pair alerted
again in its quiet period, a stale alert and a non-matching one propose nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.records import ALERT
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService, wait_for
from tests.kafka_tools import produce_avro, wait_for_records

POLICIES = """
policies:
  - name: mute-on-emergence
    when: {rule: emergence, severity: CRITICAL}
    propose: {strategy: emergency, targets: [x, y], duration_minutes: 5}
  - name: damp-conflict
    when: {rule: conflict, severity: WARNING, subject: "a->*"}
    propose:
      strategy: direct
      targets: subject
      duration_minutes: 5
      parameters: {influence_weight: 0.25}
    automatic: true
"""


def _alert(settings: Settings, rule: str, subject: str, severity: str, age_ms: int = 0) -> None:
    now = int(time.time() * 1000)
    record = alert_record(
        rule, subject, now // 10_000 * 10_000, severity, "test", 0.9, 0.6, [], "v1", now - age_ms
    )
    produce_avro(settings, Topics.from_settings(settings).alerts, subject, ALERT, record)


def _orchestrations(url: str) -> list[dict[str, Any]]:
    return list(api_client.get(f"{url}/api/v1/orchestration").json()["orchestrations"])


def test_an_automatic_policy_acts_once_per_pair_and_ignores_the_rest(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    settings = settings_factory(models_enabled=False, policies_file=policies)
    service = service_factory(settings, control=True)
    url = service.url
    topics = Topics.from_settings(settings)

    _alert(settings, "conflict", "b->a", "CRITICAL")  # the glob wants a as the source
    _alert(settings, "conflict", "a->b", "INFO")  # below the policy's severity
    _alert(settings, "emergence", "system", "CRITICAL", age_ms=10 * 60_000)  # stale
    _alert(settings, "conflict", "a->b", "WARNING")
    wait_for(lambda: len(_orchestrations(url)) == 1, 30, "the policy's orchestration")
    wait_for(lambda: _orchestrations(url)[0]["state"] == "ACTIVE", 30, "approved at once")
    (active,) = _orchestrations(url)
    assert active["requested_by"] == "policy:damp-conflict"
    assert active["decided_by"] == "system"
    assert active["target_voices"] == ["a", "b"]
    assert active["voice_parameters"] == {
        "a": {"influence_weight": 0.25},
        "b": {"influence_weight": 0.25},
    }
    for voice in ("a", "b"):
        wait_for(
            lambda v=voice: (
                api_client.get(f"{url}/api/v1/voices/{v}/parameters").json()["parameters"][
                    "influence_weight"
                ]
                == 0.25
            ),
            30,
            f"{voice}'s parameters",
        )

    # the same pair, either way round, in its quiet period: nothing new
    _alert(settings, "conflict", "a->b", "CRITICAL")
    _alert(settings, "conflict", "a->b", "WARNING")
    # a fresh critical emergence: proposed, and waiting for an operator
    _alert(settings, "emergence", "system", "CRITICAL")
    wait_for(lambda: len(_orchestrations(url)) == 2, 30, "the emergence proposal")
    proposed = next(o for o in _orchestrations(url) if o["state"] == "PROPOSED")
    events: dict[str, list[dict[str, Any]]] = {}
    for _, event in wait_for_records(settings, topics.orchestration, 3):
        events.setdefault(event["orchestration_id"], []).append(event)  # one's in order
    assert {
        oid: [(e["action"], e["actor"], e["actor_role"]) for e in each]
        for oid, each in events.items()
    } == {
        active["orchestration_id"]: [
            ("REQUEST", "policy:damp-conflict", "system"),
            ("APPROVE", "system", "system"),
        ],
        proposed["orchestration_id"]: [("REQUEST", "policy:mute-on-emergence", "system")],
    }
    request = events[active["orchestration_id"]][0]
    assert request["rationale"].startswith("policy damp-conflict on alert conflict:a->b:")
    assert (proposed["strategy"], proposed["target_voices"]) == ("emergency", ["x", "y"])
    assert proposed["voice_parameters"] == {
        v: {"influence_weight": 0.0, "activation_threshold": 1.0} for v in ("x", "y")
    }
    # every alert was read: two in the quiet period, one stale, two proposals
    wait_for(
        lambda: (
            _outcomes(url)
            == {
                ("damp-conflict", "proposed"): 1,
                ("damp-conflict", "quiet"): 2,
                ("mute-on-emergence", "stale"): 1,
                ("mute-on-emergence", "proposed"): 1,
            }
        ),
        30,
        "every alert through the policies",
    )
    assert len(_orchestrations(url)) == 2
    assert len(wait_for_records(settings, topics.orchestration, 3)) == 3


def _outcomes(url: str) -> dict[tuple[str, str], int]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.labels["policy"], s.labels["outcome"]): int(s.value)
        for family in text_string_to_metric_families(text)
        if family.name == "deltaomega_policy_alerts"
        for s in family.samples
        if s.name.endswith("_total")
        and s.labels["policy"] in ("damp-conflict", "mute-on-emergence")
    }
