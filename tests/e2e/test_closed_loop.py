"""The closed loop through the real broker: a simulated conflict between two voices raises a
conflict alert, a policy proposes an orchestration, an operator approves it over the API,
the simulated voices apply it, and the pair's conflict strength falls; the audit log holds
every step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from deltaomega.config import Settings
from deltaomega.producer import SimulationConfig, SimulationSummary, run_simulation
from deltaomega.producer.episodes import Episode, Scenario
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, wait_for

WINDOW = 10_000
VOICES = [f"voice-{i:02d}" for i in range(8)]
# With seed 21 the conflict model flags the pair (A, B) as its links turn antagonistic;
# (C, D) live through the same conflict with no orchestration: what A and B would have done.
A, B = "voice-05", "voice-06"
C, D = "voice-01", "voice-02"
POLICY = "damp-critical-conflict"
POLICIES = f"""
policies:
  - name: {POLICY}
    when: {{rule: conflict, severity: CRITICAL}}
    propose:
      strategy: adaptive
      targets: subject
      duration_minutes: 30
      strategy_parameters: {{scale: 0.5}}
"""
#: simulated seconds per wall-clock second
SPEED = 5.0
SIMULATED_SECONDS = 300.0
BOB = api_client.auth(Role.OPERATOR, subject="bob")


def _proposals(url: str) -> list[dict[str, Any]]:
    response = api_client.get(f"{url}/api/v1/orchestration")
    assert response.status_code == 200, response.text
    return [
        o
        for o in response.json()["orchestrations"]
        if o["requested_by"] == f"policy:{POLICY}" and o["target_voices"] == [A, B]
    ]


def _pair_strength(clickhouse: ClickHouse, db: str, x: str, y: str) -> dict[int, float]:
    """Window start → the pair's antagonistic link strength (mean of both directions)."""
    rows = clickhouse.rows(
        f"SELECT toUnixTimestamp64Milli(window_start) AS w, avg(strength_mean) AS s "
        f"FROM {db}.interaction_states FINAL "
        f"WHERE ((source = '{x}' AND target = '{y}') OR (source = '{y}' AND target = '{x}')) "
        f"AND kind IN ('COMPETITION', 'SUPPRESSION') GROUP BY w ORDER BY w"
    )
    return {int(r["w"]): float(r["s"]) for r in rows}


