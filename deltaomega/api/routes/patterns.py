"""The system's interaction pattern per window, from the pattern classifier."""

from __future__ import annotations

from fastapi import APIRouter

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import Pattern, PatternList
from deltaomega.api.params import End, Limit, Start, time_range
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/patterns", tags=["patterns"])


@router.get(
    "",
    response_model=PatternList,
    summary="Pattern classes, newest window first",
    **requires(Role.ANALYST),
)
async def list_patterns(
    ctx: ContextDep, start: Start = None, end: End = None, limit: Limit = 500
) -> PatternList:
    """Pattern, complexity and novelty of windows starting in [start, end)."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.patterns(from_ms, to_ms, limit)
    return PatternList(patterns=[Pattern.from_row(r) for r in rows])
