"""Query parameters shared by the read routes: time ranges, limits, names and severities."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query

from deltaomega.errors import ValidationError
from deltaomega.schemas.records import ID_RULE, MAX_ID_LENGTH, SEVERITIES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many rows.")]
Start = Annotated[
    datetime | None,
    Query(
        description="Window start ≥ this (ISO 8601; no zone means UTC). Unset: the "
        "default range (API_DEFAULT_RANGE_HOURS, 24 h) before `end`, or before now."
    ),
]
End = Annotated[datetime | None, Query(description="Window start < this.")]
Name = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_ID_LENGTH, description=f"An id: {ID_RULE}."),
]
Severity = Annotated[str | None, Query(description=f"One of {', '.join(SEVERITIES)}, in any case.")]


def millis(value: datetime | None) -> int | None:
    """Exact epoch milliseconds (no float rounding); a time without a zone is UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def time_range(
    start: datetime | None,
    end: datetime | None,
    default_span_ms: int,
    start_field: str = "start",
    end_field: str = "end",
) -> tuple[int, int | None]:
    """[start, end) in epoch milliseconds; 422 naming ``start_field`` when it is empty.

    Every read is bounded: without a start, the range begins ``default_span_ms`` before
    its end (or before now), so no request reads a whole table.
    """
    first, last = millis(start), millis(end)
    if first is not None and last is not None and first >= last:
        raise ValidationError(start_field, f"must be earlier than '{end_field}'")
    if first is None:
        first = (last if last is not None else int(time.time() * 1000)) - default_span_ms
    return first, last


def canonical_severity(value: str | None, field: str = "severity") -> str | None:
    """The canonical (upper-case) severity, or a 422 naming ``field``."""
    if value is None:
        return None
    canonical = value.strip().upper()
    if canonical not in SEVERITIES:
        raise ValidationError(field, f"must be one of {', '.join(SEVERITIES)}, got {value!r}")
    return canonical
