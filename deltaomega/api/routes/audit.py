"""The audit log, for admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import AuditEvent, AuditList
from deltaomega.api.params import End, Limit, Start, time_range
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditList,
    summary="Writes, approvals, automatic actions and refused requests, newest first",
    **requires(Role.ADMIN),
)
async def list_audit_events(
    ctx: ContextDep,
    principal: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
    action: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=300,
            description="e.g. 'api_key.create' or 'GET /api/v1/predictions'.",
        ),
    ] = None,
    outcome: Literal["OK", "DENIED", "FAILED"] | None = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> AuditList:
    """Events that occurred in [start, end), filtered by principal, action and outcome."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.audit(principal, action, outcome, from_ms, to_ms, limit)
    return AuditList(events=[AuditEvent.from_row(r) for r in rows])
