"""The model process's warm-up: a synthetic system, and two throwaway ticks on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltaomega.config import Settings
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.schemas.records import INTERACTION_KINDS, METRICS, STAT_NAMES
from deltaomega.streams.ticks import SYNTHETIC_LINKS_PER_VOICE, synthetic_windows, warm_up_ticks


def test_synthetic_windows_hold_every_voice_and_their_links() -> None:
    windows = synthetic_windows(50, 2, 10_000, seed=3)
    assert [w.start for w in windows] == [0, 10_000]
    for window in windows:
        assert len(window.voices) == 50
        assert len(window.interactions) == 50 * SYNTHETIC_LINKS_PER_VOICE
        state = window.voices["voice-00049"]
        assert state["window_start"] == window.start
        assert len(state) == 2 + len(METRICS) * len(STAT_NAMES)
        assert all(0.1 <= state[f"{m}_mean"] <= 0.9 for m in METRICS)
        assert all(link["source"] != link["target"] for link in window.interactions)
        assert {link["kind"] for link in window.interactions} <= set(INTERACTION_KINDS)
    assert windows[0].voices != windows[1].voices  # fresh means per window
    assert windows[0].interactions[0]["target"] == windows[1].interactions[0]["target"]
    with pytest.raises(ValueError, match="needs 2 voices or more, not 1"):
        synthetic_windows(1, 2, 10_000)


def test_warm_up_runs_two_ticks_at_the_configured_size(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    settings = Settings(data_dir=tmp_path, inference_warm_up_voices=300)
    runtime = ModelRuntime(
        ModelRegistry(settings.resolved_models_dir),
        observe=lambda model, _seconds, rows: calls.append((model, rows)),
    )
    runtime.start()
    assert warm_up_ticks(settings, runtime) == 2
    assert [rows for model, rows in calls if model == "voice_state_predictor"] == [300, 300]
    # One component of 300 voices, cut into graphs of 256 and 44 (padded sizes, per tick).
    assert [rows for model, rows in calls if model == "conflict_predictor"] == [44, 256] * 2
    calls.clear()
    assert warm_up_ticks(settings.model_copy(update={"inference_warm_up_voices": 0}), runtime) == 0
    assert calls == []
