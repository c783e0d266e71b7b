from __future__ import annotations

import math
import struct

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from deltaomega.errors import DecodeError, ValidationError
from deltaomega.schemas import INTERACTION_EVENT, VOICE_EVENT, VOICE_STATE, AvroCodec
from deltaomega.schemas._loader import bundled_schemas, fingerprint_of

EVENT = {
    "event_id": "e-1",
    "voice_id": "voice-01",
    "ts": 1_800_000_000_123,
    "temperature": 0.75,
    "activation": 0.5,
    "stress": 0.25,
    "influence": 1.0,
    "context": {"turn": "7"},
}
INTERACTION = {
    "event_id": "i-1",
    "ts": 1_800_000_000_123,
    "source": "voice-01",
    "target": "voice-02",
    "kind": "SUPPRESSION",
    "strength": 0.5,
    "context": {},
}


def test_crc64_avro_fingerprint_matches_the_spec_vector() -> None:
    # Avro's SchemaNormalization.parsingFingerprint64("null") = 0x63DD24E7CC258F8A.
    assert fingerprint_of("null") == bytes.fromhex("8a8f25cce724dd63")


def test_single_object_encoding_exact_bytes() -> None:
    data = AvroCodec().encode(VOICE_EVENT, EVENT)
    header = b"\xc3\x01" + bundled_schemas()[VOICE_EVENT].fingerprint
    assert data[:10] == header
    # event_id "e-1": zigzag length 3 → 0x06, then the bytes.
    assert data[10:14] == b"\x06e-1"
    assert data[14:23] == b"\x10voice-01"
    doubles = struct.pack("<4d", 0.75, 0.5, 0.25, 1.0)
    context = b"\x02" + b"\x08turn" + b"\x027" + b"\x00"  # one-entry block, then end
    assert data[23:] == zigzag_varint(EVENT["ts"]) + doubles + context


def zigzag_varint(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_round_trip_single_object() -> None:
    codec = AvroCodec()
    assert codec.decode(codec.encode(VOICE_EVENT, EVENT)) == (VOICE_EVENT, EVENT)
    assert codec.decode(codec.encode(INTERACTION_EVENT, INTERACTION)) == (
        INTERACTION_EVENT,
        INTERACTION,
    )


def test_confluent_wire_format_with_registry_and_both_readable() -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    confluent = AvroCodec(registry)
    data = confluent.encode(VOICE_EVENT, EVENT)
    schema_id = registry.get_latest_version(VOICE_EVENT).schema_id
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    # The same decoder reads both framings.
    single = AvroCodec().encode(VOICE_EVENT, EVENT)
    batch = confluent.decode_voice_events([data, single])
    assert batch.errors == []
    assert batch.columns.event_id.to_pylist() == ["e-1", "e-1"]
    assert batch.columns.ts.tolist() == [EVENT["ts"], EVENT["ts"]]


def test_confluent_record_without_registry_is_a_decode_error() -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    data = AvroCodec(registry).encode(VOICE_EVENT, EVENT)
    with pytest.raises(DecodeError, match="no registry"):
        AvroCodec().decode(data)


@pytest.mark.parametrize(
    ("schema", "record", "field", "message"),
    [
        (VOICE_EVENT, {**EVENT, "stress": math.nan}, "stress", "NaN"),
        (VOICE_EVENT, {**EVENT, "activation": math.inf}, "activation", "infinity"),
        (VOICE_EVENT, {**EVENT, "temperature": 2.5}, "temperature", "must be in"),
        (VOICE_EVENT, {**EVENT, "voice_id": ""}, "voice_id", "missing"),
        (VOICE_EVENT, {**EVENT, "event_id": "  "}, "event_id", "missing"),
        (VOICE_EVENT, {**EVENT, "ts": 1_800_000_000}, "ts", "epoch milliseconds"),
        (INTERACTION_EVENT, {**INTERACTION, "strength": -0.1}, "strength", "negative"),
        (INTERACTION_EVENT, {**INTERACTION, "kind": "HUGGING"}, "kind", "unknown"),
        (INTERACTION_EVENT, {**INTERACTION, "target": ""}, "target", "missing"),
    ],
)
def test_encode_rejects_out_of_range_values(
    schema: str, record: dict, field: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        AvroCodec().encode(schema, record)
    assert info.value.field == field


def test_bulk_decode_rejects_bad_records_one_by_one() -> None:
    codec = AvroCodec()
    good = codec.encode(VOICE_EVENT, EVENT)
    batch = codec.encode_voice_batch([{**EVENT, "event_id": f"b-{i}"} for i in range(3)])
    nan = codec.encode(VOICE_EVENT, {**EVENT, "stress": math.nan}, validate=False)
    bad_batch = codec.encode(
        "deltaomega.VoiceEventBatch",
        {"events": [EVENT, {**EVENT, "influence": -1.0}]},
        validate=False,
    )
    state = codec.encode(
        VOICE_STATE,
        {"window_start": 0, "window_end": 1, "voice_id": "v", "count": 1}
        | {
            f"{m}_{s}": 0.0
            for m in ("temperature", "activation", "stress", "influence")
            for s in ("mean", "min", "max", "last")
        },
    )
    values = [good, b"not avro at all", batch, nan, good[:-3], bad_batch, state, b""]
    decoded = codec.decode_voice_events(values)
    assert decoded.columns.event_id.to_pylist() == ["e-1", "b-0", "b-1", "b-2"]
    assert decoded.columns.record_index.tolist() == [0, 2, 2, 2]
    assert [(e.index, e.error_type) for e in decoded.errors] == [
        (1, "DecodeError"),
        (3, "ValidationError"),
        (4, "DecodeError"),
        (5, "ValidationError"),
        (6, "DecodeError"),
        (7, "DecodeError"),
    ]
    reasons = {e.index: e.reason for e in decoded.errors}
    assert reasons[1] == "unknown magic byte 0x6e (neither Avro nor Confluent)"
    assert reasons[3] == "stress: NaN is not allowed"
    assert reasons[5] == "influence: must be in [0.0, 1.0], got -1.0"
    assert reasons[6] == "expected VoiceEvent or VoiceEventBatch, got deltaomega.VoiceState"


def test_unknown_enum_index_on_the_wire_is_a_decode_error() -> None:
    codec = AvroCodec()
    data = bytearray(codec.encode(INTERACTION_EVENT, INTERACTION))
    # kind is the enum after event_id, ts, source, target; SUPPRESSION = index 3 → 0x06.
    position = data.index(b"voice-02") + len(b"voice-02")
    assert data[position] == 0x06
    data[position] = 0x14  # index 10: no such symbol
    decoded = codec.decode_interactions([bytes(data)])
    assert len(decoded.columns) == 0
    assert decoded.errors[0].error_type == "DecodeError"
