"""The sparse tick against the dense definitions of every feature, on random systems.

The reference below is the plain dense computation over (voices, voices, kinds) matrices
that the features are defined by; the sparse code must agree with it on systems whose
voices come and go between windows, with zero strengths, self-links and absent voices.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deltaomega.config import Settings
from deltaomega.models import features
from deltaomega.models.features import ANTAGONISTIC, METRICS, STAT_NAMES, SUPPORTIVE, K, Tick
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.schemas.records import INTERACTION_KINDS
from deltaomega.streams.ticks import TickRunner

Dense = tuple[np.ndarray, np.ndarray, np.ndarray]  # stats, present, strength


def random_history(rng: np.random.Generator) -> list[Tick]:
    every = [f"v{i:02d}" for i in range(int(rng.integers(2, 30)))]
    history = []
    for w in range(int(rng.integers(1, 9))):
        ids = [v for v in every if rng.random() < 0.85] or every[:2]
        voices = []
        for v in ids:
            if rng.random() < 0.8:
                record: dict[str, object] = {"voice_id": v, "window_start": w}
                record.update({f"{m}_{s}": rng.uniform() for m in METRICS for s in STAT_NAMES})
                voices.append(record)
        links = {}
        for _ in range(int(rng.integers(0, 3 * len(ids) + 1))):
            a, b = rng.choice(len(ids), 2)  # a == b now and then: a self-link
            kind = INTERACTION_KINDS[int(rng.integers(0, K))]
            strength = 0.0 if rng.random() < 0.1 else float(rng.uniform())
            links[(a, b, kind)] = {
                "source": ids[a],
                "target": ids[b],
                "kind": kind,
                "strength_mean": strength,
            }
        history.append(features.tick_from_states(w * 10_000, voices, list(links.values())))
    return history


def dense(tick: Tick, ids: tuple[str, ...]) -> Dense:
    index = {v: i for i, v in enumerate(tick.voice_ids)}
    full = tick.dense_strength()
    n = len(ids)
    stats, present, strength = (
        np.zeros((n, tick.stats.shape[1])),
        np.zeros(n, bool),
        np.zeros((n, n, K)),
    )
    for i, v in enumerate(ids):
        if v not in index:
            continue
        stats[i], present[i] = tick.stats[index[v]], tick.present[index[v]]
        for j, u in enumerate(ids):
            if u in index:
                strength[i, j] = full[index[v], index[u]]
    return stats, present, strength


def ref_voice_features(stats: np.ndarray, present: np.ndarray, s: np.ndarray) -> np.ndarray:
    support, antagonism = s[:, :, SUPPORTIVE].sum(axis=2), s[:, :, ANTAGONISTIC].sum(axis=2)
    in_s, in_a, out_s, out_a = support.sum(0), antagonism.sum(0), support.sum(1), antagonism.sum(1)
    total = in_s + in_a + out_s + out_a
    harmony = np.where(total > 0, (in_s + out_s - in_a - out_a) / np.maximum(total, 1e-9), 0.0)
    scaled = (stats - np.repeat(features.METRIC_CENTRE, 4)) / np.repeat(
        features.METRIC_HALF_RANGE, 4
    )
    out = np.column_stack(
        [scaled, np.ones(len(stats)), *np.tanh([in_s, in_a, out_s, out_a]), harmony]
    )
    out[~present, : len(METRICS) * len(STAT_NAMES) + 1] = 0.0
    return out


def ref_edge_channels(history: list[Tick]) -> np.ndarray:
    ids = history[-1].voice_ids
    now = dense(history[-1], ids)[2]
    before = [dense(t, ids)[2] for t in history[-4:-1]]
    reference = np.mean(before, axis=0) if before else now
    return np.concatenate([now, now - reference], axis=2)


def ref_system_vector(history: list[Tick]) -> np.ndarray:
    ids = history[-1].voice_ids
    stats, present, s = dense(history[-1], ids)
    previous = [dense(t, ids) for t in history[-4:-1]][::-1]
    n = max(1, len(ids))
    means = stats[present][:, :: len(STAT_NAMES)]
    means = means if len(means) else np.zeros((1, len(METRICS)))
    by_kind = s.sum(axis=(0, 1))
    total = by_kind.sum()
    balance = by_kind[SUPPORTIVE].sum() - by_kind[ANTAGONISTIC].sum()
    harmony = 0.0 if total == 0 else balance / total
    links = s.sum(axis=2) > 0

    def jaccard(a: np.ndarray, b: np.ndarray) -> float:
        union = (a | b).sum()
        return 0.0 if union == 0 else 1.0 - (a & b).sum() / union

    distances = [jaccard(links, p[2].sum(axis=2) > 0) for p in previous] + [0.0] * 3
    change, new, gone, delta = 0.0, 0.0, 0.0, np.zeros(len(METRICS))
    if previous:
        b_stats, b_present, b = previous[0]
        change = np.abs(s - b).sum() / max(1e-9, total + b.sum())
        old = b.sum(axis=2) > 0
        new, gone = (links & ~old).sum() / n, (old & ~links).sum() / n
        both = present & b_present
        if both.any():
            delta = np.abs(stats[both] - b_stats[both])[:, :: len(STAT_NAMES)].mean(axis=0)
    half, centre = features.METRIC_HALF_RANGE, features.METRIC_CENTRE
    return np.concatenate(
        [
            (means.mean(axis=0) - centre) / half,
            means.std(axis=0) / half,
            np.tanh(by_kind / n),
            [harmony, links.sum() / max(1, n * (n - 1))],
            distances[:3],
            [change, np.tanh(new), np.tanh(gone)],
            delta / half,
        ]
    )


def ref_pattern_input(history: list[Tick]) -> np.ndarray:
    newest = history[-1]
    s = dense(newest, newest.voice_ids)[2].sum(axis=2)
    activity = s.sum(axis=0) + s.sum(axis=1)
    order = sorted(range(len(newest.voice_ids)), key=lambda i: (-activity[i], newest.voice_ids[i]))
    keep = tuple(newest.voice_ids[i] for i in order[: features.PATTERN_VOICES])
    m, size = len(keep), features.PATTERN_VOICES
    out = np.zeros((features.PATTERN_WINDOWS, len(features.PATTERN_CHANNELS), size, size))
    window = history[-features.PATTERN_WINDOWS :]
    for t, tick in enumerate(window, start=features.PATTERN_WINDOWS - len(window)):
        stats, _, strength = dense(tick, keep)
        out[t, 0, :m, :m] = strength[:, :, SUPPORTIVE].sum(axis=2)
        out[t, 1, :m, :m] = strength[:, :, ANTAGONISTIC].sum(axis=2)
        out[t, 2, range(m), range(m)] = stats[:, METRICS.index("stress") * len(STAT_NAMES)]
        out[t, 3, range(m), range(m)] = stats[:, METRICS.index("activation") * len(STAT_NAMES)]
    return out.reshape(-1, size, size)


def ref_complexity(tick: Tick) -> float:
    s = tick.dense_strength().ravel()
    s = s[s > 0]
    if len(s) < 2:
        return 0.0
    p = s / s.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(s)))


@pytest.mark.parametrize("seed", range(25))
def test_sparse_features_equal_the_dense_definitions(seed: int) -> None:
    history = random_history(np.random.default_rng(seed))
    newest = history[-1]
    ids = newest.voice_ids
    close = {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(
        features.voice_features(newest), ref_voice_features(*dense(newest, ids)), **close
    )
    expected = np.zeros((len(ids), features.SEQUENCE_WINDOWS, len(features.VOICE_FEATURES)))
    window = history[-features.SEQUENCE_WINDOWS :]
    for t, tick in enumerate(window, start=features.SEQUENCE_WINDOWS - len(window)):
        expected[:, t] = ref_voice_features(*dense(tick, ids))
    np.testing.assert_allclose(features.predictor_input(history), expected, **close)
    np.testing.assert_allclose(features.edge_channels(history), ref_edge_channels(history), **close)
    np.testing.assert_allclose(features.system_vector(history), ref_system_vector(history), **close)
    np.testing.assert_allclose(features.pattern_input(history), ref_pattern_input(history), **close)
    assert features.complexity(newest) == pytest.approx(ref_complexity(newest), abs=1e-12)
    # the whole system in one graph: conflict_graphs holds the same values per component
    graphs = features.conflict_graphs(history, max_voices=256)
    channels = ref_edge_channels(history)
    links = dense(newest, ids)[2].sum(axis=2) > 0
    for g, members in enumerate(graphs.members):
        m = len(members)
        np.testing.assert_allclose(
            graphs.edges[g, :m, :m], channels[np.ix_(members, members)], **close
        )
        assert (graphs.linked[g, :m, :m] == (links | links.T)[np.ix_(members, members)]).all()
        assert not graphs.edges[g, m:].any() and graphs.mask[g].tolist() == [1.0] * m + [0.0] * (
            graphs.mask.shape[1] - m
        )


def ref_components(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen: set[int] = set()
    out = []
    for start in range(n):
        if start in seen:
            continue
        seen.add(start)
        queue, component = deque([start]), []
        while queue:
            v = queue.popleft()
            component.append(v)
            queue.extend(u for u in neighbours[v] - seen)
            seen |= neighbours[v]
        if len(component) >= 2:
            out.append(sorted(component))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_components_match_a_plain_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    pairs = [tuple(int(x) for x in rng.integers(0, n, 2)) for _ in range(int(rng.integers(0, n)))]
    # and a long chain through shuffled voices: many rounds for naive label propagation
    chain = rng.permutation(n)[: n // 2]
    pairs += [(int(a), int(b)) for a, b in zip(chain[:-1], chain[1:], strict=True)]
    codes = np.unique(np.array([a * n + b for a, b in pairs], dtype=np.int64))
    got = [c.tolist() for c in features._components(n, codes)]
    assert got == ref_components(n, pairs)


def ring_tick(order: list[int]) -> Tick:
    """Voices linked in a ring in the given order (so index order is not link order)."""
    n = len(order)
    ids = tuple(f"v{i}" for i in range(n))
    cells = [(a * n + b) * K for a, b in zip(order, order[1:] + order[:1], strict=True)]
    stats, present = np.zeros((n, 16)), np.ones(n, dtype=bool)
    return Tick.from_cells(0, ids, stats, present, np.array(cells), np.full(n, 0.5))


def test_large_components_are_cut_into_neighbourhoods() -> None:
    order = [0, 5, 2, 7, 4, 1, 6, 3]  # ring 0-5-2-7-4-1-6-3-0
    graphs = features.conflict_graphs([ring_tick(order)], max_voices=3)
    # breadth first from 0: 0, 3, 5, 6, 2, 1, 7, 4 → chunks {0,3,5}, {1,2,6}, {4,7}
    assert [g.tolist() for g in graphs.members] == [[0, 3, 5], [1, 2, 6], [4, 7]]
    # links kept inside a chunk: 0-5, 0-3, 1-6, 4-7 (cut: 5-2, 2-7, 4-1, 6-3)
    assert [int(graphs.linked[g].sum()) // 2 for g in range(3)] == [2, 1, 1]
    assert graphs.edges.shape == (3, 3, 3, features.EDGE_CHANNELS)
    assert graphs.edges[0, 0, 2, 0] == pytest.approx(0.5)  # 0 → 5
    assert graphs.edges[0, 1, 0, 0] == pytest.approx(0.5)  # 3 → 0


def test_unlinked_pairs_are_capped_per_voice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 6
    tick = ring_tick(list(range(n)))  # 0 → 1 → … → 5 → 0
    settings = Settings(data_dir=tmp_path, conflict_publish_min=0.3, conflict_unlinked_per_voice=1)
    engine = TickRunner(settings, ModelRuntime(ModelRegistry(settings.resolved_models_dir)))
    # probability p[a, b] = (a + b) / 10 for every pair (as a model might say)
    scores = np.fromfunction(lambda a, b: (a + b) / 10, (n, n), dtype=np.float32)
    monkeypatch.setattr(engine.runtime, "run", lambda *_args, **_kw: [scores[None]])
    models = SimpleNamespace(name="v1")
    out = engine._conflicts(models, [tick], 0)  # type: ignore[arg-type]
    pairs = {(int(c["source"][1:]), int(c["target"][1:])): c["probability"] for c in out}
    ring = {(a, (a + 1) % n) for a in range(n)} | {((a + 1) % n, a) for a in range(n)}
    assert set(pairs) >= ring  # every linked pair, either way, whatever its probability
    unlinked = {pair for pair in pairs if pair not in ring}
    # per source the one most probable unlinked pair at or above 0.3: its highest target
    assert unlinked == {(0, 4), (1, 5), (2, 5), (3, 5), (4, 2), (5, 3)}
    assert pairs[(0, 4)] == pytest.approx(0.4) and pairs[(0, 1)] == pytest.approx(0.1)


def scored_pairs(
    runtime: ModelRuntime, graphs: features.ConflictGraphs
) -> dict[tuple[int, int], float]:
    (probability,) = runtime.run(
        "conflict_predictor", {"nodes": graphs.nodes, "edges": graphs.edges, "mask": graphs.mask}
    )
    out = {}
    for g, members in enumerate(graphs.members):
        m = len(members)
        for i, a in enumerate(members.tolist()):
            for j, b in enumerate(members.tolist()[:m]):
                if a != b:
                    out[(a, b)] = float(probability[g, i, j])
    return out


def test_batches_of_like_size_score_every_pair_as_one_padded_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    # components of 2 to 40 voices, a ring of 150 cut into chunks of 64, lone voices
    sizes = [int(s) for s in rng.integers(2, 41, 25)]
    n = sum(sizes) + 150 + 10
    voices = rng.permutation(n)
    cells, start = [], 0
    for size in [*sizes, 150]:
        members = voices[start : start + size]
        start += size
        links = size if size == 150 else size - 1  # the ring closes, the others are chains
        for a, b in zip(members[:links], np.roll(members, -1)[:links], strict=True):
            cells.append((int(a) * n + int(b)) * K + int(rng.integers(0, K)))
    cells_array = np.unique(np.array(cells, dtype=np.int64))
    ticks = [
        Tick.from_cells(
            w * 10_000,
            tuple(f"v{i:04d}" for i in range(n)),
            rng.uniform(0.1, 0.9, (n, 16)),
            np.ones(n, dtype=bool),
            cells_array,
            rng.uniform(0.2, 0.9, len(cells_array)),
        )
        for w in range(3)
    ]
    monkeypatch.setattr(features, "PAIRS_PER_CALL", 64 * 64 * 2)
    one = features.conflict_graphs(ticks, max_voices=64)
    batches = features.conflict_batches(ticks, max_voices=64)
    assert [len(b.members) for b in batches if b.mask.shape[1] == 64] == [2]
    grouped = sorted(g.tolist() for b in batches for g in b.members)
    assert grouped == sorted(g.tolist() for g in one.members)
    assert len(grouped) == 25 + 3  # the ring: 64 + 64 + 22
    for batch in batches:  # like sizes: all in one (2^(c-1), 2^c] class
        classes = {(len(g) - 1).bit_length() for g in batch.members}
        assert len(classes) == 1 and batch.mask.shape[1] == max(len(g) for g in batch.members)
        assert batch.mask.size * batch.mask.shape[1] <= 64 * 64 * 2  # PAIRS_PER_CALL
    assert sum(b.edges.size for b in batches) < one.edges.size / 2
    runtime = ModelRuntime(ModelRegistry(tmp_path / "models"))
    runtime.start()
    expected = scored_pairs(runtime, one)
    got: dict[tuple[int, int], float] = {}
    for batch in batches:
        got |= scored_pairs(runtime, batch)
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in got) < 1e-5
