"""Labelled training data: simulated runs aggregated into ticks, with their ground truth.

The simulator runs without Kafka here (arrays, not records) and each window is folded
into the same statistics a VoiceState / InteractionState carries, so the feature
builder sees what it will see in the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from deltaomega.models.features import K, Tick
from deltaomega.producer.episodes import REGIMES, Episode
from deltaomega.producer.simulator import (
    SimulationConfig,
    TickInteractions,
    TickVoices,
    VoiceDynamics,
)
from deltaomega.schemas.records import METRICS, STAT_NAMES

WINDOW_MS = 10_000
TICK_SECONDS = 0.1
RUN_START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Run:
    seed: int
    ticks: list[Tick]
    #: (windows,) index into REGIMES of the regime at each window's midpoint.
    regime: NDArray[np.int64]
    #: (windows, voices, voices): the pair is in a conflict episode during the window.
    conflict: NDArray[np.bool_]
    #: (windows,): an emergence onset episode overlaps the window.
    emergence: NDArray[np.bool_]
    episodes: list[Episode]


def _window_tick(
    start: int, voice_ids: tuple[str, ...], voices: list[TickVoices], links: list[TickInteractions]
) -> Tick:
    n = len(voice_ids)
    voice = np.concatenate([v.voice for v in voices])
    ts = np.concatenate([v.ts for v in voices])
    values = np.concatenate([v.values for v in voices])
    counts = np.bincount(voice, minlength=n)
    stats = np.zeros((n, len(METRICS), len(STAT_NAMES)))
    for j in range(len(METRICS)):
        stats[:, j, 0] = np.bincount(voice, values[:, j], minlength=n) / np.maximum(counts, 1)
        lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(lo, voice, values[:, j])
        np.maximum.at(hi, voice, values[:, j])
        stats[:, j, 1], stats[:, j, 2] = lo, hi
    order = np.lexsort((ts, voice))
    last_rows: NDArray[np.int64] | list[int] = (
        order[np.r_[np.flatnonzero(np.diff(voice[order])), len(order) - 1]] if len(order) else []
    )
    stats[voice[last_rows], :, 3] = values[last_rows]
    present = counts > 0
    stats[~present] = 0.0
    src = np.concatenate([x.source for x in links])
    tgt = np.concatenate([x.target for x in links])
    kind = np.concatenate([x.kind for x in links])
    strength = np.concatenate([x.strength for x in links])
    cell = (src * n + tgt) * K + kind
    total = np.bincount(cell, strength, minlength=n * n * K)
    count = np.bincount(cell, minlength=n * n * K)
    cells = np.flatnonzero(count)
    return Tick.from_cells(
        start, voice_ids, stats.reshape(n, -1), present, cells, total[cells] / count[cells]
    )


def simulate_run(seed: int, voices: int, minutes: float, rate_per_voice: float = 25.0) -> Run:
    """One labelled run of ``minutes`` simulated minutes (about 1 s of CPU per 30 minutes)."""
    config = SimulationConfig(
        voices=voices,
        rate=rate_per_voice * voices,
        interaction_rate=5.0 * voices,
        seed=seed,
    )
    dynamics = VoiceDynamics(config, RUN_START_MS)
    ids = tuple(dynamics.voice_ids)
    steps = round(WINDOW_MS / 1000 / TICK_SECONDS)
    windows = int(minutes * 60_000 // WINDOW_MS)
    ticks = []
    for w in range(windows):
        start = RUN_START_MS + w * WINDOW_MS
        parts = [dynamics.tick_arrays(TICK_SECONDS) for _ in range(steps)]
        ticks.append(_window_tick(start, ids, [p[0] for p in parts], [p[1] for p in parts]))
    assert dynamics.scenario is not None
    episodes = dynamics.scenario.begun(RUN_START_MS + windows * WINDOW_MS)
    index = {v: i for i, v in enumerate(ids)}
    regime = np.zeros(windows, dtype=np.int64)
    conflict = np.zeros((windows, voices, voices), dtype=bool)
    emergence = np.zeros(windows, dtype=bool)
    for episode in episodes:
        first = max(0, (episode.start_ms - RUN_START_MS) // WINDOW_MS)
        last = min(windows - 1, (episode.end_ms - 1 - RUN_START_MS) // WINDOW_MS)
        for w in range(first, last + 1):
            middle = RUN_START_MS + w * WINDOW_MS + WINDOW_MS // 2
            if episode.active(middle):
                regime[w] = REGIMES.index(episode.regime)
        if episode.regime == "conflict":
            a, b = (index[v] for v in episode.voices)
            conflict[first : last + 1, a, b] = conflict[first : last + 1, b, a] = True
        elif episode.regime == "emergence":
            emergence[first : last + 1] = True
    return Run(seed, ticks, regime, conflict, emergence, episodes)
