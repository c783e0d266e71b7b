"""Avro records as JSON for clients: the feeds' payloads, with each ``timestamp-millis``
field as an ISO-8601 UTC string."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from deltaomega.schemas.codec import AvroCodec

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMPS: dict[str, frozenset[str]] = {}


def iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def timestamp_fields(codec: AvroCodec, schema: str) -> frozenset[str]:
    """The record's ``timestamp-millis`` fields, read once from its schema."""
    found = _TIMESTAMPS.get(schema)
    if found is None:
        found = _TIMESTAMPS[schema] = frozenset(
            f["name"]
            for f in codec.schema(schema).expanded["fields"]
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
        )
    return found


def record_view(codec: AvroCodec, schema: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record with its epoch-millis timestamps as ISO-8601 UTC."""
    out = dict(record)
    for name in timestamp_fields(codec, schema):
        if out.get(name) is not None:
            out[name] = iso(out[name])
    return out


def record_json(codec: AvroCodec, schema: str, record: dict[str, Any]) -> str:
    return json.dumps(record_view(codec, schema, record))
