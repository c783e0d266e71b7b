"""The interaction matrix with harmony and conflict scores, and predicted conflicts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.matrix import build_matrix
from deltaomega.api.models import (
    ConflictList,
    ConflictPrediction,
    HarmonyPoint,
    HarmonySeries,
    InteractionMatrix,
    PairScore,
)
from deltaomega.api.params import End, Limit, Name, Start, time_range
from deltaomega.errors import ValidationError
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/interactions", tags=["interactions"])

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = r"^[1-9][0-9]{0,5}[smhd]$"
#: The longest matrix window: a year (and a day), far more than any table keeps by default.
MAX_WINDOW_MS = 366 * _UNITS["d"]


def duration_ms(text: str, field: str = "window") -> int:
    """The span in ms; a 422 naming ``field`` beyond MAX_WINDOW_MS."""
    match = re.match(r"^(\d+)([smhd])$", text)
    assert match is not None  # the Query pattern already checked it
    span = int(match.group(1)) * _UNITS[match.group(2)]
    if span > MAX_WINDOW_MS:
        raise ValidationError(field, f"must be at most 366d, got {text}")
    return span


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@router.get("/matrix", response_model=InteractionMatrix, **requires(Role.VIEWER))
async def read_interaction_matrix(
    ctx: ContextDep,
    window: Annotated[
        str,
        Query(
            pattern=_DURATION,
            description="How far back from the newest closed window: "
            "a number and s, m, h or d (e.g. 30s, 5m, 1h), at most 366d.",
        ),
    ] = "5m",
) -> InteractionMatrix:
    span = duration_ms(window)
    rows, end = await ctx.queries.interaction_totals(span, ctx.settings.interaction_window_ms)
    result = build_matrix(rows)
    return InteractionMatrix(
        window=window,
        window_start=_time(None if end is None else end - span),
        window_end=_time(end),
        voices=result.voices,
        matrices=result.matrices,
        harmony=result.harmony,
        conflict=result.conflict,
        pairs=[PairScore(**p) for p in result.pairs],
    )


@router.get(
    "/conflicts",
    response_model=ConflictList,
    summary="Predicted conflicts per ordered pair, newest window first",
    **requires(Role.ANALYST),
)
async def list_conflict_predictions(
    ctx: ContextDep,
    min_probability: Annotated[float, Query(ge=0.0, le=1.0)] = 0.5,
    source: Name = None,
    target: Name = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> ConflictList:
    """Pairs whose conflict probability is at least ``min_probability``, per window."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.conflict_predictions(
        min_probability, source, target, from_ms, to_ms, limit
    )
    return ConflictList(conflicts=[ConflictPrediction.from_row(r) for r in rows])


@router.get(
    "/harmony",
    response_model=HarmonySeries,
    summary="Harmony and conflict per interaction window, of one pair or the whole system",
    **requires(Role.VIEWER),
)
async def read_harmony(
    ctx: ContextDep,
    start: Start = None,
    end: End = None,
    source: Name = None,
    target: Name = None,
) -> HarmonySeries:
    """Windows starting in [start, end) that have links (of the pair, when ``source`` and
    ``target`` are both given), oldest first."""
    if (source is None) != (target is None):
        raise ValidationError("target" if source else "source", "a pair needs both ends")
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.harmony_series(source, target, from_ms, to_ms)
    return HarmonySeries(
        source=source,
        target=target,
        windows=[
            HarmonyPoint(
                window_start=datetime.fromtimestamp(r["start"] / 1000, UTC),
                strength=r["total"],
                harmony=(r["support"] - r["against"]) / r["total"],
                conflict=r["against"] / r["total"],
            )
            for r in rows
            if r["total"] > 0
        ],
    )
