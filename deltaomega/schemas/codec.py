"""Avro codec: single-object encoding by default, Confluent wire format with a registry.

Readers accept both, told apart by their first bytes (``C3 01`` vs ``00``), and decode a
whole consumer batch in one call into columns, rejecting bad records one by one.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from numpy.typing import NDArray

from deltaomega.config import Settings
from deltaomega.errors import (
    DecodeError,
    DeltaOmegaError,
    SchemaError,
    ServiceUnavailableError,
    ValidationError,
)
from deltaomega.outages import outage
from deltaomega.schemas._loader import (
    BundledSchema,
    bundled_schemas,
    fingerprint_of,
    strip_logical_types,
)
from deltaomega.schemas.columnar import (
    ARRAY,
    INTERACTION_EVENTS,
    ONE,
    VOICE_EVENTS,
    Columns,
    EventType,
    decode_columns,
)
from deltaomega.schemas.records import (
    INTERACTION_EVENT,
    KIND_CODE,
    METRICS,
    VOICE_EVENT,
    VOICE_EVENT_BATCH,
    DecodedBatch,
    InteractionEventColumns,
    RecordError,
    VoiceEventColumns,
    context_array,
)
from deltaomega.schemas.validation import (
    bad_ids,
    bad_rows,
    validate_interaction_event,
    validate_voice_event,
)

log = logging.getLogger(__name__)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

_STREAM_REPR = re.compile(r" from <_io\.BytesIO object at 0x[0-9a-f]+>")

C = TypeVar("C", VoiceEventColumns, InteractionEventColumns)

_VALIDATORS = {VOICE_EVENT: validate_voice_event, INTERACTION_EVENT: validate_interaction_event}


class AvroCodec:
    """Encode and decode the bundled record types.

    With ``registry`` (a confluent-kafka ``SchemaRegistryClient``), writes use the Confluent
    wire format and register schemas under their record name (RecordNameStrategy), so one
    schema serves every topic it appears on.
    """

    def __init__(self, registry: Any | None = None, registry_url: str = "") -> None:
        self._schemas = bundled_schemas()
        self._by_fingerprint = {s.fingerprint: s for s in self._schemas.values()}
        self._registry = registry
        self._registry_url = registry_url
        self._lock = threading.Lock()
        self._ids_by_name: dict[str, int] = {}
        # registry id → (bundled schema it maps to, parsed writer schema)
        self._writers_by_id: dict[int, tuple[BundledSchema, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AvroCodec:
        if not settings.schema_registry_url:
            return cls()
        from confluent_kafka.schema_registry import SchemaRegistryClient

        url = settings.schema_registry_url
        return cls(SchemaRegistryClient.new_client({"url": url}), url)

    def schema(self, name: str) -> BundledSchema:
        try:
            return self._schemas[name]
        except KeyError as exc:
            raise SchemaError(f"unknown schema {name!r}") from exc

    # -- writing ---------------------------------------------------------------------------

    def encode(self, name: str, record: Mapping[str, Any], validate: bool = True) -> bytes:
        """One record as bytes; ``validate`` applies the range checks of event types."""
        if validate and name in _VALIDATORS:
            _VALIDATORS[name](record)
        schema = self.schema(name)
        buf = io.BytesIO()
        buf.write(self._header(schema))
        try:
            schemaless_writer(buf, schema.parsed_raw, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ValidationError(name, f"record does not match schema: {exc}") from exc
        return buf.getvalue()

    def encode_voice_batch(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        """Pack many voice events into one VoiceEventBatch record."""
        if not events:
            raise ValidationError("events", "a batch needs at least one event")
        for event in events:
            validate_voice_event(event)
        return self.encode(VOICE_EVENT_BATCH, {"events": list(events)}, validate=False)

    def _header(self, schema: BundledSchema) -> bytes:
        if self._registry is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint
        schema_id = self._ids_by_name.get(schema.name)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            with self._lock:
                try:
                    schema_id = self._registry.register_schema(
                        schema.name, Schema(json.dumps(schema.expanded), "AVRO")
                    )
                except Exception as exc:  # noqa: BLE001 - the registry client raises many types
                    raise self._unreachable(exc) from exc
                self._ids_by_name[schema.name] = schema_id
        return CONFLUENT_MAGIC + int(schema_id).to_bytes(4, "big")

    def _unreachable(self, exc: Exception) -> DeltaOmegaError:
        """A registry call that failed: unreachable (retry later) or refused (a bug)."""
        code = getattr(exc, "http_status_code", None)
        if isinstance(code, int) and 400 <= code < 500:
            return SchemaError(f"the schema registry refused the request: {exc}")
        outage("schema-registry").failed(f"{type(exc).__name__}: {exc}"[:300])
        return ServiceUnavailableError(
            "schema-registry",
            f"the schema registry at {self._registry_url} is not reachable ({type(exc).__name__})",
        )

    # -- reading ---------------------------------------------------------------------------

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return (schema full name, record) for one encoded value."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) < 5:
            raise DecodeError("record is empty or too short to hold an Avro header")
        data = bytes(data)
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < 10:
                raise DecodeError("single-object header is truncated")
            schema = self._by_fingerprint.get(data[2:10])
            if schema is None:
                raise DecodeError(f"unknown schema fingerprint {data[2:10].hex()}")
            return schema.name, _read(data, 10, schema.parsed_raw, None)
        if data[:1] == CONFLUENT_MAGIC:
            schema, writer = self._writer_for_id(int.from_bytes(data[1:5], "big"))
            reader = None if writer is schema.parsed_raw else schema.parsed_raw
            return schema.name, _read(data, 5, writer, reader)
        raise DecodeError(f"unknown magic byte 0x{data[0]:02x} (neither Avro nor Confluent)")

    def _writer_for_id(self, schema_id: int) -> tuple[BundledSchema, Any]:
        cached = self._writers_by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._registry is None:
            raise DecodeError(f"Confluent-framed record (schema id {schema_id}) but no registry")
        try:
            registered = self._registry.get_schema(schema_id)
        except Exception as exc:  # noqa: BLE001 - registry client raises many types
            error = self._unreachable(exc)
            if isinstance(error, ServiceUnavailableError):
                raise error from exc  # not the record's fault: the batch waits, not rejected
            raise DecodeError(f"schema id {schema_id} not found in the registry: {exc}") from exc
        outage("schema-registry").recovered()
        try:
            writer_json = json.loads(registered.schema_str)
        except ValueError as exc:
            raise DecodeError(f"schema id {schema_id} is not JSON: {exc}") from exc
        name = writer_json.get("name", "")
        if "." not in name and writer_json.get("namespace"):
            name = f"{writer_json['namespace']}.{name}"
        schema = self._schemas.get(name)
        if schema is None:
            raise DecodeError(f"schema id {schema_id} is {name!r}, not a record type we read")
        # The same canonical form means the same bytes: read with the bundled schema then,
        # which needs no schema resolution and lets the columnar decoder take the record.
        try:
            same = fingerprint_of(writer_json) == schema.fingerprint
            writer = schema.parsed_raw if same else parse_schema(strip_logical_types(writer_json))
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on bad schemas
            raise DecodeError(f"schema id {schema_id} does not parse: {exc}") from exc
        with self._lock:
            self._writers_by_id[schema_id] = (schema, writer)
        return schema, writer

    def decode_many(
        self, values: Sequence[bytes | None], expected: str
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[RecordError]]:
        """Decode records that should all be ``expected``; (index, record) pairs and errors."""
        good: list[tuple[int, dict[str, Any]]] = []
        errors: list[RecordError] = []
        for index, value in enumerate(values):
            if value is None:
                errors.append(
                    RecordError(index, "record has no value (a tombstone)", "DecodeError")
                )
                continue
            try:
                name, record = self.decode(value)
            except DecodeError as exc:
                errors.append(RecordError(index, str(exc), type(exc).__name__))
                continue
            if name != expected:
                errors.append(RecordError(index, f"expected {expected}, got {name}", "DecodeError"))
                continue
            good.append((index, record))
        return good, errors

    def decode_voice_events(
        self, values: Sequence[bytes | None]
    ) -> DecodedBatch[VoiceEventColumns]:
        """A consumer batch of VoiceEvent and VoiceEventBatch records → columns + rejects.

        A batch record is accepted or rejected whole, so a dead-lettered record can be
        replayed later without double-counting the part that had been accepted.
        """
        present, kept, tombstones = _without_tombstones(values)
        return _with_tombstones(self._decode_voice_events(present), kept, tombstones)

    def _decode_voice_events(self, values: Sequence[bytes]) -> DecodedBatch[VoiceEventColumns]:
        if not values:
            return self._decode_voice_events_one_by_one(values)
        fast = self._columnar(values, {VOICE_EVENT: ONE, VOICE_EVENT_BATCH: ARRAY}, VOICE_EVENTS)
        if fast is None:
            return self._decode_voice_events_one_by_one(values)
        columns = VoiceEventColumns(
            event_id=fast.strings[0],
            voice_id=fast.strings[1],
            ts=fast.longs[0],
            metrics=fast.doubles,
            context=fast.context,
            record_index=fast.record_index,
        )
        return _drop_bad(columns, _bad_voice_rows(columns), [])

    def _decode_voice_events_one_by_one(
        self, values: Sequence[bytes]
    ) -> DecodedBatch[VoiceEventColumns]:
        """fastavro, record by record: any writer schema, and a reason for each reject."""
        event_ids: list[str] = []
        voice_ids: list[str] = []
        ts: list[int] = []
        cols: list[list[float]] = [[] for _ in METRICS]
        contexts: list[dict[str, str]] = []
        record_index: list[int] = []
        errors: list[RecordError] = []
        for index, value in enumerate(values):
            try:
                name, record = self.decode(value)
                if name == VOICE_EVENT:
                    events = [record]
                elif name == VOICE_EVENT_BATCH:
                    events = record["events"]
                    if not events:
                        raise ValidationError("events", "batch record holds no events")
                else:
                    raise DecodeError(f"expected VoiceEvent or VoiceEventBatch, got {name}")
                for event in events:
                    if not event["event_id"]:
                        raise ValidationError("event_id", "is missing or empty")
                    if not event["voice_id"]:
                        raise ValidationError("voice_id", "is missing or empty")
            except DecodeError as exc:
                errors.append(RecordError(index, str(exc), type(exc).__name__))
                continue
            for event in events:
                event_ids.append(event["event_id"])
                voice_ids.append(event["voice_id"])
                ts.append(event["ts"])
                for col, metric in zip(cols, METRICS, strict=True):
                    col.append(event[metric])
                contexts.append(event["context"])
                record_index.append(index)
        columns = VoiceEventColumns(
            event_id=pa.array(event_ids, pa.string()),
            voice_id=pa.array(voice_ids, pa.string()),
            ts=np.array(ts, dtype=np.int64),
            metrics=np.array(cols, dtype=np.float64).T.reshape(len(ts), len(METRICS)),
            context=context_array(contexts),
            record_index=np.array(record_index, dtype=np.int64),
        )
        return _drop_bad(columns, _bad_voice_rows(columns), errors)

    def decode_interactions(
        self, values: Sequence[bytes | None]
    ) -> DecodedBatch[InteractionEventColumns]:
        present, kept, tombstones = _without_tombstones(values)
        return _with_tombstones(self._decode_interactions(present), kept, tombstones)

    def _decode_interactions(
        self, values: Sequence[bytes]
    ) -> DecodedBatch[InteractionEventColumns]:
        if not values:
            return self._decode_interactions_one_by_one(values)
        fast = self._columnar(values, {INTERACTION_EVENT: ONE}, INTERACTION_EVENTS)
        if fast is None:
            return self._decode_interactions_one_by_one(values)
        columns = InteractionEventColumns(
            event_id=fast.strings[0],
            source=fast.strings[1],
            target=fast.strings[2],
            kind=fast.longs[1].astype(np.int8),
            ts=fast.longs[0],
            strength=fast.doubles[:, 0],
            context=fast.context,
            record_index=fast.record_index,
        )
        return _drop_bad(columns, _bad_interaction_rows(columns), [])

    def _decode_interactions_one_by_one(
        self, values: Sequence[bytes]
    ) -> DecodedBatch[InteractionEventColumns]:
        good, errors = self.decode_many(values, INTERACTION_EVENT)
        kept: list[tuple[int, dict[str, Any]]] = []
        for index, record in good:
            missing = next((k for k in ("event_id", "source", "target") if not record[k]), None)
            if missing is not None:
                errors.append(
                    RecordError(index, f"{missing}: is missing or empty", "ValidationError")
                )
            else:
                kept.append((index, record))
        records = [r for _, r in kept]
        columns = InteractionEventColumns(
            event_id=pa.array([r["event_id"] for r in records], pa.string()),
            source=pa.array([r["source"] for r in records], pa.string()),
            target=pa.array([r["target"] for r in records], pa.string()),
            kind=np.array([KIND_CODE[r["kind"]] for r in records], dtype=np.int8),
            ts=np.array([r["ts"] for r in records], dtype=np.int64),
            strength=np.array([r["strength"] for r in records], dtype=np.float64),
            context=context_array([r["context"] for r in records]),
            record_index=np.array([i for i, _ in kept], dtype=np.int64),
        )
        return _drop_bad(columns, _bad_interaction_rows(columns), errors)

    def _columnar(
        self, values: Sequence[bytes], modes: dict[str, int], kind: EventType
    ) -> Columns | None:
        """The columnar decoder's result, or None where fastavro must decode the batch."""
        layout = self._layout(values, modes)
        return None if layout is None else decode_columns(*layout, kind)

    def _layout(
        self, values: Sequence[bytes], modes: dict[str, int]
    ) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
        """(bytes, payload starts, ends, record modes) for the columnar decoder.

        ``None`` unless every record has a header the columnar decoder can take: a
        schema of ``modes`` written with its bundled schema (a registry id whose writer
        schema differs, or anything unknown, goes the one-by-one way).
        """
        n = len(values)
        if n == 0:
            return None
        lengths = np.fromiter(map(len, values), np.int64, n)
        if int(lengths.min()) < 10:
            return None
        buf = np.frombuffer(b"".join(values), np.uint8)
        ends = np.cumsum(lengths)
        begins = ends - lengths
        record_modes = np.full(n, -1, dtype=np.int64)
        starts = np.empty(n, dtype=np.int64)
        first = buf[begins]
        single = (first == SINGLE_OBJECT_MAGIC[0]) & (buf[begins + 1] == SINGLE_OBJECT_MAGIC[1])
        if single.any():
            at = begins[single]
            prints = np.ascontiguousarray(buf[at[:, None] + np.arange(2, 10)]).view("<u8")
            distinct, which = np.unique(prints.ravel(), return_inverse=True)
            found = [self._by_fingerprint.get(int(fp).to_bytes(8, "little")) for fp in distinct]
            mode = [-1 if schema is None else modes.get(schema.name, -1) for schema in found]
            record_modes[single] = np.array(mode, dtype=np.int64)[which]
            starts[single] = at + 10
        framed = ~single & (first == CONFLUENT_MAGIC[0])
        if framed.any():
            at = begins[framed]
            ids = buf[at[:, None] + np.arange(1, 5)].astype(np.int64) @ (
                256 ** np.arange(3, -1, -1)
            )
            distinct, which = np.unique(ids, return_inverse=True)
            mode = []
            for schema_id in distinct.tolist():
                try:
                    schema, writer = self._writer_for_id(schema_id)
                except DecodeError:
                    return None
                plain = writer is schema.parsed_raw
                mode.append(modes.get(schema.name, -1) if plain else -1)
            record_modes[framed] = np.array(mode, dtype=np.int64)[which]
            starts[framed] = at + 5
        if (record_modes < 0).any():
            return None
        return buf, starts, ends, record_modes


