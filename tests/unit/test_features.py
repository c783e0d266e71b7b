"""The feature builder on a small hand-made system, value by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deltaomega.models import features

W0 = 1_800_000_000_000


def voice_state(voice: str, window_start: int, **means: float) -> dict[str, float | str | int]:
    """A VoiceState whose min, max and last are mean − 0.1, mean + 0.1 and mean + 0.05."""
    record: dict[str, float | str | int] = {"voice_id": voice, "window_start": window_start}
    for metric in features.METRICS:
        m = means[metric]
        record.update(
            {
                f"{metric}_mean": m,
                f"{metric}_min": m - 0.1,
                f"{metric}_max": m + 0.1,
                f"{metric}_last": m + 0.05,
            }
        )
    return record


def link(source: str, target: str, kind: str, strength: float) -> dict[str, object]:
    return {"source": source, "target": target, "kind": kind, "strength_mean": strength}


A = {"temperature": 1.2, "activation": 0.6, "stress": 0.3, "influence": 0.5}
B = {"temperature": 0.8, "activation": 0.4, "stress": 0.7, "influence": 0.1}


def tick(window: int = 0, extra_links: tuple[dict[str, object], ...] = ()) -> features.Tick:
    start = W0 + window * 10_000
    return features.tick_from_states(
        start,
        [voice_state("a", start, **A), voice_state("b", start, **B)],
        [link("a", "b", "COOPERATION", 0.4), link("b", "a", "COMPETITION", 0.2), *extra_links],
    )


def test_tick_from_states_orders_voices_and_fills_strengths() -> None:
    t = features.tick_from_states(
        W0,
        [voice_state("b", W0, **B)],
        [link("a", "b", "COOPERATION", 0.4), link("c", "a", "SUPPRESSION", 0.9)],
    )
    assert t.voice_ids == ("a", "b", "c")
    assert t.present.tolist() == [False, True, False]
    assert t.stats[1, :4].tolist() == pytest.approx([0.8, 0.7, 0.9, 0.85])
    strength = t.dense_strength()
    assert strength[0, 1].tolist() == [0.4, 0.0, 0.0, 0.0, 0.0]
    assert strength[2, 0].tolist() == [0.0, 0.0, 0.0, 0.9, 0.0]
    assert float(strength.sum()) == pytest.approx(1.3)
    assert t.cells.tolist() == [(0 * 3 + 1) * 5 + 0, (2 * 3 + 0) * 5 + 3]


def test_voice_features_exact() -> None:
    x = features.voice_features(tick())
    assert x.shape == (2, len(features.VOICE_FEATURES)) and x.dtype == np.float32
    a = dict(zip(features.VOICE_FEATURES, x[0].tolist(), strict=True))
    # temperature scaled by (x − 1) / 1, the others by (x − 0.5) / 0.5
    assert a["temperature_mean"] == pytest.approx(0.2, abs=1e-6)
    assert a["temperature_min"] == pytest.approx(0.1, abs=1e-6)
    assert a["temperature_last"] == pytest.approx(0.25, abs=1e-6)
    assert a["activation_mean"] == pytest.approx(0.2, abs=1e-6)
    assert a["stress_max"] == pytest.approx(-0.2, abs=1e-6)
    assert a["influence_min"] == pytest.approx(-0.2, abs=1e-6)
    assert a["present"] == 1.0
    assert a["in_support"] == 0.0
    assert a["in_antagonism"] == pytest.approx(math.tanh(0.2), abs=1e-6)
    assert a["out_support"] == pytest.approx(math.tanh(0.4), abs=1e-6)
    assert a["out_antagonism"] == 0.0
    assert a["harmony"] == pytest.approx((0.4 - 0.2) / 0.6, abs=1e-6)
    b = dict(zip(features.VOICE_FEATURES, x[1].tolist(), strict=True))
    assert b["stress_mean"] == pytest.approx(0.4, abs=1e-6)
    assert b["in_support"] == pytest.approx(math.tanh(0.4), abs=1e-6)
    assert b["out_antagonism"] == pytest.approx(math.tanh(0.2), abs=1e-6)


def test_absent_voice_has_zero_state_but_keeps_its_links() -> None:
    t = features.tick_from_states(
        W0, [voice_state("b", W0, **B)], [link("a", "b", "COOPERATION", 0.4)]
    )
    x = dict(zip(features.VOICE_FEATURES, features.voice_features(t)[0].tolist(), strict=True))
    assert x["temperature_mean"] == 0.0 and x["present"] == 0.0
    assert x["out_support"] == pytest.approx(math.tanh(0.4), abs=1e-6)


def test_predictor_input_pads_missing_history_at_the_front() -> None:
    history = [tick(0), tick(1)]
    x = features.predictor_input(history)
    assert x.shape == (2, features.SEQUENCE_WINDOWS, len(features.VOICE_FEATURES))
    assert np.all(x[:, : features.SEQUENCE_WINDOWS - 2] == 0.0)
    np.testing.assert_array_equal(x[:, -1], features.voice_features(tick(1)))


def test_system_vector_exact_for_one_window() -> None:
    v = dict(zip(features.SYSTEM_FEATURES, features.system_vector([tick()]).tolist(), strict=True))
    assert v["temperature_mean_across"] == pytest.approx(0.0, abs=1e-6)  # (1.2 + 0.8) / 2 = 1
    assert v["stress_mean_across"] == pytest.approx(0.0, abs=1e-6)
    assert v["stress_std_across"] == pytest.approx(0.4, abs=1e-6)  # std 0.2, over 0.5
    assert v["strength_cooperation"] == pytest.approx(math.tanh(0.2), abs=1e-6)  # 0.4 / 2 voices
    assert v["strength_competition"] == pytest.approx(math.tanh(0.1), abs=1e-6)
    assert v["harmony"] == pytest.approx(1 / 3, abs=1e-6)
    assert v["link_density"] == 1.0
    assert v["link_jaccard_1"] == 0.0 and v["strength_change_1"] == 0.0


def test_system_vector_sees_a_new_link() -> None:
    new = link("a", "b", "SUPPRESSION", 0.5)
    v = dict(
        zip(
            features.SYSTEM_FEATURES,
            features.system_vector([tick(0), tick(1, (new,))]),
            strict=True,
        )
    )
    assert v["link_jaccard_1"] == 0.0  # same pairs linked, another kind
    assert v["strength_change_1"] == pytest.approx(0.5 / (1.1 + 0.6), abs=1e-6)
    gone = features.tick_from_states(
        W0 + 20_000, [voice_state("a", W0, **A), voice_state("b", W0, **B)], []
    )
    v = dict(zip(features.SYSTEM_FEATURES, features.system_vector([tick(0), gone]), strict=True))
    assert v["link_jaccard_1"] == 1.0
    assert v["links_gone_1"] == pytest.approx(math.tanh(1.0), abs=1e-6)


def test_pattern_input_orders_voices_by_activity() -> None:
    quiet = voice_state("0-quiet", W0, **A)
    t = features.tick_from_states(
        W0,
        [voice_state("a", W0, **A), voice_state("b", W0, **B), quiet],
        [link("a", "b", "COOPERATION", 0.4), link("b", "a", "COMPETITION", 0.2)],
    )
    x = features.pattern_input([t]).reshape(
        features.PATTERN_WINDOWS, len(features.PATTERN_CHANNELS), 12, 12
    )
    newest = x[-1]
    assert newest[0, 0, 1] == pytest.approx(0.4)  # a → b support, a first (tie broken by id)
    assert newest[1, 1, 0] == pytest.approx(0.2)  # b → a antagonism
    assert newest[2].diagonal()[:3].tolist() == pytest.approx([0.3, 0.7, 0.3])  # quiet last
    assert np.all(x[:-1] == 0.0)


def test_conflict_graphs_group_by_component() -> None:
    states = [voice_state(v, W0, **A) for v in ("a", "b", "c", "d", "e")]
    t = features.tick_from_states(
        W0, states, [link("a", "b", "COMPETITION", 0.5), link("d", "c", "SUPPRESSION", 0.7)]
    )
    nodes, edges, mask, groups, linked = features.conflict_graphs([t], max_voices=256)
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3]]  # e has no links: no pairs
    assert nodes.shape == (2, 2, len(features.VOICE_FEATURES)) and edges.shape == (
        2,
        2,
        2,
        features.EDGE_CHANNELS,
    )
    assert edges[0, 0, 1, 1] == pytest.approx(0.5) and edges[1, 1, 0, 3] == pytest.approx(0.7)
    assert mask.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert linked.tolist() == [[[False, True], [True, False]], [[False, True], [True, False]]]
    # the change channels compare with the windows before
    earlier = features.tick_from_states(W0 - 10_000, states, [link("a", "b", "COMPETITION", 0.1)])
    edges = features.conflict_graphs([earlier, t], max_voices=256).edges
    assert edges[0, 0, 1, features.K + 1] == pytest.approx(0.4)


def test_complexity_is_normalised_entropy() -> None:
    assert features.complexity(tick()) == pytest.approx(
        -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)
    )


def test_spec_hash_is_stable_and_tracks_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    first = {name: features.spec_hash(name) for name in features.MODEL_NAMES}
    assert first == {name: features.spec_hash(name) for name in features.MODEL_NAMES}
    assert len(set(first.values())) == 4
    monkeypatch.setitem(features.FEATURE_SPEC, "metric_half_range", [2.0, 0.5, 0.5, 0.5])
    assert all(features.spec_hash(name) != first[name] for name in features.MODEL_NAMES)
