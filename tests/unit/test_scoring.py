"""Live scoring of predictions, by hand: errors, persistence, coverage, and conflict hits,
false alarms and misses over the horizon."""

from __future__ import annotations

from typing import Any

import pytest

from deltaomega.models.features import CONFLICT_HORIZON
from deltaomega.schemas.records import METRICS
from deltaomega.streams.scoring import PredictionScorer, observed_conflicts

W = 10_000


def prediction(voice: str, made_at: int, value: float, half_width: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "voice_id": voice,
        "window_start": made_at,
        "target_window_start": made_at + W,
        "model_version": "v7",
    }
    for m in METRICS:
        out |= {f"{m}_pred": value, f"{m}_low": value - half_width, f"{m}_high": value + half_width}
    return out


def same(value: float) -> dict[str, float]:
    return dict.fromkeys(METRICS, value)


def link(source: str, target: str, kind: str, strength: float) -> dict[str, Any]:
    return {"source": source, "target": target, "kind": kind, "strength_mean": strength}


def conflict(source: str, target: str, probability: float) -> dict[str, Any]:
    return {"source": source, "target": target, "probability": probability}


def test_antagonism_adds_up_per_ordered_pair() -> None:
    links = [
        link("a", "b", "COMPETITION", 0.5),
        link("a", "b", "SUPPRESSION", 0.45),
        link("b", "a", "COMPETITION", 0.5),
        link("c", "d", "COOPERATION", 2.0),
    ]
    assert observed_conflicts(links, 0.9) == {("a", "b")}


def test_state_predictions_are_scored_against_the_window_and_persistence() -> None:
    scorer = PredictionScorer(W, warning=0.6, observed_strength=0.9)
    assert scorer.score(0, {"a": same(0.5)}, [], 1) is None  # nothing predicted yet
    scorer.remember(
        0,
        {"a": same(0.5), "b": same(0.2)},
        [prediction("a", 0, 0.7, 0.1), prediction("b", 0, 0.3, 0.05)],
        [],
    )
    # b is gone at W; c is new (no prediction): only a is scored.
    record = scorer.score(W, {"a": same(0.75), "c": same(0.1)}, [], 99)
    assert record is not None
    assert record["window_start"] == W and record["voices"] == 1 and record["model_version"] == "v7"
    for m in METRICS:
        assert record[f"{m}_mae"] == pytest.approx(0.05)
        assert record[f"{m}_persistence_mae"] == pytest.approx(0.25)
        assert record[f"{m}_coverage"] == 1.0
    assert record["conflict_window_start"] is None and record["conflicts_predicted"] == 0
    assert record["produced_at"] == 99 and record["conflict_threshold"] == 0.6


def test_conflicts_are_scored_when_their_horizon_has_closed() -> None:
    assert CONFLICT_HORIZON == 3
    scorer = PredictionScorer(W, warning=0.6, observed_strength=0.9)
    observed = {"a": same(0.5)}
    # At 0: a→b and c→d predicted, e→f below the warning level.
    scorer.score(0, observed, [], 1)
    scorer.remember(
        0,
        observed,
        [prediction("a", 0, 0.5, 0.1)],
        [conflict("a", "b", 0.9), conflict("c", "d", 0.61), conflict("e", "f", 0.5)],
    )
    windows = {
        W: [link("a", "b", "COMPETITION", 0.95)],  # a→b happens: a hit
        2 * W: [link("e", "f", "SUPPRESSION", 1.0)],  # e→f happens, not predicted: a miss
        3 * W: [link("c", "d", "COMPETITION", 0.5)],  # c→d stays mild: a false alarm
    }
    records = []
    for start, links in windows.items():
        records.append(scorer.score(start, observed, links, 2))
        scorer.remember(start, observed, [prediction("a", start, 0.5, 0.1)], [])
    assert [r["conflict_window_start"] for r in records if r] == [None, None, 0]
    last = records[-1]
    assert last is not None
    assert (
        last["conflicts_predicted"],
        last["conflict_hits"],
        last["conflict_false_alarms"],
        last["conflict_misses"],
    ) == (2, 1, 1, 1)
    # The predictions made at W (none) are scored at 4W, over 2W..4W.
    record = scorer.score(4 * W, observed, [link("a", "b", "COMPETITION", 0.95)], 3)
    assert record is not None and record["conflict_window_start"] == W
    assert (record["conflicts_predicted"], record["conflict_misses"]) == (0, 2)


def test_a_gap_in_the_horizon_scores_no_conflicts() -> None:
    scorer = PredictionScorer(W, warning=0.6, observed_strength=0.9)
    observed = {"a": same(0.5)}
    scorer.remember(0, observed, [prediction("a", 0, 0.5, 0.1)], [conflict("a", "b", 0.9)])
    scorer.score(W, observed, [], 1)
    scorer.remember(W, observed, [prediction("a", W, 0.5, 0.1)], [conflict("a", "b", 0.9)])
    # 2W never closed (no states at all): the prediction made for it is never scored …
    assert scorer.score(3 * W, observed, [], 1) is None
    scorer.remember(3 * W, observed, [prediction("a", 3 * W, 0.5, 0.1)], [])
    # … and the conflicts predicted at W, whose horizon 2W..4W lacks 2W, are not scored.
    record = scorer.score(4 * W, observed, [], 1)
    assert record is not None and record["voices"] == 1
    assert record["conflict_window_start"] is None
