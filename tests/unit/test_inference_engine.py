"""The inference engine's tick assembly, without Kafka: when a window is complete."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltaomega.config import Settings
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.schemas.records import INTERACTION_STATE, METRICS, STAT_NAMES, VOICE_STATE
from deltaomega.streams.inference import InferenceEngine
from deltaomega.streams.model_process import TickReport
from deltaomega.streams.ticks import ClosedWindow, TickRunner

W = 10_000


def state(voice: str, start: int) -> dict[str, Any]:
    record: dict[str, Any] = {"voice_id": voice, "window_start": start}
    record.update({f"{m}_{s}": 0.5 for m in METRICS for s in STAT_NAMES})
    return record


def link(start: int) -> dict[str, Any]:
    return {
        "source": "a",
        "target": "b",
        "kind": "COOPERATION",
        "window_start": start,
        "strength_mean": 0.5,
    }


def engine(tmp_path: Path, **overrides: Any) -> InferenceEngine:
    return InferenceEngine(Settings(data_dir=tmp_path, partitions=2, **overrides))


def test_window_is_ready_once_every_partition_moved_past_it(tmp_path: Path) -> None:
    e = engine(tmp_path)
    old = 1_000 * W  # long past: the catch-up rule applies
    e.add_states(VOICE_STATE, [state("a", old), state("b", old)], [0, 1])
    e.add_states(INTERACTION_STATE, [link(old)], [0])
    now = time.monotonic()
    assert e._ready(now)[0] == []
    e.add_states(VOICE_STATE, [state("a", old + W), state("b", old + W)], [0, 1])
    e.add_states(INTERACTION_STATE, [link(old + W)], [0])
    assert e._ready(now)[0] == []  # interaction partition 1 has said nothing yet
    e.add_states(INTERACTION_STATE, [link(old + W) | {"source": "c"}], [1])
    assert e._ready(now)[0] == [old]
    ready, wait = e._ready(now)
    assert wait is not None and 14.9 < wait < 15.1  # the newer window waits for catch-up
    assert e._ready(now + 15.1)[0] == [old, old + W]


def test_live_window_runs_after_the_settle_time(tmp_path: Path) -> None:
    e = engine(tmp_path, inference_settle_seconds=0.5)
    live = int(time.time() * 1000) // W * W - W
    e.add_states(VOICE_STATE, [state("a", live)], [0])
    now = time.monotonic()
    assert e._ready(now)[0] == []
    assert e._ready(now + 0.5)[0] == [live]


def test_live_window_runs_sooner_when_the_feed_has_read_the_topics_to_their_end(
    tmp_path: Path,
) -> None:
    e = engine(tmp_path, inference_settle_seconds=1.0)
    live = int(time.time() * 1000) // W * W - W
    # Every partition has delivered a window before (not the last one: none is behind).
    e._newest = {source: live - 3 * W for source in e._sources}
    e.add_states(VOICE_STATE, [state("a", live)], [0])
    now = time.monotonic()
    e.drained(True)
    assert e._wake.is_set()  # the engine looks again at once
    ready, wait = e._ready(now + 0.1)
    assert ready == [] and wait is not None and 0.09 < wait < 0.11
    assert e._ready(now + 0.2)[0] == [live]
    e.drained(False)  # more states on their way: the whole settle time again
    assert e._ready(now + 0.2)[0] == []
    assert e._ready(now + 1.0)[0] == [live]


def test_a_partition_never_heard_from_gets_the_whole_settle_time(tmp_path: Path) -> None:
    """At the start, a partition with nothing yet may be one whose worker has not
    published its first window: read to the end is no sign it has nothing to say."""
    e = engine(tmp_path, inference_settle_seconds=1.0)
    live = int(time.time() * 1000) // W * W - W
    e._newest = {source: live - 3 * W for source in e._sources[:-1]}
    e.add_states(VOICE_STATE, [state("a", live)], [0])
    now = time.monotonic()
    e.drained(True)
    assert e._ready(now + 0.2)[0] == []
    assert e._ready(now + 1.0)[0] == [live]


def test_states_after_their_tick_are_late_and_ignored(tmp_path: Path) -> None:
    e = engine(tmp_path)
    e._done_until = 5 * W
    e.add_states(VOICE_STATE, [state("a", 5 * W), state("a", 4 * W)], [0, 0])
    assert e._pending == {}


def test_no_usable_model_turns_inference_off_not_the_worker(tmp_path: Path) -> None:
    e = engine(tmp_path)
    registry = ModelRegistry(e.settings.resolved_models_dir)
    registry.ensure_installed()
    registry.active_file.write_text(json.dumps({"active": "missing", "history": []}))
    # The model process refuses to start; run() returns instead of ticking.
    asyncio.run(asyncio.wait_for(e.run(), timeout=60))
    assert e.disabled
    e.add_states(VOICE_STATE, [state("a", 0)], [0])
    assert e._pending == {}


def test_restore_rebuilds_history_and_files_windows_whose_tick_never_ran(tmp_path: Path) -> None:
    e = engine(tmp_path)
    voices = [state(v, w * W) for w in range(10) for v in ("a", "b")]
    links = [link(w * W) for w in range(10)]
    history = e.restore(6 * W, voices, links)
    assert [w.start for w in history] == [w * W for w in range(7)]
    assert sorted(history[-1].voices) == ["a", "b"] and len(history[-1].interactions) == 1
    assert sorted(e._pending) == [7 * W, 8 * W, 9 * W]
    assert sorted(e._pending[9 * W].voices) == ["a", "b"]
    assert e._done_until == 6 * W
    e.add_states(VOICE_STATE, [state("a", 6 * W)], [0])  # redelivered: its tick already ran
    assert sorted(e._pending) == [7 * W, 8 * W, 9 * W]
    # The model process turns those windows into its tick history.
    settings = e.settings
    runner = TickRunner(settings, ModelRuntime(ModelRegistry(settings.resolved_models_dir)))
    runner.restore(history)
    ticks = list(runner.history)
    assert [t.window_start for t in ticks] == [w * W for w in range(7)]
    assert ticks[-1].voice_ids == ("a", "b") and ticks[-1].present.tolist() == [True, True]
    assert float(ticks[-1].dense_strength()[0, 1, 0]) == 0.5


def test_restore_after_the_model_process_died_does_not_run_a_window_twice(
    tmp_path: Path,
) -> None:
    e = engine(tmp_path)
    # Ticks up to 3 ran, the process died on 4; storage has ticks up to 2.
    e._ran_until, e._done_until = 3 * W, 4 * W
    history = e.restore(2 * W, [state("a", w * W) for w in range(6)], [])
    assert [w.start for w in history] == [w * W for w in range(4)]
    assert sorted(e._pending) == [5 * W] and e._done_until == 4 * W


def test_restore_without_a_completed_tick_runs_every_window_read(tmp_path: Path) -> None:
    e = engine(tmp_path)
    assert e.restore(None, [state("a", 0), state("a", W)], []) == []
    assert sorted(e._pending) == [0, W] and e._done_until == -1


def test_restore_merges_with_states_that_arrived_while_loading(tmp_path: Path) -> None:
    e = engine(tmp_path)
    e.add_states(VOICE_STATE, [state("a", 2 * W), state("c", 4 * W)], [0, 1])
    history = e.restore(3 * W, [state(v, w * W) for w in range(5) for v in ("a", "b")], [])
    assert sorted(e._pending) == [4 * W]  # window 2 already ran before the restart
    assert sorted(e._pending[4 * W].voices) == ["a", "b", "c"]
    assert [w.start for w in history] == [0, W, 2 * W, 3 * W]


def test_live_window_waits_for_a_partition_that_is_behind(tmp_path: Path) -> None:
    e = engine(tmp_path, inference_settle_seconds=0.5)
    live = int(time.time() * 1000) // W * W - W
    e._done_until = live - W
    e.add_states(VOICE_STATE, [state("a", live - W), state("b", live - W)], [0, 1])  # late
    e.add_states(INTERACTION_STATE, [link(live)], [0])
    now = time.monotonic()
    # The voice partitions delivered the window before and not this one yet.
    ready, wait = e._ready(now + 0.5)
    assert e.catch_up == 15.0 + e.settings.consumer_session_timeout_seconds
    assert ready == [] and wait is not None and e.catch_up - 0.6 < wait < e.catch_up - 0.4
    assert e._ready(now + e.catch_up)[0] == [live]  # but not for ever
    e.add_states(VOICE_STATE, [state("a", live)], [0])
    assert e._ready(now + 0.5)[0] == []  # partition 1 still behind
    e.add_states(VOICE_STATE, [state("b", live)], [1])
    arrived = time.monotonic()
    assert e._ready(arrived + 0.4)[0] == []  # settles after the last state
    assert e._ready(arrived + 0.5)[0] == [live]
    assert sorted(e._pending[live].voices) == ["a", "b"]


def test_after_a_takeover_a_window_waits_for_the_partitions_a_dead_worker_held(
    tmp_path: Path,
) -> None:
    e = engine(tmp_path, inference_settle_seconds=0.5)
    live = int(time.time() * 1000) // W * W - W
    # Storage: both voice partitions delivered the window before; partition 1's worker died.
    newest = {(VOICE_STATE, 0): live - W, (VOICE_STATE, 1): live - W}
    history = e.restore(live - W, [state("a", live - W), state("b", live - W)], [], newest)
    assert [w.start for w in history] == [live - W]
    e.add_states(VOICE_STATE, [state("a", live)], [0])
    e.add_states(INTERACTION_STATE, [link(live)], [0])
    now = time.monotonic()
    ready, wait = e._ready(now + 1.0)  # settled, but partition 1 is behind, not done
    assert ready == [] and wait is not None and e.catch_up - 1.1 < wait < e.catch_up - 0.9
    e.add_states(VOICE_STATE, [state("b", live)], [1])  # its new owner restored the window
    arrived = time.monotonic()
    assert e._ready(arrived + 0.5)[0] == [live]
    assert sorted(e._pending[live].voices) == ["a", "b"]


class _Models:
    """A model process that records when each tick and registry look began and ended, and
    can deliver the next window's states while one of them is under way."""

    version = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []
        #: call name → what to do as that call begins
        self.during: dict[str, Callable[[], None]] = {}

    async def start(self) -> str:
        return self.version

    async def _call(self, name: str) -> None:
        began = time.monotonic()
        if name in self.during:
            self.during.pop(name)()
        await asyncio.sleep(0.05)
        self.calls.append((name, began, time.monotonic()))

    async def tick(self, window: ClosedWindow) -> TickReport:
        await self._call(f"tick {window.start}")
        return TickReport(window.start, 0.05, 0.05, self.version)

    async def refresh(self) -> None:
        await self._call("refresh")

    async def stop(self) -> None:
        pass