@pytest.mark.kafka
def test_conflict_alert_policy_approval_and_the_voices_calm_down(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    settings = settings_factory(batch_max_records=2000, rate_limits=False, policies_file=policies)
    db = settings.clickhouse_database
    service = service_factory(settings, control=True)
    url = service.url
    # event time stays behind the wall clock for the whole run
    t0 = (int(time.time() * 1000) - 900_000) // WINDOW * WINDOW
    # both pairs turn on each other, ramping up for three minutes
    start, end = t0 + 60_000, t0 + 240_000
    episodes = [Episode("conflict", start, end, (A, B)), Episode("conflict", start, end, (C, D))]
    stop = threading.Event()
    summaries: list[SimulationSummary] = []
    simulator = threading.Thread(
        target=lambda: summaries.append(
            run_simulation(
                settings,
                SimulationConfig(voices=8, rate=200, interaction_rate=40, seed=21),
                SIMULATED_SECONDS,
                realtime=True,
                speed=SPEED,
                batch_size=50,
                start_ms=t0,
                stop=stop,
                scenario=Scenario.fixed(VOICES, t0, episodes),
                control=True,
            )
        ),
        name="closed-loop-simulator",
    )
    simulator.start()
    try:
        wait_for(lambda: bool(_proposals(url)), 120, "the policy's proposal")
        (proposed,) = _proposals(url)
        oid = proposed["orchestration_id"]
        assert proposed["state"] == "PROPOSED"
        assert proposed["strategy"] == "adaptive" and proposed["duration_seconds"] == 1800
        assert proposed["voice_parameters"] == {
            A: {"influence_weight": 0.5, "sensitivity": 0.5},
            B: {"influence_weight": 0.5, "sensitivity": 0.5},
        }
        # the rationale names the alert: rule:subject:window_start
        rule, subject, window = proposed["rationale"].split("on alert ", 1)[1].split(":")[:3]
        assert rule == "conflict" and subject in (f"{A}->{B}", f"{B}->{A}")
        critical = clickhouse.rows(
            f"SELECT severity FROM {db}.alerts FINAL "
            f"WHERE alert_id = '{rule}:{subject}:{int(window)}'"
        )
        assert [a["severity"] for a in critical] == ["CRITICAL"]

        approve = httpx.post(
            f"{url}/api/v1/orchestration/{oid}/approve",
            json={"rationale": "the pair is fighting; damp both"},
            headers=BOB,
        )
        assert approve.status_code == 202, approve.text
        wait_for(
            lambda: api_client.get(f"{url}/api/v1/orchestration/{oid}").json()["state"] == "ACTIVE",
            30,
            "the orchestration active",
        )
        # Windows closed so far were simulated before the voices could have applied it.
        applied_after = max(_pair_strength(clickhouse, db, C, D))
        simulator.join(SIMULATED_SECONDS / SPEED + 60)
        assert not simulator.is_alive()
    finally:
        stop.set()
        simulator.join(10)
    assert summaries and summaries[0].failed == 0

    last = end - WINDOW  # the episodes' last window
    wait_for(lambda: max(_pair_strength(clickhouse, db, C, D)) >= last, 60, "the episodes' windows")

    def split(strength: dict[int, float]) -> tuple[list[float], list[float]]:
        """The episode's windows before approval, and those from four windows after it (the
        listener applies the change within a few simulated seconds)."""
        before = [s for w, s in strength.items() if start <= w <= applied_after]
        after = [s for w, s in strength.items() if applied_after + 4 * WINDOW <= w <= last]
        return before, after

    before, after = split(_pair_strength(clickhouse, db, A, B))
    assert before and len(after) >= 5, (applied_after - t0, before, after)
    # influence weight and sensitivity halved on both sides: a quarter of the coupling
    assert max(after) < min(before), (before, after)
    untouched_before, untouched_after = split(_pair_strength(clickhouse, db, C, D))
    assert min(untouched_after) > max(untouched_before)  # what the conflict did meanwhile

    # One proposal for the pair, though both directions raised critical alerts.
    critical_alerts = clickhouse.rows(
        f"SELECT subject FROM {db}.alerts FINAL WHERE rule = 'conflict' "
        f"AND severity = 'CRITICAL' AND subject IN ('{A}->{B}', '{B}->{A}')"
    )
    assert {a["subject"] for a in critical_alerts} == {f"{A}->{B}", f"{B}->{A}"}
    assert [o["orchestration_id"] for o in _proposals(url)] == [oid]

    wait_for(lambda: len(_audit(clickhouse, db, oid)) == 5, 30, "the orchestration's audit rows")
    assert _audit(clickhouse, db, oid) == sorted(
        [
            ("policy.propose", f"policy:{POLICY}", "system", "OK"),
            ("orchestration.proposed", f"policy:{POLICY}", "system", "OK"),
            ("orchestration.approve", "bob", "token", "OK"),  # the API's
            ("orchestration.approved", "bob", "token", "OK"),  # the control plane's
            ("orchestration.active", "bob", "token", "OK"),
        ]
    )


def _audit(clickhouse: ClickHouse, db: str, oid: str) -> list[tuple[str, str, str, str]]:
    rows = clickhouse.rows(
        f"SELECT action, principal, auth_method, outcome FROM {db}.audit_log FINAL "
        f"WHERE target = '{oid}'"
    )
    return sorted((r["action"], r["principal"], r["auth_method"], r["outcome"]) for r in rows)
