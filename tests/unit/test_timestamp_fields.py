"""The sink's list of timestamp fields matches the schemas of every record it stores."""

from __future__ import annotations

import pytest

from deltaomega.schemas import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    INTERACTION_STATE,
    PATTERN,
    PREDICTION,
    VOICE_STATE,
)
from deltaomega.sinks.clickhouse import TIMESTAMP_FIELDS


@pytest.mark.parametrize(
    "name",
    [VOICE_STATE, INTERACTION_STATE, PREDICTION, CONFLICT_PREDICTION, EMERGENCE, PATTERN, ALERT],
)
def test_timestamp_fields_are_exactly_the_timestamp_millis_fields(name: str) -> None:
    fields = AvroCodec().schema(name).expanded["fields"]
    millis = {
        f["name"]
        for f in fields
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
    }
    assert millis == {f["name"] for f in fields} & TIMESTAMP_FIELDS