def test_states_that_come_during_a_tick_or_a_registry_look_tick_after_the_quiet_time(
    tmp_path: Path,
) -> None:
    """States that arrive while the engine awaits the model process wake it: their window
    ticks 0.2 s after them (read to the end), not at the next registry look (5 s here)."""
    models = _Models()
    e = InferenceEngine(
        Settings(data_dir=tmp_path, partitions=2, models_poll_seconds=5.0),
        models=models,  # type: ignore[arg-type]
    )
    live = int(time.time() * 1000) // W * W - W

    def deliver(start: int) -> None:
        e.add_states(VOICE_STATE, [state("a", start), state("b", start)], [0, 1])
        e.add_states(INTERACTION_STATE, [link(start), link(start) | {"source": "c"}], [0, 1])
        e.drained(True)

    models.during = {
        f"tick {live}": lambda: deliver(live + W),  # the next window's states, mid-tick
        "refresh": lambda: deliver(live + 2 * W),  # and the one after, mid-look
    }

    async def scenario() -> None:
        task = asyncio.create_task(e.run())
        deliver(live)
        while len(models.calls) < 4 and not task.done():
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    names = [name for name, _, _ in models.calls]
    assert names == [f"tick {live}", f"tick {live + W}", "refresh", f"tick {live + 2 * W}"]
    (_, _, first_over), (_, second_began, _), (_, _, look_over), (_, third_began, _) = models.calls
    # 0.2 s of quiet after the states (delivered at the start of the call before); waiting
    # for the next registry look instead takes about 4.7 s and 5 s
    assert second_began - first_over < 2.5
    assert third_began - look_over < 2.5
