"""Scores for held-out runs: AUROC, detection delay, interval coverage (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def auroc(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """Area under the ROC curve (Mann–Whitney U with tied ranks averaged)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, inverse, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = np.empty(len(scores))
    ranks[order] = average_rank[inverse]
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def threshold_at_fpr(negative_scores: NDArray[np.float64], fpr: float) -> float:
    """The score a detector must reach so that ``fpr`` of negatives pass it."""
    return float(np.quantile(np.asarray(negative_scores, dtype=np.float64), 1.0 - fpr))


@dataclass(frozen=True)
class Detection:
    detected: int
    episodes: int
    median_delay_s: float

    def as_dict(self) -> dict[str, float]:
        return {
            "detected": self.detected,
            "episodes": self.episodes,
            "median_delay_s": self.median_delay_s,
        }


def detection(delays: Sequence[float | None]) -> Detection:
    """Summarise per-episode delays (None: never detected while the episode lasted)."""
    found = [d for d in delays if d is not None]
    median = float(np.median(found)) if found else float("nan")
    return Detection(len(found), len(delays), median)
