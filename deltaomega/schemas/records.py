"""Typed records (for producers and the API) and columnar batches (for the stream hot path)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

VOICE_EVENT = "deltaomega.VoiceEvent"
VOICE_EVENT_BATCH = "deltaomega.VoiceEventBatch"
INTERACTION_EVENT = "deltaomega.InteractionEvent"
VOICE_STATE = "deltaomega.VoiceState"
INTERACTION_STATE = "deltaomega.InteractionState"
PREDICTION = "deltaomega.Prediction"
CONFLICT_PREDICTION = "deltaomega.ConflictPrediction"
EMERGENCE = "deltaomega.Emergence"
PATTERN = "deltaomega.Pattern"
ALERT = "deltaomega.Alert"
SEVERITIES: tuple[str, ...] = ("CRITICAL", "WARNING", "INFO")

METRICS: tuple[str, ...] = ("temperature", "activation", "stress", "influence")
#: Inclusive ranges a voice metric must fall in (temperature as in sampling temperature).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "activation": (0.0, 1.0),
    "stress": (0.0, 1.0),
    "influence": (0.0, 1.0),
}
INTERACTION_KINDS: tuple[str, ...] = (
    "COOPERATION",
    "COMPETITION",
    "COMPLEMENTATION",
    "SUPPRESSION",
    "AMPLIFICATION",
)
KIND_CODE: dict[str, int] = {kind: i for i, kind in enumerate(INTERACTION_KINDS)}
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "last")

T = TypeVar("T")

Int64Array = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(slots=True)
class VoiceEvent:
    event_id: str
    voice_id: str
    ts: int  # epoch milliseconds, event time
    temperature: float
    activation: float
    stress: float
    influence: float
    context: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class InteractionEvent:
    event_id: str
    ts: int
    source: str
    target: str
    kind: str
    strength: float
    context: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class VoiceEventColumns:
    """Decoded voice events as columns; ``record_index`` maps each row to its Kafka record."""

    event_id: list[str]
    voice_id: list[str]
    ts: Int64Array
    metrics: FloatArray  # shape (n, len(METRICS))
    context: list[dict[str, str]]
    record_index: Int64Array

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, rows: Int64Array) -> VoiceEventColumns:
        return VoiceEventColumns(
            event_id=[self.event_id[i] for i in rows],
            voice_id=[self.voice_id[i] for i in rows],
            ts=self.ts[rows],
            metrics=self.metrics[rows],
            context=[self.context[i] for i in rows],
            record_index=self.record_index[rows],
        )


@dataclass(slots=True)
class InteractionEventColumns:
    event_id: list[str]
    source: list[str]
    target: list[str]
    kind: NDArray[np.int8]  # index into INTERACTION_KINDS
    ts: Int64Array
    strength: FloatArray
    context: list[dict[str, str]]
    record_index: Int64Array

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, rows: Int64Array) -> InteractionEventColumns:
        return InteractionEventColumns(
            event_id=[self.event_id[i] for i in rows],
            source=[self.source[i] for i in rows],
            target=[self.target[i] for i in rows],
            kind=self.kind[rows],
            ts=self.ts[rows],
            strength=self.strength[rows],
            context=[self.context[i] for i in rows],
            record_index=self.record_index[rows],
        )


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one Kafka record was rejected; the record goes to the dead-letter topic."""

    index: int  # position of the record in the decoded list
    reason: str
    error_type: str


@dataclass(slots=True)
class DecodedBatch(Generic[T]):
    columns: T
    errors: list[RecordError]
