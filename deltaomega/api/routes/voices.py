"""Voices, their latest state and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep
from deltaomega.api.models import (
    VoiceHistory,
    VoiceList,
    VoiceState,
    VoiceStateResponse,
    VoiceSummary,
)
from deltaomega.api.params import End, Limit, time_range
from deltaomega.api.problems import problem_responses
from deltaomega.errors import NotFoundError
from deltaomega.schemas.records import ID_RULE, MAX_ID_LENGTH
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/voices", tags=["voices"], responses=problem_responses(404))

#: Any id the pipeline stores. Percent-encode it in the path (``a%2Fb`` or ``a/b`` for
#: ``a/b``: the route takes the rest of the path up to the last ``/state`` or ``/history``).
VoiceId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description=f"A voice id: {ID_RULE}.")
]
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
