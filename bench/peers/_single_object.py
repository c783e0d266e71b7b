"""Our voice events as a peer reads them: the 10-byte single-object header, then fastavro.

Imports nothing from ``deltaomega`` (the peers run in their own virtualenvs); it reads the
repository's ``voice_event.avsc`` and checks each record's magic and CRC-64-AVRO
fingerprint before decoding the body with ``fastavro.schemaless_reader``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER = 10
METRICS = ("temperature", "activation", "stress", "influence")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "deltaomega" / "schemas" / "voice_event.avsc"


def _strip_logical_types(schema: Any) -> Any:
    # As our codec does: ``ts`` stays an epoch-millis int instead of a datetime.
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(v) for v in schema]
    return schema


class VoiceEventDecoder:
    """``decoder(value)`` → the event as a dict; ValueError for anything else."""

    def __init__(self, schema_path: Path = SCHEMA_PATH) -> None:
        raw = _strip_logical_types(json.loads(schema_path.read_text("utf-8")))
        self.schema = parse_schema(raw)
        canonical = to_parsing_canonical_form(parse_schema(raw, _write_hint=False))
        self.fingerprint = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))

    def __call__(self, value: bytes) -> dict[str, Any]:
        if value[:2] != MAGIC or value[2:HEADER] != self.fingerprint:
            raise ValueError("not a VoiceEvent in Avro single-object encoding")
        buf = io.BytesIO(value)
        buf.seek(HEADER)
        return schemaless_reader(buf, self.schema)


def result_line(peer: str, events: int, seconds: float, windows_closed: int, **extra: Any) -> str:
    """The one JSON line a peer prints; ``bench.peers_throughput`` reads the last one."""
    return json.dumps(
        {
            "peer": peer,
            "events": events,
            "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds, 1),
            "windows_closed": windows_closed,
            **extra,
        }
    )