def _read(data: bytes, offset: int, writer: Any, reader: Any) -> dict[str, Any]:
    buf = io.BytesIO(data)
    buf.seek(offset)
    try:
        record = schemaless_reader(buf, writer, reader)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on garbage input
        # fastavro names the stream it read from; the address means nothing to a reader.
        message = _STREAM_REPR.sub("", str(exc))
        raise DecodeError(f"payload does not decode: {type(exc).__name__}: {message}") from exc
    if buf.tell() != len(data):
        raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after the record")
    if not isinstance(record, dict):
        raise DecodeError("payload is not a record")
    return record


def _bad_voice_rows(columns: VoiceEventColumns) -> dict[int, str]:
    bad = bad_ids({"event_id": columns.event_id, "voice_id": columns.voice_id})
    for row, reason in bad_rows(METRICS, columns.metrics, columns.ts).items():
        bad.setdefault(row, reason)
    return bad


def _bad_interaction_rows(columns: InteractionEventColumns) -> dict[int, str]:
    bad = bad_ids(
        {"event_id": columns.event_id, "source": columns.source, "target": columns.target}
    )
    strength = columns.strength.reshape(-1, 1)
    for row, reason in bad_rows(("strength",), strength, columns.ts).items():
        bad.setdefault(row, reason)
    return bad


