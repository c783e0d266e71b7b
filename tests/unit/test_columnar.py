"""The columnar decoder against fastavro: same columns on valid input, never more on bad."""

from __future__ import annotations

import random
from dataclasses import fields
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from deltaomega.schemas import INTERACTION_EVENT, INTERACTION_KINDS, VOICE_EVENT, AvroCodec
from deltaomega.schemas.columnar import (
    ARRAY,
    INTERACTION_EVENTS,
    ONE,
    VOICE_EVENTS,
    EventType,
)
from deltaomega.schemas.records import VOICE_EVENT_BATCH
from tests.unit.test_codec import zigzag_varint as zigzag

VOICE_MODES = {VOICE_EVENT: ONE, VOICE_EVENT_BATCH: ARRAY}
INTERACTION_MODES = {INTERACTION_EVENT: ONE}
TEXT = "abcxyz-_ 0189éß✓語"


def text(rng: random.Random, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(low, high)))


def context(rng: random.Random) -> dict[str, str]:
    return {text(rng): text(rng, 0, 8) for _ in range(rng.choice([0, 0, 1, 3]))}


def voice_event(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{text(rng)}-{n}",
        "voice_id": "v" + text(rng, 0, 3),
        "ts": rng.randint(946_684_800_000, 7_258_118_399_999),
        "temperature": rng.uniform(0, 2),
        "activation": rng.random(),
        "stress": rng.choice([0.0, 1.0, rng.random()]),
        "influence": rng.random(),
        "context": context(rng),
    }


def interaction(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{text(rng)}-{n}",
        "ts": rng.randint(946_684_800_000, 7_258_118_399_999),
        "source": "s" + text(rng, 0, 3),
        "target": "t" + text(rng, 0, 3),
        "kind": rng.choice(INTERACTION_KINDS),
        "strength": rng.random(),
        "context": context(rng),
    }


def assert_same_columns(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, pa.Array):
            assert x.type == y.type, f.name
            assert x.to_pylist() == y.to_pylist(), f.name
        else:
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)


def fast(codec: AvroCodec, values: list[bytes], modes: dict[str, int], program: EventType) -> Any:
    """The columnar decoder alone; None where it leaves the records to fastavro."""
    return codec._columnar(values, modes, program)


def voice_records(codec: AvroCodec, rng: random.Random, count: int) -> list[bytes]:
    values = []
    for n in range(count):
        if rng.random() < 0.5:
            values.append(codec.encode(VOICE_EVENT, voice_event(rng, n)))
        else:
            events = [voice_event(rng, n * 1000 + k) for k in range(rng.randint(1, 40))]
            values.append(codec.encode_voice_batch(events))
    return values


def test_voice_batches_decode_exactly_as_fastavro_does() -> None:
    rng = random.Random(1)
    codec = AvroCodec()
    values = voice_records(codec, rng, 300)
    assert fast(codec, values, VOICE_MODES, VOICE_EVENTS) is not None
    decoded = codec.decode_voice_events(values)
    reference = codec._decode_voice_events_one_by_one(values)
    assert decoded.errors == reference.errors == []
    assert len(decoded.columns) > 3000
    assert sum(len(c) for c in decoded.columns.context.to_pylist()) > 1000
    assert_same_columns(decoded.columns, reference.columns)


def test_interactions_in_both_framings_decode_exactly_as_fastavro_does() -> None:
    rng = random.Random(2)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    framed, plain = AvroCodec(registry), AvroCodec()
    values = [
        (framed if n % 3 == 0 else plain).encode(INTERACTION_EVENT, interaction(rng, n))
        for n in range(500)
    ]
    assert sum(v[0] == 0 for v in values) == 167
    assert fast(framed, values, INTERACTION_MODES, INTERACTION_EVENTS) is not None
    decoded = framed.decode_interactions(values)
    reference = framed._decode_interactions_one_by_one(values)
    assert decoded.errors == reference.errors == []
    assert len(decoded.columns) == 500
    assert_same_columns(decoded.columns, reference.columns)


