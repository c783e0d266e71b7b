"""Live prediction accuracy: as each window closes, the predictions made for it are scored.

State predictions made at window ``T − W`` for ``T`` are scored when ``T`` closes: per
metric the model's mean absolute error, persistence's (the state at ``T − W`` carried
forward, the baseline a model must beat) and the share inside the predicted interval,
over the voices present in both windows. Conflict predictions made at ``S`` look
``CONFLICT_HORIZON`` windows ahead, so they are scored when ``S + H·W`` closes: a pair
predicted (probability at least the conflict warning level) is a hit if it was in conflict
in any of those windows, a false alarm otherwise; a pair in conflict there that was not
predicted is a miss. "In conflict" is observable: the pair's antagonistic strength
(competition plus suppression, source → target) in a window reached
``conflict_observed_strength``. One record per closed window, per the version that made
the state predictions, into ``prediction_scores``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from deltaomega.api.matrix import ANTAGONISTIC
from deltaomega.models.features import CONFLICT_HORIZON
from deltaomega.schemas.records import METRICS

Pair = tuple[str, str]


def observed_conflicts(interactions: list[dict[str, Any]], strength: float) -> set[Pair]:
    """Ordered pairs whose antagonistic strength in the window reached ``strength``."""
    antagonism: dict[Pair, float] = {}
    for link in interactions:
        if link["kind"] in ANTAGONISTIC:
            pair = (str(link["source"]), str(link["target"]))
            antagonism[pair] = antagonism.get(pair, 0.0) + float(link["strength_mean"])
    return {pair for pair, total in antagonism.items() if total >= strength}


class PredictionScorer:
    def __init__(self, window_ms: int, warning: float, observed_strength: float) -> None:
        self.window_ms = window_ms
        self.warning = warning
        self.observed_strength = observed_strength
        self._observed: dict[str, dict[str, float]] = {}
        #: voice → the prediction the last tick made for the next window
        self.predictions: dict[str, dict[str, Any]] = {}
        #: (window the conflict predictions were made at, the pairs predicted in conflict)
        self._conflicts: deque[tuple[int, set[Pair]]] = deque(maxlen=CONFLICT_HORIZON + 1)
        #: (window, pairs in conflict in it)
        self._in_conflict: deque[tuple[int, set[Pair]]] = deque(maxlen=CONFLICT_HORIZON)

    def score(
        self,
        window_start: int,
        observed: dict[str, dict[str, float]],
        interactions: list[dict[str, Any]],
        now_ms: int,
    ) -> dict[str, Any] | None:
        """The scores of the predictions made for ``window_start`` (None when there were
        none: the first window after a start)."""
        self._in_conflict.append(
            (window_start, observed_conflicts(interactions, self.observed_strength))
        )
        voices = [
            v
            for v, p in self.predictions.items()
            if p["target_window_start"] == window_start and v in observed and v in self._observed
        ]
        if not voices:
            return None
        record: dict[str, Any] = {
            "window_start": window_start,
            "model_version": self.predictions[voices[0]]["model_version"],
            "voices": len(voices),
        }
        n = len(voices)
        predicted = [self.predictions[v] for v in voices]
        for m in METRICS:
            actual = [observed[v][m] for v in voices]
            before = [self._observed[v][m] for v in voices]
            record[f"{m}_mae"] = (
                sum(abs(p[f"{m}_pred"] - a) for p, a in zip(predicted, actual, strict=True)) / n
            )
            record[f"{m}_persistence_mae"] = (
                sum(abs(b - a) for b, a in zip(before, actual, strict=True)) / n
            )
            record[f"{m}_coverage"] = (
                sum(
                    p[f"{m}_low"] <= a <= p[f"{m}_high"]
                    for p, a in zip(predicted, actual, strict=True)
                )
                / n
            )
        record |= self._conflict_scores(window_start)
        record["conflict_threshold"] = self.warning
        record["produced_at"] = now_ms
        return record

    def _conflict_scores(self, window_start: int) -> dict[str, Any]:
        made_at = window_start - CONFLICT_HORIZON * self.window_ms
        found = [pairs for start, pairs in self._conflicts if start == made_at]
        windows = [s for s, _ in self._in_conflict]
        if not found or windows != [
            made_at + (i + 1) * self.window_ms for i in range(CONFLICT_HORIZON)
        ]:
            # Not every window of the horizon was seen (a start, a gap): nothing to score.
            return {
                "conflict_window_start": None,
                "conflicts_predicted": 0,
                "conflict_hits": 0,
                "conflict_false_alarms": 0,
                "conflict_misses": 0,
            }
        predicted = found[0]
        happened = set().union(*(pairs for _, pairs in self._in_conflict))
        return {
            "conflict_window_start": made_at,
            "conflicts_predicted": len(predicted),
            "conflict_hits": len(predicted & happened),
            "conflict_false_alarms": len(predicted - happened),
            "conflict_misses": len(happened - predicted),
        }

    def remember(
        self,
        window_start: int,
        observed: dict[str, dict[str, float]],
        predictions: list[dict[str, Any]],
        conflicts: list[dict[str, Any]],
    ) -> None:
        """What this window's tick predicted, to score when its targets close."""
        self._observed = observed
        self.predictions = {p["voice_id"]: p for p in predictions}
        self._conflicts.append(
            (
                window_start,
                {
                    (str(c["source"]), str(c["target"]))
                    for c in conflicts
                    if c["probability"] >= self.warning
                },
            )
        )
