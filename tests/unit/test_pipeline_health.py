"""The pipeline's own alert rules: sync delay, error rate and memory, each at its threshold,
over it and at its critical level, from what the worker counted since the last check."""

from __future__ import annotations

import pytest

from deltaomega.config import Settings
from deltaomega.streams.health import PipelineHealth, clearing_window
from deltaomega.streams.progress import Progress

NOW = 1_800_000_004_321  # in the window starting 1_800_000_000_000
MIB = 2**20


def rules(alerts: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(a["rule"], a["severity"], a["subject"], a["window_start"]) for a in alerts]


def test_each_rule_fires_over_its_threshold_and_is_critical_far_over_it() -> None:
    progress = Progress()
    memory = [(100 * MIB, 1000 * MIB)]
    health = PipelineHealth(Settings(), progress, memory=lambda: memory[0])
    assert health.check(NOW) == []

    # a live window closable 0.4 s ago: under 0.5 s; then one 0.7 s, then 2.5 s late
    progress.note_sync_delay(NOW - 400, now=NOW / 1000)
    assert health.check(NOW) == []
    progress.note_sync_delay(NOW - 700, now=NOW / 1000)
    progress.note_sync_delay(NOW - 300, now=NOW / 1000)  # the longest counts
    (delay,) = health.check(NOW)
    assert rules([delay]) == [("pipeline_sync_delay", "WARNING", "pipeline", 1_800_000_000_000)]
    assert delay["value"] == pytest.approx(0.7, abs=1e-6) and delay["threshold"] == 0.5
    assert delay["alert_id"] == "pipeline_sync_delay:pipeline:1800000000000"
    assert health.check(NOW) == []  # taken: the next check starts afresh
    progress.note_sync_delay(NOW - 2500, now=NOW / 1000)
    assert rules(health.check(NOW))[0][1] == "CRITICAL"
    # replayed (closable hours ago) and future windows are not live
    progress.note_sync_delay(NOW - 4 * 3_600_000, now=NOW / 1000)
    progress.note_sync_delay(NOW + 60_000, now=NOW / 1000)
    assert health.check(NOW) == []

    # 5 of 100 records dead-lettered is the threshold itself; 6 of 100 is over; 30 critical
    progress.events += 95
    progress.deadlettered += 5
    assert health.check(NOW) == []
    progress.events += 94
    progress.deadlettered += 6
    (errors,) = health.check(NOW)
    assert (errors["rule"], errors["severity"], errors["value"]) == (
        "pipeline_error_rate",
        "WARNING",
        0.06,
    )
    assert errors["message"] == "6 of 100 records dead-lettered in the last window (6.0%)"
    progress.interactions += 70
    progress.deadlettered += 30
    assert rules(health.check(NOW))[0][:2] == ("pipeline_error_rate", "CRITICAL")
    assert health.check(NOW) == []  # nothing new: no rate

    memory[0] = (850 * MIB, 1000 * MIB)
    (mem,) = health.check(NOW)
    assert (mem["rule"], mem["severity"], mem["value"]) == ("pipeline_memory", "WARNING", 0.85)
    memory[0] = (960 * MIB, 1000 * MIB)
    assert rules(health.check(NOW))[0][:2] == ("pipeline_memory", "CRITICAL")
    memory[0] = (None, None)
    assert health.check(NOW) == []


def test_pipeline_alerts_clear_by_the_wall_clock() -> None:
    assert clearing_window(NOW, 10_000) == 1_799_999_990_000