def _without_tombstones(
    values: Sequence[bytes | None],
) -> tuple[Sequence[bytes], NDArray[np.int64] | None, list[RecordError]]:
    """(the records that have a value, their indices or None when all do, the rejects).

    A record with no value (a tombstone, as a compacting producer writes) is not an event;
    it is rejected on its own, and the rest of the batch decodes as if it were not there.
    """
    if all(value is not None for value in values):
        return cast(Sequence[bytes], values), None, []
    kept = [i for i, value in enumerate(values) if value is not None]
    errors = [
        RecordError(i, "record has no value (a tombstone), so it holds no event", "DecodeError")
        for i, value in enumerate(values)
        if value is None
    ]
    return [cast(bytes, values[i]) for i in kept], np.array(kept, dtype=np.int64), errors


def _with_tombstones(
    decoded: DecodedBatch[C], kept: NDArray[np.int64] | None, rejected: list[RecordError]
) -> DecodedBatch[C]:
    """Map a batch decoded without its tombstones back to the original record indices."""
    if kept is None:
        return decoded
    decoded.columns.record_index = kept[decoded.columns.record_index]
    errors = [RecordError(int(kept[e.index]), e.reason, e.error_type) for e in decoded.errors]
    return DecodedBatch(decoded.columns, sorted(errors + rejected, key=lambda e: e.index))


def _drop_bad(columns: C, bad: dict[int, str], errors: list[RecordError]) -> DecodedBatch[C]:
    """Reject every record that holds a bad row (all of its rows go)."""
    if not bad:
        errors.sort(key=lambda e: e.index)
        return DecodedBatch(columns, errors)
    first_reason: dict[int, str] = {}
    for row, reason in sorted(bad.items()):
        first_reason.setdefault(int(columns.record_index[row]), reason)
    errors.extend(RecordError(i, r, "ValidationError") for i, r in first_reason.items())
    errors.sort(key=lambda e: e.index)
    rejected = np.fromiter(first_reason, dtype=np.int64)
    keep = np.flatnonzero(~np.isin(columns.record_index, rejected)).astype(np.int64)
    return DecodedBatch(columns.take(keep), errors)
