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
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
    """One closed window of the whole system, voices in a fixed order.

    Interactions are kept sparse, as sorted cells ``(source * voices + target) * K + kind``
    with their mean strength (> 0): a system of 10,000 voices has tens of thousands of
    links per window, not the 500 million cells of a dense voices² × kinds matrix.
    """

    window_start: int
    voice_ids: tuple[str, ...]
    #: (voices, 16): METRICS × STAT_NAMES in raw units; zeros where absent.
    stats: F64
    present: NDArray[np.bool_]
    #: Sorted, unique cell codes of the observed interactions.
    cells: NDArray[np.int64]
    #: Mean observed strength per cell, all > 0.
    values: F64
    #: Derived arrays, computed once per tick: a tick is read for several windows running.
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_cells(
        cls,
        window_start: int,
        voice_ids: tuple[str, ...],
        stats: F64,
        present: NDArray[np.bool_],
        cells: NDArray[np.int64],
        values: F64,
    ) -> Tick:
        """Sorts the cells, keeps the last value given for a cell and drops zero strengths
        (no interaction, as far as any feature goes)."""
        order = np.argsort(np.asarray(cells, dtype=np.int64), kind="stable")
        cells = np.asarray(cells, dtype=np.int64)[order]
        values = np.asarray(values, dtype=np.float64)[order]
        keep = np.r_[cells[1:] != cells[:-1], True] & (values > 0) if len(cells) else values > 0
        return cls(window_start, voice_ids, stats, present, cells[keep], values[keep])

    def edges(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(source, target, kind) index per cell. Memoised."""
        cached: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None
        cached = self._memo.get("edges")
        if cached is None:
            pair, kind = np.divmod(self.cells, K)
            source, target = np.divmod(pair, len(self.voice_ids))
            cached = self._memo["edges"] = (source, target, kind)
        return cached

    def dense_strength(self) -> F64:
        """(voices, voices, kinds); for small systems only (tests, training, a pattern's 12)."""
        n = len(self.voice_ids)
        out = np.zeros(n * n * K)
        out[self.cells] = self.values
        return out.reshape(n, n, K)

    def aligned(self, voice_ids: Sequence[str]) -> Tick:
        """The same window over another voice order (voices it lacks are absent)."""
        if tuple(voice_ids) == self.voice_ids:
            return self
        index: dict[str, int] | None = self._memo.get("index")
        if index is None:
            index = self._memo["index"] = {v: i for i, v in enumerate(self.voice_ids)}
        src = np.array([index.get(v, -1) for v in voice_ids], dtype=np.int64)
        have = src >= 0
        n = len(voice_ids)
        stats = np.zeros((n, self.stats.shape[1]))
        stats[have] = self.stats[src[have]]
        present = np.zeros(n, dtype=bool)
        present[have] = self.present[src[have]]
        moved = np.full(len(self.voice_ids), -1, dtype=np.int64)
        moved[src[have]] = np.flatnonzero(have)
        source, target, kind = self.edges()
        a, b = moved[source], moved[target]
        keep = (a >= 0) & (b >= 0)
        cells = (a[keep] * n + b[keep]) * K + kind[keep]
        return Tick.from_cells(
            self.window_start, tuple(voice_ids), stats, present, cells, self.values[keep]
        )


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
    names = [f"{m}_{s}" for m in METRICS for s in STAT_NAMES]
    stats = np.zeros((n, len(names)))
    present = np.zeros(n, dtype=bool)
    if voice_states:
        rows = np.array([index[str(s["voice_id"])] for s in voice_states], dtype=np.int64)
        stats[rows] = [[float(s[name]) for name in names] for s in voice_states]
        present[rows] = True
    cells = np.array(
        [
            (index[str(s["source"])] * n + index[str(s["target"])]) * K + KIND_CODE[s["kind"]]
            for s in interaction_states
        ],
        dtype=np.int64,
    )
    values = np.array([float(s["strength_mean"]) for s in interaction_states], dtype=np.float64)
    return Tick.from_cells(window_start, tuple(voice_ids), stats, present, cells, values)


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
    n = len(tick.voice_ids)
    source, target, kind = tick.edges()
    supportive = SUPPORTIVE[kind]
    support = np.where(supportive, tick.values, 0.0)
    antagonism = np.where(supportive, 0.0, tick.values)
    in_support = np.bincount(target, support, minlength=n)
    in_antag = np.bincount(target, antagonism, minlength=n)
    out_support = np.bincount(source, support, minlength=n)
    out_antag = np.bincount(source, antagonism, minlength=n)
    total = in_support + in_antag + out_support + out_antag
    harmony = np.where(
        total > 0, (in_support + out_support - in_antag - out_antag) / np.maximum(total, 1e-9), 0.0
    )
    out = np.column_stack(
        [
            _scaled_stats(tick.stats),
            np.ones(n),
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


def edge_cells(history: Sequence[Tick]) -> tuple[NDArray[np.int64], F64, F64]:
    """The newest tick's edge channels, sparse: (cells, strength now, change).

    The change is against the mean of up to three windows before; cells are those with
    a strength now or in one of those windows (elsewhere both channels are 0).
    """
    newest = history[-1]
    before = [t.aligned(newest.voice_ids) for t in history[-4:-1]]
    if not before:
        return newest.cells, newest.values, np.zeros(len(newest.cells))
    cells, slot = np.unique(
        np.concatenate([newest.cells, *(t.cells for t in before)]), return_inverse=True
    )
    now = np.zeros(len(cells))
    now[slot[: len(newest.cells)]] = newest.values
    earlier = np.concatenate([t.values for t in before])
    reference = np.bincount(slot[len(newest.cells) :], earlier, minlength=len(cells)) / len(before)
    return cells, now, now - reference


def edge_channels(history: Sequence[Tick]) -> F32:
    """(voices, voices, EDGE_CHANNELS) for the newest tick: strengths, and their change.

    Dense: for training's small systems; serving uses :func:`conflict_graphs`.
    """
    n = len(history[-1].voice_ids)
    cells, now, change = edge_cells(history)
    pair, kind = np.divmod(cells, K)
    out = np.zeros((n * n, EDGE_CHANNELS), np.float32)
    out[pair, kind] = now
    out[pair, K + kind] = change
    return out.reshape(n, n, EDGE_CHANNELS)


def conflict_input(history: Sequence[Tick]) -> tuple[F32, F32, F32]:
    """(nodes, edges, mask) for the whole system as one graph (leading axis of 1)."""
    tick = history[-1]
    nodes = voice_features(tick)[None]
    edges = edge_channels(history)[None]
    mask = np.ones((1, len(tick.voice_ids)), np.float32)
    return nodes, edges, mask


def linked_pairs(tick: Tick) -> NDArray[np.int64]:
    """Sorted codes ``source * voices + target`` of pairs that interacted (any kind). Memoised."""
    linked: NDArray[np.int64] | None = tick._memo.get("links")
    if linked is None:
        linked = np.unique(tick.cells // K)
        linked.setflags(write=False)
        tick._memo["links"] = linked
    return linked


def _jaccard_distance(a: NDArray[np.int64], b: NDArray[np.int64]) -> float:
    union = len(np.union1d(a, b))
    return 0.0 if union == 0 else 1.0 - len(np.intersect1d(a, b, assume_unique=True)) / union


def _abs_difference(a: Tick, b: Tick) -> float:
    """Σ |a − b| over all cells of two ticks on the same voices."""
    cells, slot = np.unique(np.concatenate([a.cells, b.cells]), return_inverse=True)
    signed = np.concatenate([a.values, -b.values])
    return float(np.abs(np.bincount(slot, signed, minlength=len(cells))).sum())


def system_vector(history: Sequence[Tick]) -> F32:
    """(len(SYSTEM_FEATURES),) for the newest tick, using up to three windows before it."""
    newest = history[-1]
    ids = newest.voice_ids
    previous = [t.aligned(ids) for t in history[-4:-1]][::-1]  # newest first
    n = max(1, len(ids))
    means = newest.stats[newest.present][:, :: len(STAT_NAMES)]
    if len(means) == 0:
        means = np.zeros((1, len(METRICS)))
    _, _, kind = newest.edges()
    by_kind = np.bincount(kind, newest.values, minlength=K)
    total = float(by_kind.sum())
    harmony = (
        0.0
        if total == 0
        else float((by_kind[SUPPORTIVE].sum() - by_kind[ANTAGONISTIC].sum()) / total)
    )
    links = linked_pairs(newest)
    density = float(len(links)) / max(1, n * (n - 1))
    jaccard = [_jaccard_distance(links, linked_pairs(p)) for p in previous]
    jaccard += [0.0] * (3 - len(jaccard))
    if previous:
        before = previous[0]
        change = _abs_difference(newest, before) / max(1e-9, total + before.values.sum())
        old = linked_pairs(before)
        new_links = float(len(np.setdiff1d(links, old, assume_unique=True))) / n
        gone_links = float(len(np.setdiff1d(old, links, assume_unique=True))) / n
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
    n = len(newest.voice_ids)
    source, target, _ = newest.edges()
    activity = np.bincount(source, newest.values, minlength=n) + np.bincount(
        target, newest.values, minlength=n
    )
    by_id = np.empty(n, dtype=np.int64)
    by_id[np.argsort(np.array(newest.voice_ids, dtype=object), kind="stable")] = np.arange(n)
    order = np.lexsort((by_id, -activity))
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
        strength = aligned.dense_strength()
        out[offset + t, 0, :m, :m] = strength[:, :, SUPPORTIVE].sum(axis=2)
        out[offset + t, 1, :m, :m] = strength[:, :, ANTAGONISTIC].sum(axis=2)
        stress = aligned.stats[:, METRICS.index("stress") * len(STAT_NAMES)]
        activation = aligned.stats[:, METRICS.index("activation") * len(STAT_NAMES)]
        out[offset + t, 2, diag, diag] = stress
        out[offset + t, 3, diag, diag] = activation
    return out.reshape(-1, PATTERN_VOICES, PATTERN_VOICES)


def complexity(tick: Tick) -> float:
    """Normalised Shannon entropy of the window's strengths over (pair, kind) cells."""
    s = tick.values
    if len(s) < 2:
        return 0.0
    p = s / s.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(s)))


def _components(voices: int, links: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Connected components (two voices or more) of the undirected link graph.

    Vectorised hooking and pointer jumping: each round hooks every root to the smallest
    root it is linked to, so the rounds grow like log(voices), not like the graph's
    diameter. A component's root ends as its smallest index; components come in that
    order, members ascending.
    """
    a, b = np.divmod(links, voices)
    parent = np.arange(voices)
    while True:
        ra, rb = parent[a], parent[b]
        split = ra != rb
        if not split.any():
            break
        np.minimum.at(parent, np.maximum(ra, rb)[split], np.minimum(ra, rb)[split])
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    order = np.argsort(parent, kind="stable")
    roots, starts, sizes = np.unique(parent[order], return_index=True, return_counts=True)
    return [order[s : s + c] for s, c in zip(starts, sizes, strict=True) if c >= 2]


class ConflictGraphs(NamedTuple):
    """A tick as a batch of padded graphs for the conflict predictor."""

    nodes: F32
    edges: F32
    mask: F32
    #: Voice indices (into the tick) of each graph's members, in node order.
    members: list[NDArray[np.int64]]
    #: (graphs, size, size): the pair interacted in the window, either way round.
    linked: NDArray[np.bool_]


def _breadth_first(
    voices: int, links: NDArray[np.int64], component: NDArray[np.int64]
) -> list[int]:
    """The component's voices in breadth-first order from its smallest index."""
    a, b = np.divmod(links, voices)
    inside = np.zeros(voices, dtype=bool)
    inside[component] = True
    keep = inside[a]
    a, b = np.concatenate([a[keep], b[keep]]), np.concatenate([b[keep], a[keep]])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    starts = np.searchsorted(a, component)
    ends = np.searchsorted(a, component, side="right")
    neighbours = {
        v: b[s:e].tolist() for v, s, e in zip(component.tolist(), starts, ends, strict=True)
    }
    first = int(component[0])
    seen, queue = {first}, deque([first])
    out: list[int] = []
    while queue:
        v = queue.popleft()
        out.append(v)
        for w in neighbours[v]:
            if w not in seen:
                seen.add(w)
                queue.append(w)
    return out


def conflict_groups(tick: Tick, max_voices: int) -> list[NDArray[np.int64]]:
    """Voices grouped by connected component of the interaction graph, so one graph scores
    every pair that can interact. A component larger than ``max_voices`` is cut into
    chunks of its breadth-first order, so a chunk is a neighbourhood and keeps most of its
    links (pairs across chunks are not scored). Voices with no links are left out: they
    have no pair to score.
    """
    n = len(tick.voice_ids)
    links = linked_pairs(tick)
    groups: list[NDArray[np.int64]] = []
    for component in _components(n, links):
        if len(component) > max_voices:
            order = np.array(_breadth_first(n, links, component), dtype=np.int64)
            chunks = [order[i : i + max_voices] for i in range(0, len(order), max_voices)]
            groups += [np.sort(c) for c in chunks if len(c) >= 2]
        else:
            groups.append(component)
    return groups


def conflict_graphs(history: Sequence[Tick], max_voices: int) -> ConflictGraphs:
    """Every group of :func:`conflict_groups` as one batch, padded to the largest."""
    return _graph_batch(history, conflict_groups(history[-1], max_voices))


#: Padded pairs (graphs × size²) per conflict-predictor call: two 256-voice graphs, whose
#: 16 MB tensors share the cache better than four's (6 % faster with the other core
#: busy), while one graph a call takes onnxruntime's slower batch-1 paths.
PAIRS_PER_CALL = 1 << 17


def graphs_per_call(size: int) -> int:
    """Graphs of ``size`` voices (padded) in one conflict-predictor call."""
    return max(1, PAIRS_PER_CALL // size**2)


def conflict_batches(history: Sequence[Tick], max_voices: int) -> list[ConflictGraphs]:
    """The groups of :func:`conflict_groups` in batches of like size (up to twice the
    smallest), each padded to its own largest and holding at most PAIRS_PER_CALL pairs.

    The model's cost grows with the square of the padded size, so one batch padded to
    the largest group makes thousands of small components (a sparse or partly active
    system) cost as many full-size graphs. And one call on every graph of a 10,000-voice
    system needs 3.7 GB of intermediate tensors; calls of about 130,000 pairs take less
    than 0.5 GB and are no slower (their shapes repeat from tick to tick, so onnxruntime
    reuses its buffers). Groups share no edges, and the model only passes messages along edges, so
    batching does not change a score.
    """
    groups = conflict_groups(history[-1], max_voices)
    classes: dict[int, list[NDArray[np.int64]]] = {}
    for group in groups:
        classes.setdefault((len(group) - 1).bit_length(), []).append(group)
    cells = edge_cells(history)
    batches = []
    for c in sorted(classes):
        like = classes[c]
        per_call = graphs_per_call(max(len(g) for g in like))
        batches += [
            _graph_batch(history, like[i : i + per_call], cells)
            for i in range(0, len(like), per_call)
        ]
    return batches


def _graph_batch(
    history: Sequence[Tick],
    groups: list[NDArray[np.int64]],
    cells: tuple[NDArray[np.int64], F64, F64] | None = None,
) -> ConflictGraphs:
    tick = history[-1]
    n = len(tick.voice_ids)
    links = linked_pairs(tick)
    size = max((len(g) for g in groups), default=2)
    group_of = np.full(n, -1, dtype=np.int64)
    slot_of = np.zeros(n, dtype=np.int64)
    for g, members in enumerate(groups):
        group_of[members] = g
        slot_of[members] = np.arange(len(members))
    nodes = np.zeros((len(groups), size, len(VOICE_FEATURES)), np.float32)
    edges = np.zeros((len(groups), size, size, EDGE_CHANNELS), np.float32)
    mask = np.zeros((len(groups), size), np.float32)
    linked = np.zeros((len(groups), size, size), dtype=bool)
    if groups:
        members = np.concatenate(groups)
        nodes[group_of[members], slot_of[members]] = voice_features(tick)[members]
        mask[group_of[members], slot_of[members]] = 1.0
        cell, now, change = cells if cells is not None else edge_cells(history)
        pair, kind = np.divmod(cell, K)
        a, b = np.divmod(pair, n)
        inside = (group_of[a] >= 0) & (group_of[a] == group_of[b])
        g, sa, sb, k = group_of[a[inside]], slot_of[a[inside]], slot_of[b[inside]], kind[inside]
        edges[g, sa, sb, k] = now[inside]
        edges[g, sa, sb, K + k] = change[inside]
        a, b = np.divmod(links, n)
        inside = (group_of[a] >= 0) & (group_of[a] == group_of[b])
        g, sa, sb = group_of[a[inside]], slot_of[a[inside]], slot_of[b[inside]]
        linked[g, sa, sb] = True
        linked[g, sb, sa] = True
    return ConflictGraphs(nodes, edges, mask, groups, linked)
