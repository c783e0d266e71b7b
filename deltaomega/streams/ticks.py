"""The models' side of a tick: the history of closed windows, four batched model calls and
the alert rules, from one window's voice and interaction states to its output records.

:class:`TickRunner` runs in the worker's model process (see
:mod:`deltaomega.streams.model_process`); tests and benchmarks use it directly.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deltaomega.config import Settings
from deltaomega.models import alerts as rules
from deltaomega.models.features import (
    CONFLICT_HORIZON,
    EMERGENCE_TYPES,
    INTERVAL_LEVEL,
    INTERVAL_Z,
    PATTERN_WINDOWS,
    SEQUENCE_WINDOWS,
    ConflictGraphs,
    Tick,
    conflict_batches,
    graphs_per_call,
    pattern_input,
    predictor_input,
    system_vector,
    tick_from_states,
)
from deltaomega.models.runtime import LoadedVersion, ModelRuntime, WarmUp
from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    INTERACTION_KINDS,
    METRICS,
    PATTERN,
    PREDICTION,
    PREDICTION_SCORE,
    STAT_NAMES,
)
from deltaomega.streams.scoring import PredictionScorer

HISTORY = max(SEQUENCE_WINDOWS, PATTERN_WINDOWS, 4)


def warm_up_sizes(settings: Settings) -> WarmUp:
    """The largest calls a tick of ``inference_warm_up_voices`` voices can make: the state
    predictor on all of them, and a full conflict batch of the largest graphs."""
    voices = settings.inference_warm_up_voices
    if voices < 2:
        return {}
    largest = min(settings.conflict_max_graph_voices, voices)
    return {
        "voice_state_predictor": {"voices": voices},
        "conflict_predictor": {
            "graphs": max(1, min(graphs_per_call(largest), voices // largest)),
            "voices": largest,
        },
    }


@dataclass
class ClosedWindow:
    """One window's states as the tick takes them: voice id → state, and the links."""

    start: int
    voices: dict[str, dict[str, Any]]
    interactions: list[dict[str, Any]]


