"""Parameter changes: validated here, produced to the compacted ``voice.parameters`` topic
(key voice id) for the voice to apply, and audited; read back from ClickHouse, where the
worker sinks the topic (operators' changes and the control plane's reverts).

This router comes before the voices router: ``…/parameters/history`` would otherwise read
as the history of a voice named ``…/parameters``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from deltaomega.api.actions import FOLD_LIMIT, change_parameters
from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import (
    ParameterChange,
    ParameterChangeAccepted,
    ParameterChangeRequest,
    ParameterHistory,
    ParameterValues,
    VoiceParametersState,
)
from deltaomega.api.params import Limit
from deltaomega.api.problems import problem_responses
from deltaomega.control.parameters import effective
from deltaomega.schemas.records import ID_RULE, MAX_ID_LENGTH
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role

#: 404: a voice id that cannot be addressed in a path (a line break in it)
router = APIRouter(prefix="/api/v1/voices", tags=["parameters"], responses=problem_responses(404))

VoiceId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description=f"A voice id: {ID_RULE}.")
]


@router.post(
    "/{voice_id:path}/parameters",
    status_code=202,
    response_model=ParameterChangeAccepted,
    summary="Change a voice's parameters (for a time, or until changed again)",
    **requires(Role.OPERATOR, RouteClass.WRITE),
)
async def set_parameters(
    ctx: ContextDep, request: Request, voice_id: VoiceId, body: ParameterChangeRequest
) -> ParameterChangeAccepted:
    """Accepted once the broker has the change (202); the voice applies it from the topic."""
    return await change_parameters(ctx, request, voice_id, body)


@router.get(
    "/{voice_id:path}/parameters/history",
    response_model=ParameterHistory,
    summary="A voice's parameter changes, newest first (operators' and reverts)",
    **requires(Role.VIEWER),
)
async def parameter_history(
    ctx: ContextDep, voice_id: VoiceId, limit: Limit = 500
) -> ParameterHistory:
    rows = await ctx.queries.parameter_changes(voice_id, limit)
    return ParameterHistory(
        voice_id=voice_id, changes=[ParameterChange.from_row(r) for r in reversed(rows)]
    )


@router.get(
    "/{voice_id:path}/parameters",
    response_model=VoiceParametersState,
    summary="A voice's parameters now, what the last change replaced, when it ends",
    **requires(Role.VIEWER),
)
async def current_parameters(ctx: ContextDep, voice_id: VoiceId) -> VoiceParametersState:
    rows = await ctx.queries.parameter_changes(voice_id, FOLD_LIMIT)
    in_effect, replaced = effective(rows)
    last = ParameterChange.from_row(rows[-1]) if rows else None
    return VoiceParametersState(
        voice_id=voice_id,
        parameters=ParameterValues(**in_effect),
        replaced=ParameterValues(**replaced) if replaced is not None else None,
        last_change=last,
        expires_at=last.expires_at if last is not None else None,
    )
