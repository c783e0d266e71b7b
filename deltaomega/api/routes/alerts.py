"""Alerts raised by rules over model outputs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import Alert, AlertList
from deltaomega.api.params import (
    End,
    Limit,
    Name,
    Severity,
    Start,
    canonical_severity,
    time_range,
)
from deltaomega.schemas.records import MAX_ID_LENGTH
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get(
    "", response_model=AlertList, summary="Alerts, newest window first", **requires(Role.VIEWER)
)
async def list_alerts(
    ctx: ContextDep,
    severity: Severity = None,
    rule: Name = None,
    subject: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=2 * MAX_ID_LENGTH + 2,
            description="A voice id, 'source->target' or 'system'.",
        ),
    ] = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> AlertList:
    """Alerts for windows starting in [start, end), filtered by severity, rule and subject."""
    wanted = canonical_severity(severity)
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.alerts(wanted, rule, subject, from_ms, to_ms, limit)
    return AlertList(alerts=[Alert.from_row(r) for r in rows])
