"""The sink's timestamp fields are read from the schemas, and no schema uses one of those
names for anything else (which the sink would store as a time)."""

from __future__ import annotations

from typing import Any

import pytest

from deltaomega.schemas._loader import bundled_schemas
from deltaomega.sinks.clickhouse import TIMESTAMP_FIELDS


def _is_millis(field_type: Any) -> bool:
    branches = field_type if isinstance(field_type, list) else [field_type]
    return any(isinstance(t, dict) and t.get("logicalType") == "timestamp-millis" for t in branches)


@pytest.mark.parametrize("name", sorted(bundled_schemas()))
def test_timestamp_fields_are_exactly_the_timestamp_millis_fields(name: str) -> None:
    fields = bundled_schemas()[name].expanded["fields"]
    millis = {f["name"] for f in fields if _is_millis(f["type"])}
    assert millis == {f["name"] for f in fields} & TIMESTAMP_FIELDS


def test_every_time_of_the_alert_records_is_one() -> None:
    # the alert conditions' times were once stored as seconds (year 9999)
    assert {"first_window", "last_window", "opened_at", "at", "until", "attempted_at"} <= (
        TIMESTAMP_FIELDS
    )
