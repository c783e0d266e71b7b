"""Range checks: per record on the write side, vectorised per batch on the read side."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from deltaomega.errors import ValidationError
from deltaomega.schemas.records import (
    ID_FORBIDDEN,
    INTERACTION_KINDS,
    MAX_ID_LENGTH,
    METRIC_RANGES,
    METRICS,
)

#: Event times outside [2000-01-01, 2200-01-01) are certainly wrong units (s vs ms) or garbage.
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 7_258_118_400_000


_FORBIDDEN = re.compile(ID_FORBIDDEN)


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id, or None (the rule of :data:`ID_RULE`)."""
    if not value.strip():
        return "is missing or empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, more than {MAX_ID_LENGTH}"
    found = _FORBIDDEN.search(value)
    if found is not None:
        return f"holds the control character 0x{ord(found.group()):02x} at {found.start()}"
    return None


def _check_id(record: Mapping[str, Any], name: str) -> None:
    value = record.get(name)
    problem = id_problem(value) if isinstance(value, str) else "is missing or empty"
    if problem is not None:
        raise ValidationError(name, problem)


def _surely_valid(strings: pa.StringArray) -> bool:
    """Every id fits the rule, by checks on the whole column (the common case, fast): no
    control byte anywhere in the data (UTF-8 continuation bytes are all ≥ 0x80), none longer
    than the limit even in bytes, none blank."""
    data = strings.buffers()[2]
    if data is not None:
        raw = np.frombuffer(data, np.uint8)
        if bool(((raw < 0x20) | (raw == 0x7F)).any()):
            return False
    lengths = pc.binary_length(strings)
    if pc.max(lengths).as_py() > MAX_ID_LENGTH or pc.min(lengths).as_py() == 0:
        return False
    return not pc.any(pc.utf8_is_space(strings)).as_py()


def bad_ids(columns: Mapping[str, pa.StringArray]) -> dict[int, str]:
    """Rows (index → reason) whose id columns break the id rule; vectorised, so a clean
    batch costs a few Arrow kernels."""
    reasons: dict[int, str] = {}
    for name, strings in columns.items():
        if len(strings) == 0 or _surely_valid(strings):
            continue
        ok = pc.and_(
            pc.less_equal(pc.utf8_length(strings), MAX_ID_LENGTH),
            pc.invert(pc.match_substring_regex(strings, ID_FORBIDDEN)),
        )
        ok = pc.and_(ok, pc.invert(pc.match_substring_regex(strings, r"^\s*$")))
        failed = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
        for row in failed.tolist():
            if row not in reasons:
                problem = id_problem(strings[row].as_py()) or "is not a valid id"
                reasons[row] = f"{name}: {problem}"
    return reasons


def _check_ts(ts: Any) -> None:
    if not isinstance(ts, int) or isinstance(ts, bool) or not TS_MIN_MS <= ts < TS_MAX_MS:
        raise ValidationError("ts", f"must be epoch milliseconds in [2000, 2200), got {ts!r}")


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValidationError(name, f"must be a number, got {value!r}")
    if math.isnan(value):
        raise ValidationError(name, "NaN is not allowed")
    if math.isinf(value):
        raise ValidationError(name, "infinity is not allowed")
    if not low <= value <= high:
        raise ValidationError(name, f"must be in [{low}, {high}], got {value}")


def validate_voice_event(record: Mapping[str, Any]) -> None:
    _check_id(record, "event_id")
    _check_id(record, "voice_id")
    _check_ts(record.get("ts"))
    for name in METRICS:
        low, high = METRIC_RANGES[name]
        _check_number(name, record.get(name), low, high)


def validate_interaction_event(record: Mapping[str, Any]) -> None:
    _check_id(record, "event_id")
    _check_id(record, "source")
    _check_id(record, "target")
    _check_ts(record.get("ts"))
    if record.get("kind") not in INTERACTION_KINDS:
        raise ValidationError("kind", f"unknown interaction kind {record.get('kind')!r}")
    strength = record.get("strength")
    if isinstance(strength, int | float) and not isinstance(strength, bool) and strength < 0:
        raise ValidationError("strength", f"must not be negative, got {strength}")
    _check_number("strength", strength, 0.0, 1.0)


def _describe(name: str, value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return f"{name}: NaN is not allowed"
    if math.isinf(value):
        return f"{name}: infinity is not allowed"
    if name == "strength" and value < 0:
        return f"{name}: must not be negative, got {value}"
    return f"{name}: must be in [{low}, {high}], got {value}"


def bad_rows(
    names: tuple[str, ...],
    values: NDArray[np.float64],
    ts: NDArray[np.int64],
) -> dict[int, str]:
    """Rows (index → reason) whose timestamp or any metric is out of range.

    ``values`` has one column per name. Only the failing rows are examined one by one,
    so a clean batch costs a few vectorised comparisons.
    """
    ok = (ts >= TS_MIN_MS) & (ts < TS_MAX_MS)
    lows = np.array([_range(n)[0] for n in names])
    highs = np.array([_range(n)[1] for n in names])
    # NaN compares False, so NaN rows fail these range checks too.
    ok &= np.all((values >= lows) & (values <= highs), axis=1)
    reasons: dict[int, str] = {}
    for row in np.flatnonzero(~ok).tolist():
        if not TS_MIN_MS <= int(ts[row]) < TS_MAX_MS:
            reasons[row] = f"ts: must be epoch milliseconds in [2000, 2200), got {int(ts[row])}"
            continue
        for col, name in enumerate(names):
            value = float(values[row, col])
            low, high = _range(name)
            if not low <= value <= high:
                reasons[row] = _describe(name, value, low, high)
                break
    return reasons


def _range(name: str) -> tuple[float, float]:
    return METRIC_RANGES.get(name, (0.0, 1.0))
