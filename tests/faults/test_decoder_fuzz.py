"""The decoders under arbitrary bytes and mutated records: the typed decode error and
nothing else, every record accounted for (accepted or rejected with a reason), and the
intact records of a batch decoded exactly whatever their neighbours hold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltaomega.errors import DecodeError
from deltaomega.schemas import INTERACTION_EVENT, VOICE_EVENT, AvroCodec
from deltaomega.schemas.records import INTERACTION_KINDS, MAX_ID_LENGTH, VOICE_STATE

pytestmark = pytest.mark.faults

CODEC = AvroCodec()
T0 = 1_800_000_000_000
FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(min_size=1, max_size=MAX_ID_LENGTH + 4)
unit = st.one_of(st.floats(min_value=-0.5, max_value=1.5), st.just(float("nan")))
voice_events = st.fixed_dictionaries(
    {
        "event_id": ids,
        "voice_id": ids,
        "ts": st.integers(min_value=T0 - 10**12, max_value=T0 + 10**13),
        "temperature": st.floats(allow_nan=True, allow_infinity=True),
        "activation": unit,
        "stress": unit,
        "influence": unit,
        "context": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    }
)
interactions = st.fixed_dictionaries(
    {
        "event_id": ids,
        "ts": st.integers(min_value=T0 - 10**12, max_value=T0 + 10**13),
        "source": ids,
        "target": ids,
        "kind": st.sampled_from(INTERACTION_KINDS),
        "strength": unit,
        "context": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    }
)


def encoded_voice(record: dict[str, Any]) -> bytes:
    return CODEC.encode(VOICE_EVENT, record, validate=False)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid record with bytes flipped, cut, inserted or spliced from elsewhere."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "extend"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        else:
            data += draw(st.binary(min_size=1, max_size=12))
    return bytes(data)


def assert_accounted(decoded: Any, records: int) -> None:
    """Each record is accepted (its rows present) or rejected with a reason, never both."""
    rejected = [e.index for e in decoded.errors]
    assert len(rejected) == len(set(rejected))
    assert all(e.reason and e.error_type for e in decoded.errors)
    accepted = set(decoded.columns.record_index.tolist())
    assert not accepted & set(rejected)
    assert accepted | set(rejected) <= set(range(records))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_a_decode_error_or_a_record(data: bytes) -> None:
    try:
        name, record = CODEC.decode(data)
    except DecodeError:
        return
    assert isinstance(name, str) and isinstance(record, dict)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=200), st.none()), max_size=12))
def test_a_batch_of_arbitrary_bytes_never_raises(values: list[bytes | None]) -> None:
    for decode in (CODEC.decode_voice_events, CODEC.decode_interactions):
        decoded = decode(values)
        assert_accounted(decoded, len(values))
    good, errors = CODEC.decode_many(values, VOICE_STATE)
    assert len(good) + len(errors) == len(values)


@FUZZ
@given(st.data(), st.lists(voice_events, min_size=1, max_size=6))
def test_mutated_voice_records_beside_intact_ones(data: st.DataObject, events: list) -> None:
    values = [encoded_voice(e) for e in events]
    broken = data.draw(st.sets(st.integers(0, len(values) - 1)))
    batch = [data.draw(mutated(v)) if i in broken else v for i, v in enumerate(values)]
    decoded = CODEC.decode_voice_events(batch)
    assert_accounted(decoded, len(batch))
    # Intact records: accepted exactly when they are valid, and with their exact values.
    for i, event in enumerate(events):
        if i in broken or batch[i] != values[i]:
            continue
        alone = CODEC.decode_voice_events([values[i]])
        rows = np.flatnonzero(decoded.columns.record_index == i)
        if alone.errors:
            assert i in {e.index for e in decoded.errors}
            assert [e.reason for e in decoded.errors if e.index == i] == [alone.errors[0].reason]
            continue
        assert len(rows) == 1
        row = int(rows[0])
        assert decoded.columns.event_id[row].as_py() == event["event_id"]
        assert decoded.columns.voice_id[row].as_py() == event["voice_id"]
        assert int(decoded.columns.ts[row]) == event["ts"]
        assert decoded.columns.metrics[row].tolist() == [
            event[m] for m in ("temperature", "activation", "stress", "influence")
        ]


@FUZZ
@given(st.data(), st.lists(interactions, min_size=1, max_size=6))
def test_mutated_interactions_beside_intact_ones(data: st.DataObject, events: list) -> None:
    values = [CODEC.encode(INTERACTION_EVENT, e, validate=False) for e in events]
    broken = data.draw(st.sets(st.integers(0, len(values) - 1)))
    batch = [data.draw(mutated(v)) if i in broken else v for i, v in enumerate(values)]
    decoded = CODEC.decode_interactions(batch)
    assert_accounted(decoded, len(batch))
    for i, event in enumerate(events):
        if i in broken or batch[i] != values[i]:
            continue
        alone = CODEC.decode_interactions([values[i]])
        accepted = i in set(decoded.columns.record_index.tolist())
        assert accepted == (not alone.errors)
        if accepted:
            row = int(np.flatnonzero(decoded.columns.record_index == i)[0])
            assert decoded.columns.source[row].as_py() == event["source"]
            assert float(decoded.columns.strength[row]) == event["strength"]


@FUZZ
@given(st.lists(voice_events, min_size=1, max_size=8), st.integers(2, 5))
def test_batch_records_are_accepted_or_rejected_whole(events: list, size: int) -> None:
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    values = [
        CODEC.encode("deltaomega.VoiceEventBatch", {"events": c}, validate=False) for c in chunks
    ]
    decoded = CODEC.decode_voice_events(values)
    assert_accounted(decoded, len(values))
    counts = np.bincount(decoded.columns.record_index, minlength=len(values))
    for i, chunk in enumerate(chunks):
        assert counts[i] in (0, len(chunk))