@dataclass
class TickOutputs:
    window_start: int
    predictions: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    emergence: dict[str, Any]
    pattern: dict[str, Any]
    alerts: list[dict[str, Any]]
    #: how the predictions made for this window did (None: there were none to score)
    score: dict[str, Any] | None = None

    def records(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        """The tick's records in the order they are sent: alerts first, as people wait on
        them (encoding the thousands of predictions before them took a tenth of a second
        at 1,000 voices), and before the pattern that closes their window for the
        control plane."""
        out: list[tuple[str, bytes, dict[str, Any]]] = [
            (ALERT, a["subject"].encode(), a) for a in self.alerts
        ]
        out += [(PREDICTION, p["voice_id"].encode(), p) for p in self.predictions]
        out += [(CONFLICT_PREDICTION, c["source"].encode(), c) for c in self.conflicts]
        out.append((EMERGENCE, b"system", self.emergence))
        out.append((PATTERN, b"system", self.pattern))
        if self.score is not None:
            out.append((PREDICTION_SCORE, b"system", self.score))
        return out


def _normal_tail(level: float, mean: float, std: float) -> float:
    """P(X > level) for X ~ N(mean, std²)."""
    return 0.5 * math.erfc((level - mean) / (max(std, 1e-9) * math.sqrt(2)))


class TickRunner:
    def __init__(self, settings: Settings, runtime: ModelRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.rules = rules.AlertRules.from_settings(settings)
        self.window_ms = settings.window_ms
        self.history: deque[Tick] = deque(maxlen=HISTORY)
        #: the last tick's alerting (rule, subject) → severity, to send news first
        self._alerting: dict[rules.AlertKey, str] = {}
        self.scorer = PredictionScorer(
            self.window_ms, self.rules.conflict_warning, settings.conflict_observed_strength
        )

    def restore(self, windows: Sequence[ClosedWindow]) -> None:
        """Windows whose ticks ran before the worker (or this process) last stopped."""
        for window in windows:
            self.history.append(
                tick_from_states(window.start, list(window.voices.values()), window.interactions)
            )

    def run_tick(self, window: ClosedWindow) -> TickOutputs:
        # A tick at 10,000 voices makes some 100,000 dicts (records, alerts), none in a
        # reference cycle; the collector's passes over them took a fifth of the tick.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run_tick(window)
        finally:
            if enabled:
                gc.enable()

    def _run_tick(self, window: ClosedWindow) -> TickOutputs:
        models = self.runtime.current
        window_start, voice_states = window.start, window.voices
        tick = tick_from_states(window_start, list(voice_states.values()), window.interactions)
        self.history.append(tick)
        history = list(self.history)
        now_ms = int(time.time() * 1000)
        version = models.name
        observed = {v: {m: float(s[f"{m}_mean"]) for m in METRICS} for v, s in voice_states.items()}
        alerts = rules.breach_alerts(
            self.rules, self.scorer.predictions, observed, window_start, version, now_ms
        )
        predictions = self._predict(models, history, now_ms)
        conflicts = self._conflicts(models, history, now_ms)
        emergence = detect_emergence(
            self.runtime, models, history, self.rules.emergence_threshold, now_ms
        )
        pattern = classify_pattern(self.runtime, models, history, now_ms)
        current_stress = {v: m["stress"] for v, m in observed.items()}
        alerts += rules.stress_alerts(self.rules, predictions, current_stress, version, now_ms)
        alerts += rules.conflict_alerts(self.rules, conflicts, version, now_ms)
        alerts += rules.emergence_alerts(self.rules, emergence, version, now_ms)
        alerts, self._alerting = rules.news_first(alerts, self._alerting)
        score = self.scorer.score(window_start, observed, window.interactions, now_ms)
        self.scorer.remember(window_start, observed, predictions, conflicts)
        return TickOutputs(window_start, predictions, conflicts, emergence, pattern, alerts, score)

    def _predict(
        self, models: LoadedVersion, history: list[Tick], now_ms: int
    ) -> list[dict[str, Any]]:
        tick = history[-1]
        rows = np.flatnonzero(tick.present)
        if len(rows) == 0:
            return []
        x = predictor_input(history)[rows]
        mean, std = self.runtime.run("voice_state_predictor", {"history": x}, models)
        mu, sd = mean.astype(np.float64), std.astype(np.float64)
        # Per metric: pred, std, low, high; one row per voice.
        columns = np.stack([mu, sd, mu - INTERVAL_Z * sd, mu + INTERVAL_Z * sd], axis=2)
        names = [f"{m}_{part}" for m in METRICS for part in ("pred", "std", "low", "high")]
        stress = METRICS.index("stress")
        level = self.rules.stress_level
        risk = [
            _normal_tail(level, m, s)
            for m, s in zip(mu[:, stress].tolist(), sd[:, stress].tolist(), strict=True)
        ]
        fixed = {
            "window_start": tick.window_start,
            "target_window_start": tick.window_start + self.window_ms,
            "interval_level": INTERVAL_LEVEL,
            "model_version": models.name,
            "produced_at": now_ms,
        }
        ids = tick.voice_ids
        return [
            {"voice_id": ids[i], **fixed, **dict(zip(names, values, strict=True)), "risk": r}
            for i, values, r in zip(
                rows.tolist(), columns.reshape(len(rows), -1).tolist(), risk, strict=True
            )
        ]

    def _conflicts(
        self, models: LoadedVersion, history: list[Tick], now_ms: int
    ) -> list[dict[str, Any]]:
        tick = history[-1]
        ids = tick.voice_ids
        out: list[dict[str, Any]] = []
        for graphs in conflict_batches(history, self.settings.conflict_max_graph_voices):
            out += [
                {
                    "window_start": tick.window_start,
                    "source": ids[source],
                    "target": ids[target],
                    "probability": p,
                    "horizon_windows": CONFLICT_HORIZON,
                    "model_version": models.name,
                    "produced_at": now_ms,
                }
                for source, target, p in zip(*self._pairs(models, graphs), strict=True)
            ]
        return out

    def _pairs(
        self, models: LoadedVersion, graphs: ConflictGraphs
    ) -> tuple[list[int], list[int], list[float]]:
        """(source voice, target voice, probability) of the pairs to publish: every linked
        pair, and the most probable unlinked ones per source."""
        (probability,) = self.runtime.run(
            "conflict_predictor",
            {"nodes": graphs.nodes, "edges": graphs.edges, "mask": graphs.mask},
            models,
        )
        valid = (graphs.mask[:, :, None] * graphs.mask[:, None, :]) > 0
        valid &= ~np.eye(graphs.mask.shape[1], dtype=bool)[None]
        linked = graphs.linked & valid
        unlinked = valid & ~linked & (probability >= self.settings.conflict_publish_min)
        cap = self.settings.conflict_unlinked_per_voice
        if cap < unlinked.shape[2]:
            score = np.where(unlinked, probability, -1.0)
            top = np.zeros_like(unlinked)
            if cap > 0:
                best = np.argpartition(-score, cap - 1, axis=2)[:, :, :cap]
                np.put_along_axis(top, best, True, axis=2)
            unlinked &= top
        g, a, b = np.nonzero(linked | unlinked)
        voice = np.zeros(graphs.mask.shape, dtype=np.int64)
        for i, members in enumerate(graphs.members):
            voice[i, : len(members)] = members
        return voice[g, a].tolist(), voice[g, b].tolist(), probability[g, a, b].tolist()


def detect_emergence(
    runtime: ModelRuntime,
    models: LoadedVersion,
    history: Sequence[Tick],
    threshold: float,
    now_ms: int,
) -> dict[str, Any]:
    """The emergence detector on the newest window of ``history`` (the worker's tick and
    the API's analysis over a chosen range share it)."""
    probability, types, error = runtime.run(
        "emergence_detector", {"system": system_vector(history)[None]}, models
    )
    kind = int(types[0].argmax())
    p = float(probability[0])
    return {
        "window_start": history[-1].window_start,
        "probability": p,
        "detected": p >= threshold,
        "type": EMERGENCE_TYPES[kind],
        "type_probability": float(types[0, kind]),
        "reconstruction_error": float(error[0]),
        "voices": len(history[-1].voice_ids),
        "model_version": models.name,
        "produced_at": now_ms,
    }


def classify_pattern(
    runtime: ModelRuntime, models: LoadedVersion, history: Sequence[Tick], now_ms: int
) -> dict[str, Any]:
    """The pattern classifier on the newest window of ``history``."""
    probability, learned_complexity, novelty = runtime.run(
        "pattern_classifier", {"matrices": pattern_input(history)[None]}, models
    )
    kind = int(probability[0].argmax())
    return {
        "window_start": history[-1].window_start,
        "pattern": REGIMES[kind],
        "confidence": float(probability[0, kind]),
        "complexity": float(np.clip(learned_complexity[0], 0.0, 1.0)),
        "novelty": float(novelty[0]),
        "model_version": models.name,
        "produced_at": now_ms,
    }


#: Links out of each voice of :func:`synthetic_windows`.
SYNTHETIC_LINKS_PER_VOICE = 3


def synthetic_windows(voices: int, count: int, window_ms: int, seed: int = 0) -> list[ClosedWindow]:
    """``count`` windows of a random system: every voice present with random means, and
    SYNTHETIC_LINKS_PER_VOICE random links out of each. A random graph's components are
    large, so its conflict calls are the largest a system of this size makes."""
    if voices < 2:
        raise ValueError(f"a synthetic system needs 2 voices or more, not {voices}")
    rng = np.random.default_rng(seed)
    ids = [f"voice-{i:05d}" for i in range(voices)]
    source = np.repeat(np.arange(voices), SYNTHETIC_LINKS_PER_VOICE)
    target = (source + rng.integers(1, voices, len(source))) % voices
    kind = rng.integers(0, len(INTERACTION_KINDS), len(source))
    names = [f"{m}_{s}" for m in METRICS for s in STAT_NAMES]
    windows = []
    for w in range(count):
        start = w * window_ms
        stats = np.repeat(rng.uniform(0.1, 0.9, (voices, len(METRICS))), len(STAT_NAMES), axis=1)
        states = {
            v: {"voice_id": v, "window_start": start, **dict(zip(names, row, strict=True))}
            for v, row in zip(ids, stats.tolist(), strict=True)
        }
        links = [
            {
                "source": ids[a],
                "target": ids[b],
                "kind": INTERACTION_KINDS[k],
                "strength_mean": strength,
            }
            for a, b, k, strength in zip(
                source.tolist(),
                target.tolist(),
                kind.tolist(),
                rng.uniform(0.2, 0.9, len(source)).tolist(),
                strict=True,
            )
        ]
        windows.append(ClosedWindow(start, states, links))
    return windows


def warm_up_ticks(settings: Settings, runtime: ModelRuntime) -> int:
    """Two throwaway ticks of a synthetic system of ``inference_warm_up_voices`` voices;
    how many ran. The first ticks of a process grow its heap page by page (90,000 page
    faults at 10,000 voices), which under load took a tick from 0.5 to 0.7 s of CPU and
    past 1 s of wall time; after these the first real tick runs at its steady cost."""
    voices = settings.inference_warm_up_voices
    if voices < 2:
        return 0
    scratch = TickRunner(settings, runtime)
    windows = synthetic_windows(voices, 2, settings.window_ms)
    for window in windows:
        scratch.run_tick(window)
    return len(windows)