def test_blocks_with_byte_sizes_decode_as_fastavro_reads_them() -> None:
    """Other writers split arrays and maps into blocks, some with a negative count + size."""
    codec = AvroCodec()
    rng = random.Random(3)
    events = [voice_event(rng, n) | {"context": {}} for n in range(3)]
    bodies = [codec.encode(VOICE_EVENT, e)[10:-1] for e in events]  # without the empty map
    context = zigzag(-1) + zigzag(6) + b"\x04k1\x04v1" + zigzag(1) + b"\x04k2\x00" + b"\x00"
    items = [body + context for body in bodies]
    header = codec.encode_voice_batch(events)[:10]
    payload = zigzag(-2) + zigzag(len(items[0] + items[1])) + items[0] + items[1]
    payload += zigzag(1) + items[2] + b"\x00"
    values = [header + payload]
    columns = fast(codec, values, VOICE_MODES, VOICE_EVENTS)
    assert columns is not None
    assert columns.context.to_pylist() == [[("k1", "v1"), ("k2", "")]] * 3
    decoded = codec.decode_voice_events(values)
    assert_same_columns(decoded.columns, codec._decode_voice_events_one_by_one(values).columns)
    assert decoded.columns.event_id.to_pylist() == [e["event_id"] for e in events]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "trailing byte"),
        (lambda b: b[:10] + b"\x00" + b[11:], "empty event_id"),
        (lambda b: b.replace(b"v-1", b"v-\xff"), "invalid UTF-8"),
        (lambda b: b.replace(b"\x04k1", b"\x04k2"), "a repeated map key"),
        (lambda b: b"\xc3\x01" + bytes(8) + b[10:], "unknown fingerprint"),
    ],
)
def test_records_it_cannot_take_are_left_to_fastavro(change: Any, why: str) -> None:
    codec = AvroCodec()
    event = {**voice_event(random.Random(4), 1), "voice_id": "v-1", "context": {"k1": "a"}}
    event["context"]["k2"] = "b"
    good = codec.encode(VOICE_EVENT, event)
    bad = change(good)
    assert bad != good, why
    assert fast(codec, [good, bad], VOICE_MODES, VOICE_EVENTS) is None
    decoded = codec.decode_voice_events([good, bad])
    assert decoded.columns.record_index.tolist() == ([0, 1] if why == "a repeated map key" else [0])
    if why == "a repeated map key":  # valid Avro: fastavro keeps the last value
        assert decoded.columns.context.to_pylist()[1] == [("k2", "b")]
    else:
        assert [e.index for e in decoded.errors] == [1]


def mutate(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    what = rng.random()
    if what < 0.6:
        at = rng.randrange(10, len(data))
        data[at] = rng.randrange(256)
    elif what < 0.8:
        del data[rng.randrange(10, len(data)) :]
    else:
        data[rng.randrange(10, len(data)) : rng.randrange(10, len(data))] = bytes(
            rng.randrange(256) for _ in range(rng.randint(1, 4))
        )
    return bytes(data)


@pytest.mark.parametrize("kind", ["voice", "interaction"])
def test_damaged_records_never_decode_to_more_than_fastavro_gives(kind: str) -> None:
    rng = random.Random(5)
    codec = AvroCodec()
    if kind == "voice":
        originals = voice_records(codec, rng, 60)
        modes, program, decode = VOICE_MODES, VOICE_EVENTS, codec.decode_voice_events
        reference = codec._decode_voice_events_one_by_one
    else:
        originals = [codec.encode(INTERACTION_EVENT, interaction(rng, n)) for n in range(60)]
        modes, program, decode = (
            INTERACTION_MODES,
            INTERACTION_EVENTS,
            codec.decode_interactions,
        )
        reference = codec._decode_interactions_one_by_one
    taken = left = 0
    for _ in range(400):
        value = mutate(rng, rng.choice(originals))
        if fast(codec, [value], modes, program) is None:
            left += 1
            continue
        taken += 1
        mine, theirs = decode([value]), reference([value])
        assert mine.errors == theirs.errors
        assert_same_columns(mine.columns, theirs.columns)
    # Both outcomes occur, so the comparison above is not vacuous.
    assert taken > 50 and left > 50, (taken, left)
    batch = [mutate(rng, v) if rng.random() < 0.3 else v for v in originals]
    mine, theirs = decode(batch), reference(batch)
    assert mine.errors == theirs.errors
    assert_same_columns(mine.columns, theirs.columns)
