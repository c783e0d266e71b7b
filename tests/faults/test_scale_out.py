"""Two workers in one group. Each window is ticked once, over every voice, by the worker
that holds the inference lease; SIGKILL that one mid-stream and the other takes over its
partitions (restoring their open windows from the changelog) and the lease (resuming after
the last tick recorded): the tables are exact, and no window is ticked twice with
different results."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from deltaomega.config import Settings
from deltaomega.schemas import AvroCodec
from deltaomega.topics import Topics
from tests.faults.conftest import SEED, Launch, Scenario
from tests.faults.harness import Traffic, check, dump, expected, merge, wait_drained
from tests.kafka_tools import read_topic
from tests.processes import DeltaOmegaProcess

pytestmark = [pytest.mark.faults, pytest.mark.alone]

TAKEOVER_WITHIN = 30.0
_TICK = re.compile(r"^(\d\d):(\d\d):(\d\d) .* tick (\d+): (\d+) voices")


def ticks(process: DeltaOmegaProcess) -> dict[int, int]:
    """Window start → voices, of every tick the process logged."""
    found = {}
    for line in process.log_lines(r" tick \d+: \d+ voices"):
        match = _TICK.match(line)
        assert match is not None, line
        found[int(match.group(4))] = int(match.group(5))
    return found


def role(process: DeltaOmegaProcess) -> str:
    """The worker's inference check once it is ready (a rebalance makes it restore first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = process.get("/readyz")
        if response is not None and response.status_code == 200:
            return str(response.json()["checks"]["inference"])
        time.sleep(0.2)
    raise AssertionError("not ready:\n" + process.log()[-2000:])


def states_around(settings: Settings, window: int) -> list[tuple[int, int, str, int]]:
    """(partition, offset, voice, window start) of the voice states up to the window after
    ``window``, in partition and offset order: the order the leader's feed read them in."""
    codec = AvroCodec()
    found = []
    for record in read_topic(settings.kafka_bootstrap, Topics.from_settings(settings).voice_states):
        _, state = codec.decode(record.value)  # type: ignore[arg-type]
        if state["window_start"] <= window + settings.window_ms:
            found.append(
                (record.partition, record.offset, state["voice_id"], state["window_start"])
            )
    return found


def outputs_by_window(settings: Settings) -> dict[int, list[dict[str, Any]]]:
    """Every pattern record (one per tick run), by window, without ``produced_at``."""
    codec = AvroCodec()
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in read_topic(settings.kafka_bootstrap, Topics.from_settings(settings).patterns):
        _, pattern = codec.decode(record.value)  # type: ignore[arg-type]
        pattern.pop("produced_at")
        out[pattern["window_start"]].append(pattern)
    return out


def test_one_tick_per_window_over_every_voice_and_a_standby_takes_over(
    scenario: Scenario,
    launch: Launch,
    tmp_path: Path,
    report: dict[str, Any],
) -> None:
    settings = scenario(
        models_enabled=True,
        inference_warm_up_voices=0,
        consumer_session_timeout_seconds=6,
    )
    second_dir = settings.data_dir.parent / f"{settings.data_dir.name}-b"
    first = launch(settings)
    second = launch(settings.model_copy(update={"data_dir": second_dir}))
    first.wait_ready()
    second.wait_ready()
    time.sleep(2.0)  # let the groups settle on two members
    roles = {role(first), role(second)}
    assert roles == {"ok", "ok (standby: another worker runs the models)"}, roles
    leader, standby = (first, second) if role(first) == "ok" else (second, first)

    traffic = Traffic(seed=SEED + 3)
    wave = 0
    while len(ticks(leader)) < 3:
        assert wave < 6, leader.log()[-3000:]
        traffic.send_wave(settings, wave)
        wave += 1
        time.sleep(3.0)
    traffic.send_wave(settings, wave)  # and die while it is being processed
    wave += 1
    time.sleep(0.3)
    # It may have held the lease for a moment while the group formed.
    held = len(standby.log_lines("holds the inference lease"))
    leader.kill()
    killed = time.monotonic()
    before = ticks(leader)
    standby.wait_for_log("holds the inference lease", timeout=TAKEOVER_WITHIN, seen=held)
    takeover_s = time.monotonic() - killed
    assert takeover_s < TAKEOVER_WITHIN
    for rest in range(wave, wave + 3):
        traffic.send_wave(settings, rest)
    traffic.send_closers(settings, wave + 3)
    drained_in = wait_drained(settings, timeout=180)

    # Every window with states is ticked, each over every voice that has a state in it,
    # whichever worker closed it.
    want = expected(settings)
    voices_in = Counter(start for _, start in want.voice_states)
    deadline = time.monotonic() + 60
    while not set(voices_in) <= set(before) | set(ticks(standby)):
        missing = sorted(set(voices_in) - set(before) - set(ticks(standby)))
        assert time.monotonic() < deadline, (missing, before, standby.log()[-6000:])
        time.sleep(0.5)
    after = ticks(standby)
    for window, voices in voices_in.items():
        if before.get(window, voices) != voices:  # what the feed had, to tell why
            print("ticked short:", window, before, states_around(settings, window))
            print(leader.log())
        assert before.get(window, voices) == voices, (window, before, leader.log()[-4000:])
        assert after.get(window, voices) == voices, (window, after, standby.log()[-4000:])
    assert sum(n == traffic.voices for n in voices_in.values()) >= len(voices_in) - 1
    # A window both ran (the old leader's last, if it died before recording it) gave the
    # same outputs; none was skipped, none repeated otherwise.
    both = set(before) & set(after)
    assert len(both) <= 1, both
    produced = outputs_by_window(settings)
    for window in voices_in:
        records = produced[window]
        assert records and all(r == records[0] for r in records), (window, records)
    standby.stop()

    tables = merge(
        [
            dump(settings, tmp_path / "a.json"),
            dump(settings.model_copy(update={"data_dir": second_dir}), tmp_path / "b.json"),
        ]
    )
    landed = check(settings, tables, want, exact_without_final=False)
    report.update(
        ticks_before_kill=len(before),
        ticks_after=len(after),
        ticked_by_both=sorted(both),
        takeover_s=round(takeover_s, 1),
        drained_s=round(drained_in, 2),
        **asdict(landed),
    )
