"""Load the bundled .avsc files once: expanded schemas, parsed forms and fingerprints."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from deltaomega.errors import SchemaError

# Load order matters: later files refer to names defined by earlier ones.
_FILES = (
    "voice_event.avsc",
    "voice_event_batch.avsc",
    "interaction_event.avsc",
    "voice_state.avsc",
    "interaction_state.avsc",
    "prediction.avsc",
    "conflict_prediction.avsc",
    "emergence.avsc",
    "pattern.avsc",
    "alert.avsc",
    "audit_event.avsc",
    "parameter_change.avsc",
    "orchestration_event.avsc",
    "orchestration_status.avsc",
    "voice_command.avsc",
    "alert_action.avsc",
    "alert_condition.avsc",
    "alert_delivery.avsc",
    "prediction_score.avsc",
)


@dataclass(frozen=True)
class BundledSchema:
    name: str
    #: The schema as published (logical types kept), every named type inlined.
    expanded: dict[str, Any]
    #: Parsed with logical types stripped: timestamps stay epoch-millis ints, which is
    #: both what the stream code wants and several times faster than datetimes.
    parsed_raw: Any
    #: 8-byte little-endian CRC-64-AVRO fingerprint of the Parsing Canonical Form.
    fingerprint: bytes


def strip_logical_types(schema: Any) -> Any:
    """Drop ``logicalType`` everywhere; the binary encoding does not change."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


def fingerprint_of(schema: Any) -> bytes:
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(schema), _write_hint=False))
    # fastavro renders the 64-bit value as its little-endian bytes in hex: the exact
    # 8 bytes single-object encoding puts after the C3 01 marker.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@cache
def bundled_schemas() -> dict[str, BundledSchema]:
    """Every bundled schema by full name (e.g. ``deltaomega.VoiceEvent``)."""
    named: dict[str, Any] = {}
    out: dict[str, BundledSchema] = {}
    package = resources.files("deltaomega.schemas")
    for filename in _FILES:
        try:
            raw = json.loads(package.joinpath(filename).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"cannot load bundled schema {filename}") from exc
        parse_schema(copy.deepcopy(raw), named_schemas=named)
        expanded: Any = parse_schema(copy.deepcopy(raw), named_schemas=dict(named), expand=True)
        name = f"{raw['namespace']}.{raw['name']}"
        stripped = strip_logical_types(expanded)
        out[name] = BundledSchema(
            name=name,
            expanded=_clean(expanded),
            parsed_raw=parse_schema(copy.deepcopy(stripped)),
            fingerprint=fingerprint_of(stripped),
        )
    return out


def _clean(schema: Any) -> Any:
    """Remove fastavro's private bookkeeping keys so the schema can be published."""
    if isinstance(schema, dict):
        return {k: _clean(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


@cache
def timestamp_fields() -> frozenset[str]:
    """Every top-level field that is ``timestamp-millis`` (or null or one) in some bundled
    schema: decoded, they are epoch-millis ints that a table stores as DateTime64."""
    names = set()
    for schema in bundled_schemas().values():
        for field in schema.expanded["fields"]:
            branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
            if any(
                isinstance(t, dict) and t.get("logicalType") == "timestamp-millis" for t in branches
            ):
                names.add(field["name"])
    return frozenset(names)
