"""The interaction monitor and on-demand analysis (see :mod:`deltaomega.api.monitor`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep
from deltaomega.api.monitor import MonitorReport, analyse
from deltaomega.api.params import millis
from deltaomega.api.routes.interactions import duration_ms
from deltaomega.errors import ValidationError
from deltaomega.schemas.records import INTERACTION_KINDS, MAX_ID_LENGTH, InteractionKind
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/interactions", tags=["interactions"])

_POLL_SECONDS = 1.0


def _pairs(text: str | None) -> list[tuple[str, str]] | None:
    """``a->b,c->d`` as pairs; a 422 naming ``voice_pairs`` for anything else."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        source, arrow, target = item.strip().partition("->")
        if not arrow or not source or not target or max(len(source), len(target)) > MAX_ID_LENGTH:
            raise ValidationError("voice_pairs", f"must be source->target pairs, got {item!r}")
        pairs.append((source, target))
    return pairs


def _kinds(text: str | None) -> list[str] | None:
    if not text:
        return None
    kinds = [k.strip().upper() for k in text.split(",")]
    unknown = [k for k in kinds if k not in INTERACTION_KINDS]
    if unknown:
        raise ValidationError(
            "interaction_types", f"must be among {', '.join(INTERACTION_KINDS)}, got {unknown[0]}"
        )
    return kinds


async def _range(ctx: ApiContext, span_ms: int) -> tuple[int, int]:
    """The span up to the end of the newest closed interaction window (or now)."""
    newest = await ctx.queries.newest_interaction_window()
    end = (
        newest + ctx.settings.interaction_window_ms
        if newest is not None
        else int(time.time() * 1000)
    )
    return end - span_ms, end


_MONITOR = requires(Role.ANALYST, RouteClass.MONITOR)
_MONITOR["responses"][200] = {
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@router.get(
    "/monitor",
    response_model=MonitorReport,
    summary="The interaction monitor: matrix, harmony, patterns, conflicts, accuracy, alerts",
    response_description="JSON, or with real_time=true a text/event-stream of 'monitor' events",
    **_MONITOR,
)
async def monitor(
    ctx: ContextDep,
    voice_pairs: Annotated[
        str | None, Query(description="source->target pairs joined by commas; unset: all.")
    ] = None,
    interaction_types: Annotated[
        str | None, Query(description=f"Kinds joined by commas: {', '.join(INTERACTION_KINDS)}.")
    ] = None,
    time_window: Annotated[
        str,
        Query(
            pattern=r"^[1-9][0-9]{0,5}[smhd]$",
            description="Back from the newest closed interaction window (e.g. 5m, 1h).",
        ),
    ] = "5m",
    real_time: bool = False,
) -> MonitorReport | EventSourceResponse:
    pairs, kinds = _pairs(voice_pairs), _kinds(interaction_types)
    span = duration_ms(time_window, "time_window")
    if not real_time:
        return await analyse(ctx.queries, *await _range(ctx, span), pairs, kinds)

    async def reports() -> AsyncIterator[bytes]:
        """A report each time a new interaction window has closed."""
        seen: int | None = None
        while True:
            newest = await ctx.queries.newest_interaction_window()
            if newest is not None and newest != seen:
                seen = newest
                report = await analyse(ctx.queries, *await _range(ctx, span), pairs, kinds)
                yield ServerSentEvent(report.model_dump_json(), event="monitor").encode()
            await asyncio.sleep(_POLL_SECONDS)

    return EventSourceResponse(reports(), ping=int(ctx.settings.sse_ping_seconds))


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    voice_pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] | None = Field(
        default=None, max_length=1000, description="[source, target] pairs; unset: all."
    )
    interaction_types: list[InteractionKind] | None = None


@router.post(
    "/analyze",
    response_model=MonitorReport,
    summary="The monitor's analysis over a chosen time range and pairs, on demand",
    **requires(Role.ANALYST),
)
async def analyze(ctx: ContextDep, body: AnalyzeRequest) -> MonitorReport:
    start, end = millis(body.start), millis(body.end)
    assert start is not None and end is not None
    if start >= end:
        raise ValidationError("start", "must be earlier than 'end'")
    if end - start > 366 * 86_400_000:
        raise ValidationError("end", "the range may span at most 366 days")
    pairs = [(p[0], p[1]) for p in body.voice_pairs] if body.voice_pairs else None
    kinds = [str(k) for k in body.interaction_types] if body.interaction_types else None
    return await analyse(ctx.queries, start, end, pairs, kinds)
