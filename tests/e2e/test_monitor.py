"""The interaction monitor and analyze routes over a simulated conflict, checked against what
the tables hold, computed here: harmony, dominant patterns, conflict indicators, prediction
accuracy (against persistence) and alerts; the live monitor streams the same report."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from deltaomega.config import Settings
from deltaomega.producer import SimulationConfig, run_simulation
from deltaomega.producer.episodes import Episode, Scenario
from deltaomega.schemas.json_records import iso as _iso
from deltaomega.schemas.records import METRICS
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.api_client import sse_events
from tests.conftest import RunningService, wait_for

WINDOW = 10_000
VOICES = [f"voice-{i:02d}" for i in range(8)]
SUPPORTIVE = {"COOPERATION", "COMPLEMENTATION", "AMPLIFICATION"}
ANALYST = api_client.auth(Role.ANALYST)


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_monitor_and_analyze_report_what_the_tables_hold(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(batch_max_records=2000, rate_limits=False)
    db = settings.clickhouse_database
    t0 = (int(time.time() * 1000) - 600_000) // WINDOW * WINDOW
    service = service_factory(settings)
    conflict = Episode("conflict", t0 + 60_000, t0 + 150_000, ("voice-05", "voice-06"))
    run_simulation(
        settings,
        SimulationConfig(voices=8, rate=200, interaction_rate=40, seed=21),
        200.0,
        realtime=False,
        batch_size=50,
        start_ms=t0,
        scenario=Scenario.fixed(VOICES, t0, [conflict]),
    )
    wait_for(
        lambda: clickhouse.rows(f"SELECT count() AS n FROM {db}.patterns FINAL")[0]["n"] == 19,
        120,
        "19 ticks through the models",
    )
    start, end = t0, t0 + 190_000
    in_range = (
        f"window_start >= fromUnixTimestamp64Milli({start}) "
        f"AND window_start < fromUnixTimestamp64Milli({end})"
    )

    # what the tables hold, computed here
    links = clickhouse.rows(
        f"SELECT source, target, kind, sum(strength_mean * count) AS s "
        f"FROM {db}.interaction_states FINAL WHERE {in_range} GROUP BY source, target, kind"
    )
    total = sum(r["s"] for r in links)
    support = sum(r["s"] for r in links if r["kind"] in SUPPORTIVE)
    harmony = (support - (total - support)) / total
    patterns = clickhouse.rows(f"SELECT pattern FROM {db}.patterns FINAL WHERE {in_range}")
    counts = Counter(p["pattern"] for p in patterns)
    conflicts = clickhouse.rows(
        f"SELECT source, target, probability, toUnixTimestamp64Milli(window_start) AS w "
        f"FROM {db}.conflict_predictions FINAL WHERE {in_range} AND probability >= 0.5"
    )
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for c in sorted(conflicts, key=lambda c: c["w"]):
        newest[(c["source"], c["target"])] = c
    predictions = clickhouse.rows(
        "SELECT voice_id, toUnixTimestamp64Milli(window_start) AS made, "
        "toUnixTimestamp64Milli(target_window_start) AS target, "
        + ", ".join(f"{m}_pred, {m}_low, {m}_high" for m in METRICS)
        + f" FROM {db}.predictions FINAL WHERE "
        + in_range.replace("window_start", "target_window_start")
    )
    states = {
        (s["voice_id"], s["w"]): s
        for s in clickhouse.rows(
            "SELECT voice_id, toUnixTimestamp64Milli(window_start) AS w, "
            + ", ".join(f"{m}_mean" for m in METRICS)
            + f" FROM {db}.voice_states FINAL"
        )
    }
    scored = [
        (p, states[(p["voice_id"], p["target"])], states[(p["voice_id"], p["made"])])
        for p in predictions
        if (p["voice_id"], p["target"]) in states and (p["voice_id"], p["made"]) in states
    ]
    alerts = clickhouse.rows(f"SELECT alert_id FROM {db}.alerts FINAL WHERE {in_range}")

    body = {"start": _iso(start), "end": _iso(end)}
    report = httpx.post(
        f"{service.url}/api/v1/interactions/analyze", json=body, headers=ANALYST, timeout=60
    ).json()
    assert report["harmony_score"] == pytest.approx(harmony, abs=1e-9)
    assert {p["pattern"]: p["windows"] for p in report["dominant_patterns"]} == dict(counts)
    assert [p["windows"] for p in report["dominant_patterns"]] == sorted(
        counts.values(), reverse=True
    )
    assert {
        (c["source"], c["target"]): c["probability"] for c in report["conflict_indicators"]
    } == {k: pytest.approx(v["probability"]) for k, v in newest.items()}
    assert ("voice-05", "voice-06") in newest  # the episode's pair is among them
    accuracy = report["prediction_accuracy"]
    assert accuracy["predictions"] == len(scored) > 100
    for m in METRICS:
        mae = sum(abs(p[f"{m}_pred"] - s[f"{m}_mean"]) for p, s, _ in scored) / len(scored)
        persisted = sum(abs(b[f"{m}_mean"] - s[f"{m}_mean"]) for _, s, b in scored) / len(scored)
        inside = sum(p[f"{m}_low"] <= s[f"{m}_mean"] <= p[f"{m}_high"] for p, s, _ in scored)
        assert accuracy["metrics"][m]["mae"] == pytest.approx(mae, rel=1e-9)
        assert accuracy["metrics"][m]["persistence_mae"] == pytest.approx(persisted, rel=1e-9)
        assert accuracy["metrics"][m]["coverage"] == pytest.approx(inside / len(scored), rel=1e-9)
    assert sorted(a["alert_id"] for a in report["alerts"]) == sorted(a["alert_id"] for a in alerts)

    # GraphQL over the same tables: collective dynamics and the newest predictions
    graphql = httpx.post(
        f"{service.url}/graphql",
        json={
            "query": "query($r: TimeRange) { collectiveDynamics(timeRange: $r) { harmony "
            "interactions { source target } } systemPredictions(horizon: 3) "
            "{ type subject value horizonWindows } }",
            "variables": {"r": body},
        },
        headers=ANALYST,
        timeout=60,
    ).json()
    assert "errors" not in graphql, graphql
    dynamics = graphql["data"]["collectiveDynamics"]
    assert dynamics["harmony"] == pytest.approx(harmony, abs=1e-9)
    assert len(dynamics["interactions"]) == len({(r["source"], r["target"]) for r in links})
    newest_predictions = clickhouse.rows(
        f"SELECT voice_id, stress_pred FROM {db}.predictions FINAL WHERE window_start = "
        f"(SELECT max(window_start) FROM {db}.predictions)"
    )
    system = graphql["data"]["systemPredictions"]
    assert {(p["subject"], p["value"]) for p in system if p["type"] == "STATE_CHANGE"} == {
        (r["voice_id"], r["stress_pred"]) for r in newest_predictions
    }
    newest_conflicts = clickhouse.rows(
        f"SELECT source, target, probability FROM {db}.conflict_predictions FINAL WHERE "
        f"window_start = (SELECT max(window_start) FROM {db}.conflict_predictions) "
        "AND horizon_windows <= 3"
    )
    assert {(p["subject"], p["value"]) for p in system if p["type"] == "CONFLICT_ESCALATION"} == {
        (f"{r['source']}->{r['target']}", r["probability"]) for r in newest_conflicts
    }
    assert [p["type"] for p in system].count("PATTERN_EMERGENCE") == 1
    assert "SYSTEM_EVOLUTION" not in {p["type"] for p in system}

    # the same scoring per model version and minute of target window
    series = httpx.get(
        f"{service.url}/api/v1/predictions/accuracy",
        params={**body, "bucket": "1m"},
        headers=ANALYST,
        timeout=60,
    ).json()
    by_minute: dict[int, list[Any]] = {}
    for p, s, b in scored:
        by_minute.setdefault((p["target"] - p["target"] % 60_000), []).append((p, s, b))
    assert [(_ms(x["start"]), x["predictions"]) for x in series["buckets"]] == [
        (minute, len(group)) for minute, group in sorted(by_minute.items())
    ]
    for x in series["buckets"]:
        group = by_minute[_ms(x["start"])]
        mae = sum(abs(p["stress_pred"] - s["stress_mean"]) for p, s, _ in group) / len(group)
        assert x["metrics"]["stress"]["mae"] == pytest.approx(mae, rel=1e-9)
    assert {x["model_version"] for x in series["buckets"]} == {
        r["model_version"]
        for r in clickhouse.rows(f"SELECT DISTINCT model_version FROM {db}.predictions")
    }

    # one pair, one kind
    narrow = httpx.post(
        f"{service.url}/api/v1/interactions/analyze",
        json={
            **body,
            "voice_pairs": [["voice-05", "voice-06"]],
            "interaction_types": ["COMPETITION"],
        },
        headers=ANALYST,
        timeout=60,
    ).json()
    pair = [r for r in links if (r["source"], r["target"]) == ("voice-05", "voice-06")]
    competition = sum(r["s"] for r in pair if r["kind"] == "COMPETITION")
    assert list(narrow["interaction_matrix"]["matrices"]) == ["COMPETITION"]
    assert narrow["pairs"] == [
        {
            "source": "voice-05",
            "target": "voice-06",
            "strength": pytest.approx(competition),
            "harmony": -1.0,
            "conflict": 1.0,
        }
    ]
    assert {c["source"] for c in narrow["conflict_indicators"]} <= {"voice-05"}
    assert all(a["subject"] == "voice-05->voice-06" for a in narrow["alerts"])

    # the monitor: the same analysis, back from the newest closed window; live, per window
    live = httpx.get(
        f"{service.url}/api/v1/interactions/monitor",
        params={"time_window": "1h", "voice_pairs": "voice-05->voice-06"},
        headers=ANALYST,
        timeout=60,
    ).json()
    assert _ms(live["end"]) - _ms(live["start"]) == 3_600_000
    assert live["pairs"][0]["source"] == "voice-05"
    with api_client.stream(
        "GET",
        f"{service.url}/api/v1/interactions/monitor",
        params={"time_window": "1h", "voice_pairs": "voice-05->voice-06", "real_time": "true"},
        headers=ANALYST,
        timeout=httpx.Timeout(5.0, read=30.0),
    ) as response:
        assert response.status_code == 200
        first = next(e for e in sse_events(response, time.monotonic() + 30) if e is not None)
    assert first["event"] == "monitor"
    assert json.loads(first["data"]) == live

    bad = httpx.get(
        f"{service.url}/api/v1/interactions/monitor",
        params={"voice_pairs": "voice-05"},
        headers=ANALYST,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "voice_pairs"
    viewer = httpx.get(
        f"{service.url}/api/v1/interactions/monitor", headers=api_client.auth(Role.VIEWER)
    )
    assert viewer.status_code == 403
