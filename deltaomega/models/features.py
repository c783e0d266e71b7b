"""The one feature builder: window states → model inputs, for training and serving alike.

A :class:`Tick` is everything known about one closed window: each voice's VoiceState
statistics and the InteractionState strengths by (source, target, kind). Training builds
ticks from simulated arrays, the worker from the state records on Kafka; both then call
the functions below, so a model always sees inputs built the same way.

:data:`FEATURE_SPEC` fixes names, order, shapes and scaling; :func:`spec_hash` is stored
in each model's manifest and serving refuses a model built for another spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import INTERACTION_KINDS, KIND_CODE, METRICS, STAT_NAMES

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

K = len(INTERACTION_KINDS)
#: Windows of history the sequence models look at.
SEQUENCE_WINDOWS = 8
#: Windows of matrices the pattern classifier looks at, and the voices it keeps.
PATTERN_WINDOWS = 4
PATTERN_VOICES = 12
#: Windows ahead the conflict predictor's probability covers.
CONFLICT_HORIZON = 3
#: Edge channels of the conflict graph: strength by kind now, and its change against the
#: mean of the three windows before.
EDGE_CHANNELS = 2 * K
#: Central interval the predictor reports (z for 90 %).
INTERVAL_LEVEL = 0.9
INTERVAL_Z = 1.6448536269514722

SUPPORTIVE = np.array(
    [k in ("COOPERATION", "COMPLEMENTATION", "AMPLIFICATION") for k in INTERACTION_KINDS]
)
ANTAGONISTIC = ~SUPPORTIVE
#: Metric scaling to about [-1, 1]: (x − centre) / half-range.
METRIC_CENTRE = np.array([1.0, 0.5, 0.5, 0.5])
METRIC_HALF_RANGE = np.array([1.0, 0.5, 0.5, 0.5])

VOICE_FEATURES: tuple[str, ...] = (
    *(f"{m}_{s}" for m in METRICS for s in STAT_NAMES),
    "present",
    "in_support",
    "in_antagonism",
    "out_support",
    "out_antagonism",
    "harmony",
)
SYSTEM_FEATURES: tuple[str, ...] = (
    *(f"{m}_mean_across" for m in METRICS),
    *(f"{m}_std_across" for m in METRICS),
    *(f"strength_{k.lower()}" for k in INTERACTION_KINDS),
    "harmony",
    "link_density",
    "link_jaccard_1",
    "link_jaccard_2",
    "link_jaccard_3",
    "strength_change_1",
    "links_new_1",
    "links_gone_1",
    *(f"{m}_change_1" for m in METRICS),
)
EMERGENCE_TYPES: tuple[str, ...] = tuple(r for r in REGIMES if r != "calm")
PATTERN_CHANNELS: tuple[str, ...] = ("support", "antagonism", "stress_diag", "activation_diag")

FEATURE_SPEC: dict[str, Any] = {
    "version": 1,
    "metrics": list(METRICS),
    "stats": list(STAT_NAMES),
    "kinds": list(INTERACTION_KINDS),
    "metric_centre": METRIC_CENTRE.tolist(),
    "metric_half_range": METRIC_HALF_RANGE.tolist(),
    "voice_state_predictor": {
        "input": ["voices", SEQUENCE_WINDOWS, list(VOICE_FEATURES)],
        "output": ["mean (raw units)", "std (raw units)"],
        "interval_level": INTERVAL_LEVEL,
    },
    "conflict_predictor": {
        "input": {
            "nodes": ["graphs", "voices", list(VOICE_FEATURES)],
            "edges": ["graphs", "voices", "voices", list(INTERACTION_KINDS)],
            "mask": ["graphs", "voices"],
        },
        "horizon_windows": CONFLICT_HORIZON,
    },
    "emergence_detector": {
        "input": ["ticks", list(SYSTEM_FEATURES)],
        "types": list(EMERGENCE_TYPES),
    },
    "pattern_classifier": {
        "input": ["ticks", PATTERN_WINDOWS * len(PATTERN_CHANNELS), PATTERN_VOICES, PATTERN_VOICES],
        "channels": list(PATTERN_CHANNELS),
        "classes": list(REGIMES),
    },
}
MODEL_NAMES: tuple[str, ...] = (
    "voice_state_predictor",
    "conflict_predictor",
    "emergence_detector",
    "pattern_classifier",
)


def spec_hash(model: str) -> str:
    """sha256 of the shared part of the spec plus the model's own part."""
    shared = {k: v for k, v in FEATURE_SPEC.items() if k not in MODEL_NAMES}
    text = json.dumps({"shared": shared, model: FEATURE_SPEC[model]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Tick:
    """One closed window of the whole system, voices in a fixed order."""

    window_start: int
    voice_ids: tuple[str, ...]
    #: (voices, 16): METRICS × STAT_NAMES in raw units; zeros where absent.
    stats: F64
    present: NDArray[np.bool_]
    #: (voices, voices, kinds): mean observed strength source → target; 0 where none.
    strength: F64
    #: Derived arrays, computed once per tick: a tick is read for several windows running.
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def aligned(self, voice_ids: Sequence[str]) -> Tick:
        """The same window over another voice order (voices it lacks are absent)."""
        if tuple(voice_ids) == self.voice_ids:
            return self
        index = {v: i for i, v in enumerate(self.voice_ids)}
        src = np.array([index.get(v, -1) for v in voice_ids], dtype=np.int64)
        have = src >= 0
        n = len(voice_ids)
        stats = np.zeros((n, self.stats.shape[1]))
        stats[have] = self.stats[src[have]]
        present = np.zeros(n, dtype=bool)
        present[have] = self.present[src[have]]
        strength = np.zeros((n, n, K))
        rows = np.flatnonzero(have)
        strength[np.ix_(rows, rows)] = self.strength[np.ix_(src[have], src[have])]
        return Tick(self.window_start, tuple(voice_ids), stats, present, strength)


def tick_from_states(
    window_start: int,
    voice_states: Sequence[Mapping[str, Any]],
    interaction_states: Sequence[Mapping[str, Any]],
) -> Tick:
    """A tick from VoiceState and InteractionState records of one window."""
    voice_ids = sorted(
        {str(s["voice_id"]) for s in voice_states}
        | {str(s["source"]) for s in interaction_states}
        | {str(s["target"]) for s in interaction_states}
    )
    index = {v: i for i, v in enumerate(voice_ids)}
    n = len(voice_ids)
    stats = np.zeros((n, len(METRICS) * len(STAT_NAMES)))
    present = np.zeros(n, dtype=bool)
    names = [f"{m}_{s}" for m in METRICS for s in STAT_NAMES]
    for state in voice_states:
        i = index[str(state["voice_id"])]
        stats[i] = [float(state[name]) for name in names]
        present[i] = True
    strength = np.zeros((n, n, K))
    for state in interaction_states:
        strength[index[state["source"]], index[state["target"]], KIND_CODE[state["kind"]]] = float(
            state["strength_mean"]
        )
    return Tick(window_start, tuple(voice_ids), stats, present, strength)


def _scaled_stats(stats: F64) -> F64:
    scale = np.repeat(METRIC_HALF_RANGE, len(STAT_NAMES))
    centre = np.repeat(METRIC_CENTRE, len(STAT_NAMES))
    scaled: F64 = (stats - centre) / scale
    return scaled


def voice_features(tick: Tick) -> F32:
    """(voices, len(VOICE_FEATURES)); absent voices are all zeros. Read-only, memoised."""
    cached: F32 | None = tick._memo.get("voice_features")
    if cached is None:
        cached = _voice_features(tick)
        cached.setflags(write=False)
        tick._memo["voice_features"] = cached
    return cached


def _voice_features(tick: Tick) -> F32:
    s = tick.strength
    support = s[:, :, SUPPORTIVE].sum(axis=2)
    antagonism = s[:, :, ANTAGONISTIC].sum(axis=2)
    in_support, in_antag = support.sum(axis=0), antagonism.sum(axis=0)
    out_support, out_antag = support.sum(axis=1), antagonism.sum(axis=1)
    total = in_support + in_antag + out_support + out_antag
    harmony = np.where(
        total > 0, (in_support + out_support - in_antag - out_antag) / np.maximum(total, 1e-9), 0.0
    )
    out = np.column_stack(
        [
            _scaled_stats(tick.stats),
            np.ones(len(tick.voice_ids)),
            np.tanh(in_support),
            np.tanh(in_antag),
            np.tanh(out_support),
            np.tanh(out_antag),
            harmony,
        ]
    )
    out[~tick.present, : len(METRICS) * len(STAT_NAMES) + 1] = 0.0
    return out.astype(np.float32)


def predictor_input(history: Sequence[Tick]) -> F32:
    """(voices, SEQUENCE_WINDOWS, features) over the voices of the newest tick.

    ``history`` is oldest first; missing older windows are zeros (present = 0).
    """
    newest = history[-1]
    window = list(history[-SEQUENCE_WINDOWS:])
    out = np.zeros((len(newest.voice_ids), SEQUENCE_WINDOWS, len(VOICE_FEATURES)), np.float32)
    offset = SEQUENCE_WINDOWS - len(window)
    for t, tick in enumerate(window):
        out[:, offset + t] = voice_features(tick.aligned(newest.voice_ids))
    return out


def edge_channels(history: Sequence[Tick]) -> F32:
    """(voices, voices, EDGE_CHANNELS) for the newest tick: strengths, and their change."""
    newest = history[-1]
    before = [t.aligned(newest.voice_ids).strength for t in history[-4:-1]]
    reference = np.mean(before, axis=0) if before else newest.strength
    return np.concatenate([newest.strength, newest.strength - reference], axis=2).astype(np.float32)


def conflict_input(history: Sequence[Tick]) -> tuple[F32, F32, F32]:
    """(nodes, edges, mask) for the whole system as one graph (leading axis of 1)."""
    tick = history[-1]
    nodes = voice_features(tick)[None]
    edges = edge_channels(history)[None]
    mask = np.ones((1, len(tick.voice_ids)), np.float32)
    return nodes, edges, mask


def linked_pairs(tick: Tick) -> NDArray[np.bool_]:
    """(voices, voices): source → target interacted in the window (any kind). Memoised."""
    linked: NDArray[np.bool_] | None = tick._memo.get("links")
    if linked is None:
        linked = tick.strength.sum(axis=2) > 0
        linked.setflags(write=False)
        tick._memo["links"] = linked
    return linked


def _jaccard_distance(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    union = int((a | b).sum())
    return 0.0 if union == 0 else 1.0 - int((a & b).sum()) / union


def system_vector(history: Sequence[Tick]) -> F32:
    """(len(SYSTEM_FEATURES),) for the newest tick, using up to three windows before it."""
    newest = history[-1]
    ids = newest.voice_ids
    previous = [t.aligned(ids) for t in history[-4:-1]][::-1]  # newest first
    n = max(1, len(ids))
    means = newest.stats[newest.present][:, :: len(STAT_NAMES)]
    if len(means) == 0:
        means = np.zeros((1, len(METRICS)))
    s = newest.strength
    by_kind = s.sum(axis=(0, 1))
    total = float(by_kind.sum())
    harmony = (
        0.0
        if total == 0
        else float((by_kind[SUPPORTIVE].sum() - by_kind[ANTAGONISTIC].sum()) / total)
    )
    links = linked_pairs(newest)
    density = float(links.sum()) / max(1, n * (n - 1))
    jaccard = [_jaccard_distance(links, linked_pairs(p)) for p in previous]
    jaccard += [0.0] * (3 - len(jaccard))
    if previous:
        before = previous[0]
        change = float(np.abs(s - before.strength).sum()) / max(1e-9, total + before.strength.sum())
        old = linked_pairs(before)
        new_links = float((links & ~old).sum()) / n
        gone_links = float((old & ~links).sum()) / n
        both = newest.present & before.present
        if both.any():
            delta = np.abs(newest.stats[both] - before.stats[both])[:, :: len(STAT_NAMES)].mean(
                axis=0
            )
        else:
            delta = np.zeros(len(METRICS))
    else:
        change, new_links, gone_links, delta = 0.0, 0.0, 0.0, np.zeros(len(METRICS))
    vector = np.concatenate(
        [
            (means.mean(axis=0) - METRIC_CENTRE) / METRIC_HALF_RANGE,
            means.std(axis=0) / METRIC_HALF_RANGE,
            np.tanh(by_kind / n),
            [harmony, density],
            jaccard,
            [change, np.tanh(new_links), np.tanh(gone_links)],
            delta / METRIC_HALF_RANGE,
        ]
    )
    return vector.astype(np.float32)


def pattern_input(history: Sequence[Tick]) -> F32:
    """(channels, PATTERN_VOICES, PATTERN_VOICES) over the newest tick's strongest voices.

    Voices are ordered by their total strength in the newest window (ties by id), so the
    picture does not depend on voice names; systems with fewer voices are zero-padded.
    """
    newest = history[-1]
    s = newest.strength.sum(axis=2)
    activity = s.sum(axis=0) + s.sum(axis=1)
    order = sorted(range(len(newest.voice_ids)), key=lambda i: (-activity[i], newest.voice_ids[i]))
    keep = [newest.voice_ids[i] for i in order[:PATTERN_VOICES]]
    m = len(keep)
    window = list(history[-PATTERN_WINDOWS:])
    offset = PATTERN_WINDOWS - len(window)
    out = np.zeros(
        (PATTERN_WINDOWS, len(PATTERN_CHANNELS), PATTERN_VOICES, PATTERN_VOICES), np.float32
    )
    diag = np.arange(m)
    for t, tick in enumerate(window):
        aligned = tick.aligned(keep)
        out[offset + t, 0, :m, :m] = aligned.strength[:, :, SUPPORTIVE].sum(axis=2)
        out[offset + t, 1, :m, :m] = aligned.strength[:, :, ANTAGONISTIC].sum(axis=2)
        stress = aligned.stats[:, METRICS.index("stress") * len(STAT_NAMES)]
        activation = aligned.stats[:, METRICS.index("activation") * len(STAT_NAMES)]
        out[offset + t, 2, diag, diag] = stress
        out[offset + t, 3, diag, diag] = activation
    return out.reshape(-1, PATTERN_VOICES, PATTERN_VOICES)


def complexity(tick: Tick) -> float:
    """Normalised Shannon entropy of the window's strengths over (pair, kind) cells."""
    s = tick.strength.ravel()
    s = s[s > 0]
    if len(s) < 2:
        return 0.0
    p = s / s.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(s)))


def _components(links: NDArray[np.bool_]) -> list[NDArray[np.int64]]:
    """Connected components of the undirected link graph (union–find), smallest index first."""
    n = len(links)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for a, b in zip(*np.nonzero(links | links.T), strict=True):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    return [np.flatnonzero(roots == r) for r in np.unique(roots)]


def conflict_graphs(
    history: Sequence[Tick], max_voices: int
) -> tuple[F32, F32, F32, list[NDArray[np.int64]]]:
    """The tick as a batch of padded graphs: (nodes, edges, mask, member indices per graph).

    Voices are grouped by connected component of the interaction graph, so one call
    scores every pair that can interact; a component larger than ``max_voices`` is cut
    into consecutive chunks (pairs across chunks are not scored). Voices with no links
    are left out: they have no pair to score.
    """
    tick = history[-1]
    groups: list[NDArray[np.int64]] = []
    for component in _components(linked_pairs(tick)):
        if len(component) < 2:
            continue
        groups += [component[i : i + max_voices] for i in range(0, len(component), max_voices)]
    groups = [g for g in groups if len(g) >= 2]
    size = max((len(g) for g in groups), default=2)
    features = voice_features(tick)
    channels = edge_channels(history)
    nodes = np.zeros((len(groups), size, len(VOICE_FEATURES)), np.float32)
    edges = np.zeros((len(groups), size, size, EDGE_CHANNELS), np.float32)
    mask = np.zeros((len(groups), size), np.float32)
    for g, members in enumerate(groups):
        m = len(members)
        nodes[g, :m] = features[members]
        edges[g, :m, :m] = channels[np.ix_(members, members)]
        mask[g, :m] = 1.0
    return nodes, edges, mask, groups
