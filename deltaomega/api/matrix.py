"""The interaction matrix and its harmony and conflict scores, from summed strengths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deltaomega.schemas.records import INTERACTION_KINDS

SUPPORTIVE = frozenset({"COOPERATION", "COMPLEMENTATION", "AMPLIFICATION"})
ANTAGONISTIC = frozenset({"COMPETITION", "SUPPRESSION"})


@dataclass(frozen=True)
class MatrixResult:
    voices: list[str]
    matrices: dict[str, list[list[float]]]
    harmony: float | None
    conflict: float | None
    pairs: list[dict[str, Any]]


def _scores(by_kind: dict[str, float]) -> tuple[float, float | None, float | None]:
    total = sum(by_kind.values())
    if total <= 0:
        return 0.0, None, None
    support = sum(v for k, v in by_kind.items() if k in SUPPORTIVE)
    against = sum(v for k, v in by_kind.items() if k in ANTAGONISTIC)
    return total, (support - against) / total, against / total


def build_matrix(rows: Sequence[dict[str, Any]]) -> MatrixResult:
    """``rows``: dicts with source, target, kind and strength (summed over the window)."""
    voices = sorted({r["source"] for r in rows} | {r["target"] for r in rows})
    position = {v: i for i, v in enumerate(voices)}
    n = len(voices)
    matrices = {kind: [[0.0] * n for _ in range(n)] for kind in INTERACTION_KINDS}
    system: dict[str, float] = dict.fromkeys(INTERACTION_KINDS, 0.0)
    per_pair: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        strength = float(r["strength"])
        matrices[r["kind"]][position[r["source"]]][position[r["target"]]] += strength
        system[r["kind"]] += strength
        pair = per_pair.setdefault((r["source"], r["target"]), {})
        pair[r["kind"]] = pair.get(r["kind"], 0.0) + strength
    pairs = []
    for (source, target), by_kind in sorted(per_pair.items()):
        total, harmony, conflict = _scores(by_kind)
        if harmony is None or conflict is None:
            continue
        pairs.append(
            {
                "source": source,
                "target": target,
                "strength": total,
                "harmony": harmony,
                "conflict": conflict,
            }
        )
    _, harmony, conflict = _scores(system)
    return MatrixResult(voices, matrices, harmony, conflict, pairs)
