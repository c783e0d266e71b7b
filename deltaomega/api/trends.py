"""Trends of one voice's metric over its closed windows: the slope and change, a hopping
window over the base windows, and change points.

- slope: the least-squares line through the window means against window start, per
  minute; change: the last window's mean minus the first's.
- hopping: windows of ``size`` every ``hop`` (aligned to multiples of ``hop``), each the
  count-weighted mean of the base windows that start inside it.
- change points: binary segmentation of the means. A segment is split where the split
  removes the most squared error, when the two sides' means differ by at least
  ``CHANGE_SIGMAS`` standard errors (the noise estimated from the whole series' window-to-
  window differences, by their median absolute deviation, which level shifts barely move)
  and by at least ``MIN_SHIFT``, each side holding ``MIN_SEGMENT`` windows; then each side
  is searched the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHANGE_SIGMAS = 5.0
MIN_SHIFT = 1e-6
MIN_SEGMENT = 3


@dataclass(frozen=True)
class Hop:
    start_ms: int
    end_ms: int
    mean: float
    count: int


@dataclass(frozen=True)
class ChangePoint:
    at_ms: int
    before: float
    after: float


def slope_per_minute(starts_ms: Sequence[int], means: Sequence[float]) -> float | None:
    if len(means) < 2:
        return None
    minutes = (np.asarray(starts_ms, dtype=np.float64) - starts_ms[0]) / 60_000
    y = np.asarray(means, dtype=np.float64)
    dx = minutes - minutes.mean()
    return float((dx * (y - y.mean())).sum() / (dx * dx).sum())


def hopping(
    starts_ms: Sequence[int],
    means: Sequence[float],
    counts: Sequence[int],
    size_ms: int,
    hop_ms: int,
) -> list[Hop]:
    if not starts_ms:
        return []
    first = (starts_ms[0] // hop_ms) * hop_ms - size_ms + hop_ms
    out = []
    for start in range(first, starts_ms[-1] + 1, hop_ms):
        inside = [i for i, s in enumerate(starts_ms) if start <= s < start + size_ms]
        total = sum(counts[i] for i in inside)
        if total:
            mean = sum(means[i] * counts[i] for i in inside) / total
            out.append(Hop(start, start + size_ms, mean, total))
    return out


def change_points(starts_ms: Sequence[int], means: Sequence[float]) -> list[ChangePoint]:
    y = np.asarray(means, dtype=np.float64)
    found: list[int] = []
    if len(y) >= 2 * MIN_SEGMENT:
        steps = np.diff(y)
        noise = float(np.median(np.abs(steps - np.median(steps)))) / (0.6745 * np.sqrt(2))
        _split(y, 0, len(y), noise, found)
    out = []
    bounds = [0, *sorted(found), len(y)]
    for k, at in enumerate(sorted(found), start=1):
        before = float(y[bounds[k - 1] : at].mean())
        after = float(y[at : bounds[k + 1]].mean())
        out.append(ChangePoint(int(starts_ms[at]), before, after))
    return out


def _split(y: np.ndarray, lo: int, hi: int, noise: float, found: list[int]) -> None:
    segment = y[lo:hi]
    n = len(segment)
    if n < 2 * MIN_SEGMENT:
        return
    best, best_cost = None, float(((segment - segment.mean()) ** 2).sum())
    for t in range(MIN_SEGMENT, n - MIN_SEGMENT + 1):
        left, right = segment[:t], segment[t:]
        cost = float(((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum())
        if cost < best_cost - 1e-12:
            best, best_cost = t, cost
    if best is None:
        return
    left, right = segment[:best], segment[best:]
    shift = abs(float(left.mean() - right.mean()))
    error = noise * np.sqrt(1 / len(left) + 1 / len(right))
    if shift < MIN_SHIFT or shift < CHANGE_SIGMAS * error:
        return
    found.append(lo + best)
    _split(y, lo, lo + best, noise, found)
    _split(y, lo + best, hi, noise, found)
