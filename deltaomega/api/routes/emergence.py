"""System-level emergence scores per window, from the emergence detector."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import Emergence, EmergenceList
from deltaomega.api.params import End, Limit, Start, time_range
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/emergence", tags=["emergence"])


@router.get(
    "",
    response_model=EmergenceList,
    summary="Emergence scores, newest window first",
    **requires(Role.ANALYST),
)
async def list_emergence(
    ctx: ContextDep,
    detected: Annotated[
        bool | None, Query(description="Only windows where emergence was (not) detected.")
    ] = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> EmergenceList:
    """Emergence probability and type of windows starting in [start, end)."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.emergence(detected, from_ms, to_ms, limit)
    return EmergenceList(emergence=[Emergence.from_row(r) for r in rows])
