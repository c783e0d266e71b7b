"""Typed records (for producers and the API) and columnar batches (for the stream hot path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args

import numpy as np
import pyarrow as pa
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
AUDIT_EVENT = "deltaomega.AuditEvent"
PARAMETER_CHANGE = "deltaomega.ParameterChange"
ORCHESTRATION_EVENT = "deltaomega.OrchestrationEvent"
ORCHESTRATION_STATUS = "deltaomega.OrchestrationStatus"
VOICE_COMMAND = "deltaomega.VoiceCommand"
ALERT_ACTION = "deltaomega.AlertAction"
ALERT_CONDITION = "deltaomega.AlertCondition"
ALERT_DELIVERY = "deltaomega.AlertDelivery"
PREDICTION_SCORE = "deltaomega.PredictionScore"
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
#: The kinds as a type, for request models.
InteractionKind = Literal[
    "COOPERATION", "COMPETITION", "COMPLEMENTATION", "SUPPRESSION", "AMPLIFICATION"
]
assert get_args(InteractionKind) == INTERACTION_KINDS
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "last")

#: The one length limit of an id (event, voice, source, target), in characters: what the
#: pipeline accepts, it stores, and the API reads back.
MAX_ID_LENGTH = 256
#: What an id may not hold: control characters (C0 and DEL). They are never meaningful in
#: a name, and the window keys and logs must be able to show and separate every id.
ID_FORBIDDEN = "[\\x00-\\x1f\\x7f]"
ID_RULE = f"1 to {MAX_ID_LENGTH} characters, not only spaces, no control characters"

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
    """Decoded voice events as columns; ``record_index`` maps each row to its Kafka record.

    Strings and the context map are Arrow arrays: the raw-row insert takes them as they
    are, and window keys come from dictionary-encoding ``voice_id``.
    """

    event_id: pa.StringArray
    voice_id: pa.StringArray
    ts: Int64Array
    metrics: FloatArray  # shape (n, len(METRICS))
    context: pa.MapArray
    record_index: Int64Array

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: Int64Array) -> VoiceEventColumns:
        return VoiceEventColumns(
            event_id=self.event_id.take(rows),
            voice_id=self.voice_id.take(rows),
            ts=self.ts[rows],
            metrics=self.metrics[rows],
            context=self.context.take(rows),
            record_index=self.record_index[rows],
        )


@dataclass(slots=True)
class InteractionEventColumns:
    event_id: pa.StringArray
    source: pa.StringArray
    target: pa.StringArray
    kind: NDArray[np.int8]  # index into INTERACTION_KINDS
    ts: Int64Array
    strength: FloatArray
    context: pa.MapArray
    record_index: Int64Array

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: Int64Array) -> InteractionEventColumns:
        return InteractionEventColumns(
            event_id=self.event_id.take(rows),
            source=self.source.take(rows),
            target=self.target.take(rows),
            kind=self.kind[rows],
            ts=self.ts[rows],
            strength=self.strength[rows],
            context=self.context.take(rows),
            record_index=self.record_index[rows],
        )


def dictionary_codes(strings: pa.StringArray) -> tuple[Int64Array, list[str]]:
    """(code per row, distinct strings): the Python strings are made once per distinct value."""
    encoded = strings.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes, encoded.dictionary.to_pylist()


def context_array(contexts: Sequence[Mapping[str, str]]) -> pa.MapArray:
    """Map(String, String) from flat keys, values and offsets (no per-row Python lists)."""
    offsets = np.zeros(len(contexts) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, contexts), np.int32, len(contexts)), out=offsets[1:])
    keys = [k for context in contexts for k in context]
    values = [v for context in contexts for v in context.values()]
    return pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(keys, pa.string()), pa.array(values, pa.string())
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
