"""Response models: the public shape of the API (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from deltaomega.schemas.records import METRICS, STAT_NAMES


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
