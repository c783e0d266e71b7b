"""Per-tick inference: closed-window states in, predictions, conflicts, emergence, patterns
and alerts out.

The state sinks hand every VoiceState and InteractionState they consume to
:meth:`InferenceEngine.add_states`, which only files them under their window and returns.
A tick (one closed window of the whole system) runs when the window is complete: at
once when every partition of both state topics has delivered a newer window (states of
one partition come in window order), otherwise — a partition with nothing newer to say,
or none at all — ``inference_settle_seconds`` after the window's first state arrived for
a live window, or after ``_CATCH_UP_TIMEOUT`` for an old one (replay, where partitions
race each other).
Ticks run in window order on one inference thread, so consumption never waits on a
model; each model gets one batched call per tick. States that arrive after their tick
ran are counted (``deltaomega_late_states_total``) and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError, ModelError
from deltaomega.metrics import LATE_STATES, MODEL_OUTPUTS, TICK_SECONDS, TICKS
from deltaomega.models import alerts as rules
from deltaomega.models.features import (
    CONFLICT_HORIZON,
    EMERGENCE_TYPES,
    INTERVAL_LEVEL,
    INTERVAL_Z,
    PATTERN_WINDOWS,
    SEQUENCE_WINDOWS,
    Tick,
    conflict_graphs,
    pattern_input,
    predictor_input,
    system_vector,
    tick_from_states,
)
from deltaomega.models.runtime import LoadedVersion, ModelRuntime
from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    INTERACTION_STATE,
    METRICS,
    PATTERN,
    PREDICTION,
    VOICE_STATE,
)

log = logging.getLogger(__name__)

HISTORY = max(SEQUENCE_WINDOWS, PATTERN_WINDOWS, 4)
_CATCH_UP_TIMEOUT = 15.0

#: (schema, Kafka key) → send; the worker binds it to its output topics.
Publish = Callable[[str, bytes, dict[str, Any]], Awaitable[None]]
#: → (newest window the models ran on, or None; voice states and interaction states of the
#: windows from HISTORY − 1 windows before it on), read from storage at start.
Recent = Callable[[int], tuple[int | None, list[dict[str, Any]], list[dict[str, Any]]]]


@dataclass
class _Pending:
    first_seen: float
    voices: dict[str, dict[str, Any]] = field(default_factory=dict)
    interactions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class TickOutputs:
    window_start: int
    predictions: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    emergence: dict[str, Any]
    pattern: dict[str, Any]
    alerts: list[dict[str, Any]]

    def records(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        out: list[tuple[str, bytes, dict[str, Any]]] = []
        out += [(PREDICTION, p["voice_id"].encode(), p) for p in self.predictions]
        out += [(CONFLICT_PREDICTION, c["source"].encode(), c) for c in self.conflicts]
        out.append((EMERGENCE, b"system", self.emergence))
        out.append((PATTERN, b"system", self.pattern))
        out += [(ALERT, a["subject"].encode(), a) for a in self.alerts]
        return out


def _normal_tail(level: float, mean: float, std: float) -> float:
    """P(X > level) for X ~ N(mean, std²)."""
    return 0.5 * math.erfc((level - mean) / (max(std, 1e-9) * math.sqrt(2)))


class InferenceEngine:
    def __init__(
        self, settings: Settings, runtime: ModelRuntime, recent: Recent | None = None
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.recent = recent
        self.rules = rules.AlertRules.from_settings(settings)
        self.window_ms = settings.window_ms
        self._pending: dict[int, _Pending] = {}
        #: Newest window seen per (state schema, partition).
        self._newest: dict[tuple[str, int], int] = {}
        self._sources = [
            (schema, p)
            for schema in (VOICE_STATE, INTERACTION_STATE)
            for p in range(settings.partitions)
        ]
        self._done_until = -1
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._history: deque[Tick] = deque(maxlen=HISTORY)
        self._last_predictions: dict[str, dict[str, Any]] = {}
        self.disabled = False

    # ------------------------------------------------------------ input side (event loop)

    def add_states(
        self, schema: str, records: Sequence[dict[str, Any]], partitions: Sequence[int]
    ) -> None:
        if self.disabled:
            return
        now = time.monotonic()
        late = 0
        for record, partition in zip(records, partitions, strict=True):
            start = int(record["window_start"]) // self.window_ms * self.window_ms
            source = (schema, partition)
            self._newest[source] = max(self._newest.get(source, -1), start)
            if start <= self._done_until:
                late += 1
                continue
            pending = self._pending.get(start)
            if pending is None:
                pending = self._pending[start] = _Pending(now)
            if schema == INTERACTION_STATE:
                key = (str(record["source"]), str(record["target"]), str(record["kind"]))
                pending.interactions[key] = record
            else:
                pending.voices[str(record["voice_id"])] = record
        if late:
            LATE_STATES.inc(late)
        if records:
            self._wake.set()

    def _ready(self, now: float) -> tuple[list[int], float | None]:
        """Windows ready to run now (in order), and seconds until the next one may be."""
        ready: list[int] = []
        settle = self.settings.inference_settle_seconds
        for start in sorted(self._pending):
            if all(self._newest.get(source, -1) > start for source in self._sources):
                ready.append(start)
                continue
            live = time.time() * 1000 - (start + self.window_ms) < 3 * self.window_ms
            limit = settle if live else max(settle, _CATCH_UP_TIMEOUT)
            waited = now - self._pending[start].first_seen
            if waited >= limit:
                ready.append(start)
            else:
                return ready, limit - waited
        return ready, None

    def restore(
        self,
        last: int | None,
        voice_states: Sequence[dict[str, Any]],
        interaction_states: Sequence[dict[str, Any]],
    ) -> None:
        """Rebuild history up to the last completed tick; later stored windows still run.

        Windows at or before ``last`` become history (and states redelivered for them are
        late); windows after it had their states stored but their tick never ran before
        the worker stopped, so they are filed as pending.
        """
        if last is None:
            return
        now = time.monotonic()
        windows: dict[int, _Pending] = {}
        stored = ((VOICE_STATE, voice_states), (INTERACTION_STATE, interaction_states))
        for schema, records in stored:
            for record in records:
                start = int(record["window_start"]) // self.window_ms * self.window_ms
                pending = windows.setdefault(start, _Pending(now))
                if schema == INTERACTION_STATE:
                    key = (str(record["source"]), str(record["target"]), str(record["kind"]))
                    pending.interactions[key] = record
                else:
                    pending.voices[str(record["voice_id"])] = record
        # States that arrived while the models loaded: those of finished ticks are late,
        # the rest join what storage holds for their window.
        for start in [s for s in self._pending if s <= last]:
            del self._pending[start]
        for start in sorted(windows):
            pending = windows[start]
            if start <= last:
                self._history.append(
                    tick_from_states(
                        start, list(pending.voices.values()), list(pending.interactions.values())
                    )
                )
            elif start in self._pending:
                arrived = self._pending[start]
                arrived.voices = pending.voices | arrived.voices
                arrived.interactions = pending.interactions | arrived.interactions
            else:
                self._pending[start] = pending
        self._done_until = max(self._done_until, last)
        log.info(
            "restored %d windows of history up to %d; %d stored windows still to run",
            len(self._history),
            last,
            len(self._pending),
        )

    # ------------------------------------------------------------ the loop

    async def run(
        self, publish: Publish, delivered: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Run ticks until cancelled; ``delivered`` is awaited after each tick's records."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.runtime.start)
        except ModelError as exc:
            # The stream itself must go on: states and raw events do not need the models.
            log.error("inference is off, no usable model version: %s", exc)
            self._executor.shutdown(wait=False)
            self.disabled = True
            self._pending.clear()
            return
        if self.recent is not None:
            try:
                last, voices, links = await loop.run_in_executor(
                    self._executor, self.recent, HISTORY
                )
            except Exception:  # noqa: BLE001 - without history the models still run
                log.exception("could not read the last ticks back; starting without history")
            else:
                self.restore(last, voices, links)
        next_poll = time.monotonic() + self.settings.models_poll_seconds
        try:
            while True:
                ready, wait = self._ready(time.monotonic())
                for start in ready:
                    pending = self._pending.pop(start)
                    self._done_until = start
                    try:
                        outputs = await loop.run_in_executor(
                            self._executor,
                            self.run_tick,
                            start,
                            pending.voices,
                            list(pending.interactions.values()),
                        )
                    except Exception:  # noqa: BLE001 - one bad tick must not stop inference
                        log.exception("tick %d failed", start)
                        continue
                    for schema, key, record in outputs.records():
                        await publish(schema, key, record)
                        MODEL_OUTPUTS.labels(schema.rsplit(".", 1)[-1]).inc()
                    if delivered is not None:
                        try:
                            await delivered()
                        except DeliveryError:
                            log.exception("tick %d: outputs not delivered", start)
                now = time.monotonic()
                if now >= next_poll:
                    try:
                        await loop.run_in_executor(self._executor, self.runtime.refresh)
                    except Exception:  # noqa: BLE001 - e.g. a hand-edited active.json
                        log.exception("could not check the model registry")
                    next_poll = now + self.settings.models_poll_seconds
                timeout = min(wait if wait is not None else math.inf, next_poll - time.monotonic())
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, timeout))
                except TimeoutError:
                    pass
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ one tick (inference thread)

    def run_tick(
        self,
        window_start: int,
        voice_states: dict[str, dict[str, Any]],
        interaction_states: list[dict[str, Any]],
    ) -> TickOutputs:
        started = time.perf_counter()
        models = self.runtime.current
        tick = tick_from_states(window_start, list(voice_states.values()), interaction_states)
        self._history.append(tick)
        history = list(self._history)
        now_ms = int(time.time() * 1000)
        version = models.name
        observed = {v: {m: float(s[f"{m}_mean"]) for m in METRICS} for v, s in voice_states.items()}
        alerts = rules.breach_alerts(
            self.rules, self._last_predictions, observed, window_start, version, now_ms
        )
        predictions = self._predict(models, history, now_ms)
        conflicts = self._conflicts(models, history, now_ms)
        emergence = self._emergence(models, history, now_ms)
        pattern = self._pattern(models, history, tick, now_ms)
        current_stress = {v: m["stress"] for v, m in observed.items()}
        alerts += rules.stress_alerts(self.rules, predictions, current_stress, version, now_ms)
        alerts += rules.conflict_alerts(self.rules, conflicts, version, now_ms)
        alerts += rules.emergence_alerts(self.rules, emergence, version, now_ms)
        self._last_predictions = {p["voice_id"]: p for p in predictions}
        TICKS.inc()
        TICK_SECONDS.observe(time.perf_counter() - started)
        return TickOutputs(window_start, predictions, conflicts, emergence, pattern, alerts)

    def _predict(
        self, models: LoadedVersion, history: list[Tick], now_ms: int
    ) -> list[dict[str, Any]]:
        tick = history[-1]
        rows = np.flatnonzero(tick.present)
        if len(rows) == 0:
            return []
        x = predictor_input(history)[rows]
        mean, std = self.runtime.run("voice_state_predictor", {"history": x}, models)
        level = self.rules.stress_level
        stress = METRICS.index("stress")
        out = []
        for r, i in enumerate(rows.tolist()):
            record: dict[str, Any] = {
                "window_start": tick.window_start,
                "target_window_start": tick.window_start + self.window_ms,
                "voice_id": tick.voice_ids[i],
            }
            for j, m in enumerate(METRICS):
                mu, sd = float(mean[r, j]), float(std[r, j])
                record[f"{m}_pred"] = mu
                record[f"{m}_std"] = sd
                record[f"{m}_low"] = mu - INTERVAL_Z * sd
                record[f"{m}_high"] = mu + INTERVAL_Z * sd
            record["interval_level"] = INTERVAL_LEVEL
            record["risk"] = _normal_tail(level, float(mean[r, stress]), float(std[r, stress]))
            record["model_version"] = models.name
            record["produced_at"] = now_ms
            out.append(record)
        return out

    def _conflicts(
        self, models: LoadedVersion, history: list[Tick], now_ms: int
    ) -> list[dict[str, Any]]:
        tick = history[-1]
        graphs = conflict_graphs(history, self.settings.conflict_max_graph_voices)
        if not graphs.members:
            return []
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
        ids = tick.voice_ids
        return [
            {
                "window_start": tick.window_start,
                "source": ids[source],
                "target": ids[target],
                "probability": p,
                "horizon_windows": CONFLICT_HORIZON,
                "model_version": models.name,
                "produced_at": now_ms,
            }
            for source, target, p in zip(
                voice[g, a].tolist(),
                voice[g, b].tolist(),
                probability[g, a, b].tolist(),
                strict=True,
            )
        ]

    def _emergence(self, models: LoadedVersion, history: list[Tick], now_ms: int) -> dict[str, Any]:
        probability, types, error = self.runtime.run(
            "emergence_detector", {"system": system_vector(history)[None]}, models
        )
        kind = int(types[0].argmax())
        p = float(probability[0])
        return {
            "window_start": history[-1].window_start,
            "probability": p,
            "detected": p >= self.rules.emergence_threshold,
            "type": EMERGENCE_TYPES[kind],
            "type_probability": float(types[0, kind]),
            "reconstruction_error": float(error[0]),
            "voices": len(history[-1].voice_ids),
            "model_version": models.name,
            "produced_at": now_ms,
        }

    def _pattern(
        self, models: LoadedVersion, history: list[Tick], tick: Tick, now_ms: int
    ) -> dict[str, Any]:
        probability, learned_complexity, novelty = self.runtime.run(
            "pattern_classifier", {"matrices": pattern_input(history)[None]}, models
        )
        kind = int(probability[0].argmax())
        return {
            "window_start": tick.window_start,
            "pattern": REGIMES[kind],
            "confidence": float(probability[0, kind]),
            "complexity": float(np.clip(learned_complexity[0], 0.0, 1.0)),
            "novelty": float(novelty[0]),
            "model_version": models.name,
            "produced_at": now_ms,
        }
