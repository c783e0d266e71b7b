"""Next-window predictions per voice, from the voice-state predictor, and how they did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import (
    ConflictPrediction,
    Emergence,
    Prediction,
    PredictionList,
)
from deltaomega.api.monitor import MetricAccuracy, metric_accuracy
from deltaomega.api.outlook import AT_RISK, system_outlook
from deltaomega.api.params import End, Limit, Name, Start, time_range
from deltaomega.api.routes.interactions import duration_ms
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])


@router.get(
    "",
    response_model=PredictionList,
    summary="Predictions, newest window first",
    **requires(Role.ANALYST),
)
async def list_predictions(
    ctx: ContextDep,
    voice_id: Name = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> PredictionList:
    """Predictions made from windows starting in [start, end), optionally of one voice."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.predictions(voice_id, from_ms, to_ms, limit)
    return PredictionList(predictions=[Prediction.from_row(r) for r in rows])


class AccuracyBucket(BaseModel):
    model_version: str
    start: datetime = Field(description="Of the bucket of target windows.")
    predictions: int
    metrics: dict[str, MetricAccuracy]


class AccuracySeries(BaseModel):
    bucket: str
    buckets: list[AccuracyBucket]


@router.get(
    "/accuracy",
    response_model=AccuracySeries,
    summary="How the predictions did, per model version and time bucket",
    **requires(Role.ANALYST),
)
async def prediction_accuracy(
    ctx: ContextDep,
    start: Start = None,
    end: End = None,
    bucket: Annotated[
        str, Query(pattern=r"^[1-9][0-9]{0,5}[smhd]$", description="e.g. 10m, 1h.")
    ] = "10m",
) -> AccuracySeries:
    """Predictions for windows starting in [start, end) against what those windows held:
    per metric the model's MAE, persistence's MAE (the last window carried forward) and the
    share inside the predicted interval."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.accuracy_by(from_ms, to_ms, duration_ms(bucket, "bucket"))
    return AccuracySeries(
        bucket=bucket,
        buckets=[
            AccuracyBucket(
                model_version=r["model_version"],
                start=datetime.fromtimestamp(r["bucket"] / 1000, UTC),
                predictions=r["n"],
                metrics=metric_accuracy(r),
            )
            for r in rows
        ],
    )


class ConflictScore(BaseModel):
    predicted_at: datetime = Field(
        description="The window the conflict predictions were made at; their horizon "
        "ends with the scored window."
    )
    threshold: float = Field(description="The probability a pair needed to count as predicted.")
    predicted: int
    hits: int = Field(description="Predicted pairs that were in conflict within the horizon.")
    false_alarms: int = Field(description="Predicted pairs that were not.")
    misses: int = Field(description="Pairs in conflict within the horizon, not predicted.")


class WindowScore(BaseModel):
    window_start: datetime = Field(description="The closed window whose predictions are scored.")
    model_version: str = Field(description="The version that made the state predictions.")
    voices: int = Field(description="Voices scored (predicted and present in both windows).")
    metrics: dict[str, MetricAccuracy]
    conflicts: ConflictScore | None = Field(
        description="Null when not every window of the horizon was seen (a start, a gap)."
    )


class ScoreList(BaseModel):
    windows: list[WindowScore]


@router.get(
    "/scores",
    response_model=ScoreList,
    summary="Each closed window's predictions, scored as it closed, newest first",
    **requires(Role.ANALYST),
)
async def prediction_scores(
    ctx: ContextDep,
    start: Start = None,
    end: End = None,
    model_version: Name = None,
    limit: Limit = 500,
) -> ScoreList:
    """Windows starting in [start, end): per metric the MAE of the predictions made for
    the window, persistence's and the interval coverage; and the conflict predictions whose
    horizon ended with it: hits, false alarms and misses (a pair is in conflict when its
    antagonistic strength reaches ``CONFLICT_OBSERVED_STRENGTH``)."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.prediction_scores(model_version, from_ms, to_ms, limit)
    return ScoreList(
        windows=[
            WindowScore(
                window_start=datetime.fromtimestamp(r["window_start"] / 1000, UTC),
                model_version=r["model_version"],
                voices=r["voices"],
                metrics=metric_accuracy(r),
                conflicts=None
                if r["conflict_window_start"] is None
                else ConflictScore(
                    predicted_at=datetime.fromtimestamp(r["conflict_window_start"] / 1000, UTC),
                    threshold=r["conflict_threshold"],
                    predicted=r["conflicts_predicted"],
                    hits=r["conflict_hits"],
                    false_alarms=r["conflict_false_alarms"],
                    misses=r["conflict_misses"],
                ),
            )
            for r in rows
        ]
    )


class SystemOutlook(BaseModel):
    window_start: datetime | None = Field(description="The newest window the models ran on.")
    model_version: str | None
    voices: int = Field(description="Voices with a prediction for the next window.")
    mean_predicted_stress: float | None
    voices_at_risk: int = Field(
        description=f"Voices whose next stress mean is over its alert level with "
        f"probability {AT_RISK} or more."
    )
    riskiest_voices: list[Prediction] = Field(description="Highest risk first.")
    pairs: int = Field(description="Pairs with a conflict probability.")
    expected_conflicts: float = Field(
        description="Expected pairs in conflict within the horizon: the sum of probabilities."
    )
    max_conflict_probability: float | None
    likeliest_conflicts: list[ConflictPrediction] = Field(description="Most probable first.")
    emergence: Emergence | None = Field(description="The emergence detector's newest window.")


@router.get(
    "/system",
    response_model=SystemOutlook,
    summary="The system's outlook: predicted states, conflicts and emergence, summed up",
    **requires(Role.ANALYST),
)
async def outlook(
    ctx: ContextDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Voices and pairs listed, riskiest first.")
    ] = 10,
) -> SystemOutlook:
    """From the newest tick's outputs. Harmony is not forecast (no model predicts the
    interaction matrix); the monitor reports the measured harmony."""
    found = await system_outlook(ctx.queries)
    window = found.window_start
    return SystemOutlook(
        window_start=None if window is None else datetime.fromtimestamp(window / 1000, UTC),
        model_version=found.model_version,
        voices=len(found.states),
        mean_predicted_stress=found.mean_predicted_stress(),
        voices_at_risk=found.at_risk(),
        riskiest_voices=[Prediction.from_row(r) for r in found.riskiest(limit)],
        pairs=len(found.conflicts),
        expected_conflicts=found.expected_conflicts(),
        max_conflict_probability=max((c["probability"] for c in found.conflicts), default=None),
        likeliest_conflicts=[
            ConflictPrediction.from_row(r) for r in found.likeliest_conflicts(limit)
        ],
        emergence=None if found.emergence is None else Emergence.from_row(found.emergence),
    )
