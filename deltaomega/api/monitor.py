"""The interaction monitor (seed §2.1): for a time range and optionally some pairs and
kinds, the interaction matrix with its harmony, the dominant patterns, the conflict
indicators, how the predictions did, and the alerts: one analysis for the monitor route,
its live stream and the on-demand analyze route."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from deltaomega.api.matrix import build_matrix
from deltaomega.api.models import Alert, ConflictPrediction, PairScore
from deltaomega.api.queries import Queries
from deltaomega.schemas.records import METRICS

#: conflict predictions at least this likely are indicators
CONFLICT_INDICATOR = 0.5
_ROWS = 10_000


class DominantPattern(BaseModel):
    pattern: str
    windows: int
    share: float = Field(description="Of the classified windows in the range.")
    mean_confidence: float


class MetricAccuracy(BaseModel):
    mae: float = Field(description="The model's mean absolute error.")
    persistence_mae: float = Field(description="Carrying the last window forward, for scale.")
    coverage: float = Field(description="Share of windows inside the predicted interval.")


class PredictionAccuracy(BaseModel):
    predictions: int = Field(description="Predictions for windows in the range, scored.")
    metrics: dict[str, MetricAccuracy]


class MonitorMatrix(BaseModel):
    voices: list[str]
    matrices: dict[str, list[list[float]]]


class MonitorReport(BaseModel):
    start: datetime
    end: datetime
    voice_pairs: list[str] | None
    interaction_types: list[str] | None
    interaction_matrix: MonitorMatrix
    harmony_score: float | None
    conflict_score: float | None
    pairs: list[PairScore]
    dominant_patterns: list[DominantPattern]
    conflict_indicators: list[ConflictPrediction] = Field(
        description=f"The newest prediction per pair of probability ≥ {CONFLICT_INDICATOR}."
    )
    prediction_accuracy: PredictionAccuracy | None = Field(
        description="Null when no prediction for a window in the range can be scored yet."
    )
    alerts: list[Alert]


async def analyse(
    queries: Queries,
    from_ms: int,
    to_ms: int,
    pairs: list[tuple[str, str]] | None,
    kinds: list[str] | None,
) -> MonitorReport:
    wanted = set(pairs) if pairs else None
    rows = [
        r
        for r in await queries.interaction_totals_between(from_ms, to_ms)
        if (wanted is None or (r["source"], r["target"]) in wanted)
        and (kinds is None or r["kind"] in kinds)
    ]
    matrix = build_matrix(rows)
    patterns = await queries.patterns(from_ms, to_ms, _ROWS)
    counts = Counter(p["pattern"] for p in patterns)
    dominant = [
        DominantPattern(
            pattern=name,
            windows=n,
            share=n / len(patterns),
            mean_confidence=sum(p["confidence"] for p in patterns if p["pattern"] == name) / n,
        )
        for name, n in counts.most_common()
    ]
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for c in await queries.conflict_predictions(
        CONFLICT_INDICATOR, None, None, from_ms, to_ms, _ROWS
    ):  # newest first
        key = (c["source"], c["target"])
        if (wanted is None or key in wanted) and key not in newest:
            newest[key] = c
    subjects = {f"{s}->{t}" for s, t in wanted} if wanted else None
    alerts = [
        Alert.from_row(a)
        for a in await queries.alerts(None, None, None, from_ms, to_ms, _ROWS)
        if subjects is None or a["subject"] in subjects
    ][:100]
    return MonitorReport(
        start=_at(from_ms),
        end=_at(to_ms),
        voice_pairs=[f"{s}:{t}" for s, t in pairs] if pairs else None,
        interaction_types=kinds,
        interaction_matrix=MonitorMatrix(
            voices=matrix.voices,
            matrices={k: v for k, v in matrix.matrices.items() if kinds is None or k in kinds},
        ),
        harmony_score=matrix.harmony,
        conflict_score=matrix.conflict,
        pairs=[PairScore(**p) for p in matrix.pairs],
        dominant_patterns=dominant,
        conflict_indicators=[
            ConflictPrediction.from_row(c)
            for c in sorted(newest.values(), key=lambda c: -c["probability"])
        ],
        prediction_accuracy=_accuracy(await queries.accuracy(from_ms, to_ms)),
        alerts=alerts,
    )


def _accuracy(row: dict[str, Any]) -> PredictionAccuracy | None:
    if not row.get("n"):
        return None
    return PredictionAccuracy(predictions=row["n"], metrics=metric_accuracy(row))


def metric_accuracy(row: dict[str, Any]) -> dict[str, MetricAccuracy]:
    return {
        m: MetricAccuracy(
            mae=row[f"{m}_mae"],
            persistence_mae=row[f"{m}_persistence_mae"],
            coverage=row[f"{m}_coverage"],
        )
        for m in METRICS
    }


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
