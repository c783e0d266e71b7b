"""Voices, their latest state and their history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Path, Query

from deltaomega.api import trends
from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep
from deltaomega.api.models import (
    TrendChangePoint,
    TrendWindow,
    VoiceHistory,
    VoiceList,
    VoiceState,
    VoiceStateResponse,
    VoiceSummary,
    VoiceTrend,
)
from deltaomega.api.params import End, Limit, time_range
from deltaomega.api.problems import problem_responses
from deltaomega.errors import NotFoundError, ValidationError
from deltaomega.schemas.records import ID_RULE, MAX_ID_LENGTH, METRICS
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/voices", tags=["voices"], responses=problem_responses(404))

#: Any id the pipeline stores. Percent-encode it in the path (``a%2Fb`` or ``a/b`` for
#: ``a/b``: the route takes the rest of the path up to the last ``/state``, ``/history`` or
#: ``/trends``).
VoiceId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description=f"A voice id: {ID_RULE}.")
]
Metric = Literal["temperature", "activation", "stress", "influence"]
assert get_args(Metric) == METRICS
#: the most closed windows a trend reads
_TREND_WINDOWS = 10_000
From = Annotated[
    datetime | None,
    Query(
        alias="from",
        description="Window start ≥ this. Unset: the default range (API_DEFAULT_RANGE_HOURS, "
        "24 h) before `to`, or before now.",
    ),
]


async def _checked_history(
    ctx: ApiContext,
    voice_id: str,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    include: bool = True,
) -> list[VoiceState] | None:
    """Validate the range and the voice (422, 404), then read its windows in [from, to)."""
    start, end = time_range(from_, to, ctx.settings.api_default_range_ms, "from", "to")
    if not await ctx.queries.voice_exists(voice_id):
        raise NotFoundError("voice", voice_id)
    if not include:
        return None
    rows = await ctx.queries.state_history(voice_id, start, end, limit)
    return [VoiceState.from_row(r) for r in rows]


@router.get(
    "",
    response_model=VoiceList,
    summary="Every known voice with its latest state",
    **requires(Role.VIEWER),
)
async def list_voices(ctx: ContextDep) -> VoiceList:
    latest = {r["voice_id"]: r for r in await ctx.queries.latest_states()}
    ids = sorted(set(await ctx.queries.voice_ids()) | set(latest))
    return VoiceList(
        voices=[
            VoiceSummary(voice_id=v, state=VoiceState.from_row(latest[v]) if v in latest else None)
            for v in ids
        ]
    )


@router.get("/{voice_id:path}/state", response_model=VoiceStateResponse, **requires(Role.VIEWER))
async def read_voice_state(
    ctx: ContextDep,
    voice_id: VoiceId,
    include_history: bool = False,
    from_: From = None,
    to: End = None,
    limit: Limit = 1000,
) -> VoiceStateResponse:
    """The voice's latest closed window, and optionally its windows in [from, to)."""
    history = await _checked_history(ctx, voice_id, from_, to, limit, include_history)
    latest = await ctx.queries.latest_state(voice_id)
    return VoiceStateResponse(
        voice_id=voice_id,
        state=None if latest is None else VoiceState.from_row(latest),
        history=history,
    )


@router.get("/{voice_id:path}/history", response_model=VoiceHistory, **requires(Role.VIEWER))
async def read_voice_history(
    ctx: ContextDep,
    voice_id: VoiceId,
    from_: From = None,
    to: End = None,
    limit: Limit = 1000,
) -> VoiceHistory:
    """Closed windows of one voice in [from, to), oldest first."""
    states = await _checked_history(ctx, voice_id, from_, to, limit)
    return VoiceHistory(voice_id=voice_id, states=states or [])


@router.get(
    "/{voice_id:path}/trends",
    response_model=VoiceTrend,
    summary="A metric's slope, change, hopping windows and change points over a range",
    **requires(Role.VIEWER),
)
async def read_voice_trend(
    ctx: ContextDep,
    voice_id: VoiceId,
    metric: Metric = "stress",
    from_: From = None,
    to: End = None,
    size_seconds: Annotated[int, Query(ge=1, le=86_400, description="Hopping window size.")] = 60,
    hop_seconds: Annotated[int, Query(ge=1, le=86_400, description="Every this often.")] = 10,
) -> VoiceTrend:
    """Over the voice's closed windows in [from, to) (see deltaomega/api/trends.py)."""
    if hop_seconds > size_seconds:
        raise ValidationError("hop_seconds", "must not be more than size_seconds")
    states = await _checked_history(ctx, voice_id, from_, to, _TREND_WINDOWS) or []
    starts = [_ms(s.window_start) for s in states]
    means = [getattr(s, metric).mean for s in states]
    counts = [s.count for s in states]
    return VoiceTrend(
        voice_id=voice_id,
        metric=metric,
        windows=len(states),
        slope_per_minute=trends.slope_per_minute(starts, means),
        change=means[-1] - means[0] if means else None,
        hopping=[
            TrendWindow(start=_at(h.start_ms), end=_at(h.end_ms), mean=h.mean, count=h.count)
            for h in trends.hopping(starts, means, counts, size_seconds * 1000, hop_seconds * 1000)
        ],
        change_points=[
            TrendChangePoint(at=_at(c.at_ms), before=c.before, after=c.after)
            for c in trends.change_points(starts, means)
        ],
    )


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
