"""Response models: the public shape of the API (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from deltaomega.api.queries import FORECAST_STATS
from deltaomega.schemas.records import METRICS, STAT_NAMES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MetricStats(BaseModel):
    mean: float
    min: float
    max: float
    last: float


class VoiceState(BaseModel):
    voice_id: str
    window_start: datetime
    window_end: datetime
    count: int
    temperature: MetricStats
    activation: MetricStats
    stress: MetricStats
    influence: MetricStats

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VoiceState:
        values: dict[str, Any] = {
            "voice_id": row["voice_id"],
            "window_start": datetime.fromtimestamp(row["window_start"] / 1000, UTC),
            "window_end": datetime.fromtimestamp(row["window_end"] / 1000, UTC),
            "count": row["count"],
        }
        for metric in METRICS:
            values[metric] = MetricStats(**{s: row[f"{metric}_{s}"] for s in STAT_NAMES})
        return cls(**values)


class VoiceSummary(BaseModel):
    voice_id: str
    state: VoiceState | None = Field(description="Latest closed window; null until one closes.")


class VoiceList(BaseModel):
    voices: list[VoiceSummary]


class VoiceStateResponse(BaseModel):
    voice_id: str
    state: VoiceState | None
    history: list[VoiceState] | None = None


class VoiceHistory(BaseModel):
    voice_id: str
    states: list[VoiceState]


class PairScore(BaseModel):
    source: str
    target: str
    strength: float = Field(description="Total strength over the window, all kinds.")
    harmony: float
    conflict: float


class InteractionMatrix(BaseModel):
    window: str
    window_start: datetime | None
    window_end: datetime | None
    voices: list[str]
    matrices: dict[str, list[list[float]]] = Field(
        description="Per kind, strength[i][j] from voices[i] to voices[j], summed over windows."
    )
    harmony: float | None = Field(
        description="(cooperation + complementation + amplification − competition − "
        "suppression) / total strength, system-wide; null without interactions."
    )
    conflict: float | None = Field(
        description="(competition + suppression) / total strength, system-wide."
    )
    pairs: list[PairScore]


def _utc(ms: int) -> datetime:
    """Exact: no float on the way, so a stored millisecond reads back unchanged."""
    return _EPOCH + timedelta(milliseconds=ms)


def _with_times(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**row, **{name: _utc(row[name]) for name in names}}


class MetricForecast(BaseModel):
    pred: float = Field(description="Predicted next-window mean.")
    std: float
    low: float = Field(description="Lower end of the central interval (interval_level).")
    high: float


class Prediction(BaseModel):
    voice_id: str
    window_start: datetime = Field(description="The last closed window it was made from.")
    target_window_start: datetime = Field(description="The predicted (next) window.")
    temperature: MetricForecast
    activation: MetricForecast
    stress: MetricForecast
    influence: MetricForecast
    interval_level: float = Field(description="Coverage the interval is meant to have.")
    risk: float = Field(
        description="Probability that the next stress mean exceeds its alert level."
    )
    model_version: str
    produced_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Prediction:
        values = _with_times(row, "window_start", "target_window_start", "produced_at")
        for metric in METRICS:
            values[metric] = MetricForecast(
                **{s: values.pop(f"{metric}_{s}") for s in FORECAST_STATS}
            )
        return cls(**values)


class PredictionList(BaseModel):
    predictions: list[Prediction] = Field(description="Newest window first.")


class ConflictPrediction(BaseModel):
    window_start: datetime
    source: str
    target: str
    probability: float = Field(description="Of conflict from source to target within the horizon.")
    horizon_windows: int
    model_version: str
    produced_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ConflictPrediction:
        return cls(**_with_times(row, "window_start", "produced_at"))


class ConflictList(BaseModel):
    conflicts: list[ConflictPrediction] = Field(
        description="Newest window first, then most probable first."
    )


class Emergence(BaseModel):
    window_start: datetime
    probability: float
    detected: bool
    type: str
    type_probability: float
    reconstruction_error: float
    voices: int
    model_version: str
    produced_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Emergence:
        return cls(**_with_times(row, "window_start", "produced_at"))


class EmergenceList(BaseModel):
    emergence: list[Emergence] = Field(description="Newest window first.")


class Pattern(BaseModel):
    window_start: datetime
    pattern: str
    confidence: float
    complexity: float
    novelty: float
    model_version: str
    produced_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Pattern:
        return cls(**_with_times(row, "window_start", "produced_at"))


class PatternList(BaseModel):
    patterns: list[Pattern] = Field(description="Newest window first.")


class Alert(BaseModel):
    alert_id: str = Field(description="rule:subject:window_start, stable across replays.")
    window_start: datetime
    rule: str
    severity: str = Field(description="CRITICAL, WARNING or INFO.")
    subject: str = Field(description="A voice id, 'source->target' or 'system'.")
    message: str
    value: float
    threshold: float
    recommended_actions: list[str]
    model_version: str
    produced_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        return cls(**_with_times(row, "window_start", "produced_at"))


class AlertList(BaseModel):
    alerts: list[Alert] = Field(description="Newest window first.")


class AuditEvent(BaseModel):
    event_id: str
    occurred_at: datetime
    principal: str = Field(
        description="Token subject, 'key:<id>', 'anonymous', 'system' or 'cli:<user>'."
    )
    role: str = Field(description="The principal's role; '' when it was not known.")
    auth_method: str = Field(description="token, api_key, anonymous, none, cli or system.")
    action: str
    target: str
    rationale: str
    request_id: str = Field(description="The X-Request-ID of the request it came from.")
    client: str
    outcome: str = Field(description="OK, DENIED or FAILED.")
    status: int = Field(description="The HTTP status; 0 outside HTTP.")
    detail: str
    before: str = Field(description="JSON of the state it replaced; '' if none.")
    after: str = Field(description="JSON of the state it made; '' if none.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditEvent:
        return cls(**_with_times(row, "occurred_at"))


class AuditList(BaseModel):
    events: list[AuditEvent] = Field(description="Newest first.")
