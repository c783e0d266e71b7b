"""SIGKILL the worker at chosen points, seeded: mid-batch, between the changelog write and
the commit, mid-insert, and during a restore with the RocksDB checkpoint deleted. After
the last restart has drained the topics, ClickHouse holds exactly the produced events and
exactly the windows a one-event-at-a-time reference gives."""

from __future__ import annotations

import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import SEED, Launch, Scenario, watch
from tests.faults.harness import Traffic, check, dump, expected, wait_drained

pytestmark = [pytest.mark.faults, pytest.mark.alone]

#: (what, fault point, range of the hit to die at)
KILLS = [
    ("mid-batch", "voice.after_aggregate", (1, 4)),
    ("between the changelog write and the commit", "voice.before_commit", (1, 4)),
    ("mid-insert, before the insert", "clickhouse.insert", (2, 8)),
    ("mid-insert, after the insert", "clickhouse.inserted", (2, 8)),
]
RESTORE = ("during restore, RocksDB checkpoint deleted", "restore.batch", (1, 1))
MAX_WAVES = 14


def test_sigkill_at_every_kind_of_point_loses_nothing_and_repeats_nothing(
    scenario: Scenario,
    launch: Launch,
    tmp_path: Path,
    report: dict[str, Any],
) -> None:
    rng = random.Random(SEED)
    kills = rng.sample(KILLS, len(KILLS))
    kills.insert(rng.randint(1, len(kills)), RESTORE)  # after a kill: a changelog to restore
    settings = scenario()
    traffic = Traffic(seed=SEED)
    wave = 0
    runs: list[dict[str, Any]] = []
    for what, point, (low, high) in kills:
        if point == "restore.batch":
            shutil.rmtree(settings.data_dir / "windows", ignore_errors=True)
        hit = rng.randint(low, high)
        process = launch(settings, faults=f"{point}=kill@{hit}")
        ready = died = None
        while died is None and wave < MAX_WAVES:
            traffic.send_wave(settings, wave)
            wave += 1
            ready_now, died = watch(process, 6.0)
            ready = ready or ready_now
        assert died is not None, f"{point}@{hit} never fired:\n" + process.log()[-3000:]
        assert process.log_lines(f"fault point {point}: kill at hit {hit}"), process.log()[-2000:]
        runs.append({"kill": what, "point": f"{point}@{hit}", "ready_s": ready, "died_s": died})
    final = launch(settings)
    ready_after_last_kill = final.wait_ready()
    while wave < 8:
        traffic.send_wave(settings, wave)
        wave += 1
    traffic.send_closers(settings, wave)
    drained_in = wait_drained(settings)
    final.stop()
    landed = check(settings, dump(settings, tmp_path / "tables.json"), expected(settings))
    # Each restart was ready soon after it started (the restore kill dies before that).
    recoveries = [r["ready_s"] for r in runs[1:] if r["ready_s"] is not None]
    recoveries.append(ready_after_last_kill)
    assert max(recoveries) < 10.0, runs
    report.update(
        runs=runs,
        ready_after_last_kill_s=round(ready_after_last_kill, 2),
        waves=wave,
        drained_s=round(drained_in, 2),
        **asdict(landed),
    )
