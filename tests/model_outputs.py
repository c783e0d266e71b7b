"""Valid model-output records (as the codec decodes them) for producing and storing in tests."""

from __future__ import annotations

from typing import Any

from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.producer import SimulationConfig, SimulationSummary, run_simulation
from deltaomega.producer.episodes import Episode, Scenario
from deltaomega.schemas.records import METRICS

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
MODEL = "test-1"


def prediction(voice_id: str, window_start: int, base: float = 0.5) -> dict[str, Any]:
    record: dict[str, Any] = {
        "window_start": window_start,
        "target_window_start": window_start + 10_000,
        "voice_id": voice_id,
    }
    for j, metric in enumerate(METRICS):
        pred = base + j / 100
        record |= {
            f"{metric}_pred": pred,
            f"{metric}_std": 0.05,
            f"{metric}_low": pred - 0.125,
            f"{metric}_high": pred + 0.125,
        }
    record |= {
        "interval_level": 0.9,
        "risk": base / 2,
        "model_version": MODEL,
        "produced_at": window_start + 10_123,
    }
    return record


def conflict(source: str, target: str, window_start: int, probability: float) -> dict[str, Any]:
    return {
        "window_start": window_start,
        "source": source,
        "target": target,
        "probability": probability,
        "horizon_windows": 3,
        "model_version": MODEL,
        "produced_at": window_start + 10_007,
    }


def emergence(window_start: int, probability: float, kind: str = "none") -> dict[str, Any]:
    return {
        "window_start": window_start,
        "probability": probability,
        "detected": probability >= 0.5,
        "type": kind,
        "type_probability": 0.75,
        "reconstruction_error": probability * 2,
        "voices": 4,
        "model_version": MODEL,
        "produced_at": window_start + 10_011,
    }


def pattern(window_start: int, name: str, novelty: float = 0.25) -> dict[str, Any]:
    return {
        "window_start": window_start,
        "pattern": name,
        "confidence": 0.875,
        "complexity": 0.5,
        "novelty": novelty,
        "model_version": MODEL,
        "produced_at": window_start + 10_013,
    }


def alert(
    rule: str,
    subject: str,
    window_start: int,
    severity: str,
    actions: list[str] | None = None,
) -> dict[str, Any]:
    return alert_record(
        rule,
        subject,
        window_start,
        severity,
        f"{rule} on {subject}",
        0.875,
        0.75,
        actions or [],
        MODEL,
        window_start + 10_017,
    )


def simulate_episodes(
    settings: Settings, t0: int, seconds: float, seed: int, episodes: list[Episode]
) -> SimulationSummary:
    """Eight simulated voices from ``t0``, as fast as they go, with these episodes."""
    voices = [f"voice-{i:02d}" for i in range(8)]
    return run_simulation(
        settings,
        SimulationConfig(voices=8, rate=200, interaction_rate=40, seed=seed),
        seconds,
        realtime=False,
        batch_size=50,
        start_ms=t0,
        scenario=Scenario.fixed(voices, t0, episodes),
    )
