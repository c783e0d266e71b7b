"""Response models: the public shape of the API (OpenAPI at /docs)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from deltaomega.api.queries import FORECAST_STATS
from deltaomega.control.strategies import OrchestrationTargets, StrategyOptions
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


def utc_from_ms(ms: int) -> datetime:
    """Exact: no float on the way, so a stored millisecond reads back unchanged."""
    return _EPOCH + timedelta(milliseconds=ms)


def _with_times(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**row, **{name: utc_from_ms(row[name]) for name in names}}


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


def _modifier_value(value: Any) -> str | float:
    """A string (at most 1000 characters) or a finite number: one error naming the key,
    not one per branch of a union."""
    if isinstance(value, str):
        if len(value) > _MAX_MODIFIER_TEXT:
            raise ValueError(f"a string of at most {_MAX_MODIFIER_TEXT} characters")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("a finite number")
        return float(value)
    raise ValueError("must be a string or a number")


_MAX_MODIFIER_TEXT = 1000
ModifierValue = Annotated[
    str | float,
    PlainValidator(_modifier_value),
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": 1000}, {"type": "number"}]}),
]


class VoiceParameters(BaseModel):
    """The seed's tunable parameters; an absent one stays as it is."""

    model_config = ConfigDict(extra="forbid")

    sensitivity: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    activation_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    influence_weight: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    context_modifiers: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=100)], ModifierValue
    ] = Field(default_factory=dict, max_length=50)


class ParameterChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: VoiceParameters
    rationale: str = Field(min_length=3, max_length=2000, description="Why; kept in the audit log.")
    expected_duration: int | None = Field(
        default=None,
        ge=1,
        le=10080,
        description="Minutes until the change is reverted (at most a week); unset: until "
        "changed again.",
    )
    monitoring_enabled: bool = True


class ParameterChangeAccepted(BaseModel):
    change_id: str
    voice_id: str
    status: str = Field(description="'accepted': on voice.parameters, for the voice to apply.")
    requested_at: datetime
    expires_at: datetime | None


class ParameterValues(BaseModel):
    sensitivity: float
    activation_threshold: float
    influence_weight: float
    context_modifiers: dict[str, str | float]


class ParameterChange(BaseModel):
    change_id: str
    sensitivity: float | None
    activation_threshold: float | None
    influence_weight: float | None
    context_modifiers: dict[str, str | float]
    rationale: str
    expected_duration: int | None = Field(description="Minutes; null: until changed again.")
    monitoring_enabled: bool
    requested_by: str = Field(description="The principal, or 'system' for a revert.")
    requested_at: datetime
    expires_at: datetime | None
    reverts: str | None = Field(description="The change this one undid (the control plane's).")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ParameterChange:
        return cls(
            **{
                **row,
                "expected_duration": row["expected_duration_minutes"],
                "requested_at": utc_from_ms(row["requested_at"]),
                "expires_at": None if row["expires_at"] is None else utc_from_ms(row["expires_at"]),
            }
        )


class VoiceParametersState(BaseModel):
    voice_id: str
    parameters: ParameterValues = Field(
        description="In effect now (the defaults if never changed)."
    )
    replaced: ParameterValues | None = Field(description="What the last change replaced.")
    last_change: ParameterChange | None
    expires_at: datetime | None = Field(
        description="When the last change is reverted; null if it lasts until changed again."
    )


class ParameterHistory(BaseModel):
    voice_id: str
    changes: list[ParameterChange] = Field(description="Newest first.")


class OrchestrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_voices: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=50
    )
    duration: int = Field(ge=1, le=1440, description="Minutes it stays active once approved.")
    parameters: OrchestrationTargets = Field(default_factory=OrchestrationTargets)
    strategy_parameters: StrategyOptions = Field(default_factory=StrategyOptions)
    rationale: str = Field(min_length=3, max_length=2000)


class OrchestrationDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(min_length=3, max_length=2000)


class OrchestrationAccepted(BaseModel):
    orchestration_id: str
    action: str = Field(description="request, approve, reject or rollback.")
    status: str = Field(description="'accepted': the control plane applies it in order.")


class Orchestration(BaseModel):
    orchestration_id: str
    state: str = Field(
        description="PROPOSED, APPROVED, REJECTED, ACTIVE, COMPLETED, ROLLED_BACK or EXPIRED."
    )
    strategy: str
    target_voices: list[str]
    duration_seconds: int
    voice_parameters: dict[str, dict[str, float]] = Field(
        description="Per voice, the parameters it sets (worked out when requested)."
    )
    rationale: str
    requested_by: str
    decided_by: str
    detail: str = Field(description="Why the last decision was refused, or what happened.")
    requested_at: datetime
    changed_at: datetime
    ends_at: datetime | None
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Orchestration:
        return cls(
            **{
                **row,
                "voice_parameters": json.loads(row["voice_parameters"]),
                "requested_at": utc_from_ms(row["requested_at"]),
                "changed_at": utc_from_ms(row["changed_at"]),
                "ends_at": None if row["ends_at"] is None else utc_from_ms(row["ends_at"]),
            }
        )


class OrchestrationList(BaseModel):
    orchestrations: list[Orchestration] = Field(description="Newest request first.")


class TrendWindow(BaseModel):
    start: datetime
    end: datetime
    mean: float = Field(description="Count-weighted mean of the closed windows inside.")
    count: int = Field(description="Events in them.")


class TrendChangePoint(BaseModel):
    at: datetime = Field(description="Start of the first window after the change.")
    before: float = Field(description="Mean of the windows since the previous change.")
    after: float = Field(description="Mean of the windows until the next change.")


class VoiceTrend(BaseModel):
    voice_id: str
    metric: str
    windows: int = Field(description="Closed windows in the range.")
    slope_per_minute: float | None = Field(
        description="Least-squares slope of the window means, per minute (two windows or more)."
    )
    change: float | None = Field(description="Last window's mean minus the first's.")
    hopping: list[TrendWindow]
    change_points: list[TrendChangePoint]


class HarmonyPoint(BaseModel):
    window_start: datetime
    strength: float = Field(description="Summed strength × events of the window's links.")
    harmony: float = Field(description="(supportive − antagonistic) / total, −1 to 1.")
    conflict: float = Field(description="Antagonistic / total, 0 to 1.")


class HarmonySeries(BaseModel):
    source: str | None = Field(description="The pair's source; null: system-wide.")
    target: str | None
    windows: list[HarmonyPoint]
