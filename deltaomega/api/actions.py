"""What the API does when asked to act (change parameters, propose or decide an
orchestration), for every surface that asks: the REST routes and GraphQL's mutations share
one path, its checks and its audit rows."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import HTTPConnection

from deltaomega.api.deps import ApiContext, audit_request
from deltaomega.api.models import (
    OrchestrationAccepted,
    OrchestrationRequest,
    ParameterChangeAccepted,
    ParameterChangeRequest,
    utc_from_ms,
)
from deltaomega.control.orchestration import orchestration_event
from deltaomega.control.parameters import effective
from deltaomega.control.strategies import Strategy, planned
from deltaomega.errors import ValidationError
from deltaomega.schemas.records import ORCHESTRATION_EVENT, PARAMETER_CHANGE
from deltaomega.security.audit import Outcome
from deltaomega.security.security_keys import StepUpRequiredError, require_step_up
from deltaomega.security.tokens import Principal

#: Changes folded into the current parameters: all of them, up to a bound no voice reaches.
FOLD_LIMIT = 10_000


async def current_parameters(ctx: ApiContext, voice: str) -> dict[str, Any]:
    return effective(await ctx.queries.parameter_changes(voice, FOLD_LIMIT))[0]


async def send_event(ctx: ApiContext, event: dict[str, Any]) -> None:
    value = ctx.codec.encode(ORCHESTRATION_EVENT, event)
    await ctx.writes.send(ctx.topics.orchestration, event["orchestration_id"], value)


def decision_event(
    oid: str, action: str, principal: Principal, rationale: str, **fields: Any
) -> dict[str, Any]:
    return orchestration_event(
        oid, action, principal.subject, principal.role.label, rationale, **fields
    )


async def change_parameters(
    ctx: ApiContext, request: HTTPConnection, voice_id: str, body: ParameterChangeRequest
) -> ParameterChangeAccepted:
    principal: Principal = request.state.principal
    now = int(time.time() * 1000)
    expires = now + body.expected_duration * 60_000 if body.expected_duration else None
    change: dict[str, Any] = {
        "change_id": uuid.uuid4().hex,
        "voice_id": voice_id,
        **body.parameters.model_dump(exclude={"context_modifiers"}),
        "context_modifiers": {
            k: float(v) if isinstance(v, int | float) else v
            for k, v in body.parameters.context_modifiers.items()
        },
        "rationale": body.rationale,
        "expected_duration_minutes": body.expected_duration,
        "monitoring_enabled": body.monitoring_enabled,
        "requested_by": principal.subject,
        "requested_at": now,
        "expires_at": expires,
        "reverts": None,
    }
    await ctx.writes.send(
        ctx.topics.parameters, voice_id, ctx.codec.encode(PARAMETER_CHANGE, change)
    )
    audit_request(
        ctx,
        request,
        "parameters.set",
        voice_id,
        Outcome.OK,
        rationale=body.rationale,
        status=202,
        after=change,
    )
    return ParameterChangeAccepted(
        change_id=change["change_id"],
        voice_id=voice_id,
        status="accepted",
        requested_at=utc_from_ms(now),
        expires_at=utc_from_ms(expires) if expires is not None else None,
    )


async def propose_orchestration(
    ctx: ApiContext, request: HTTPConnection, strategy: Strategy, body: OrchestrationRequest
) -> OrchestrationAccepted:
    """Worked out from each target's parameters now, onto ``voice.orchestration``."""
    if strategy is Strategy.EMERGENCY:
        try:
            require_step_up(ctx.settings, request.state.principal, "an emergency orchestration")
        except StepUpRequiredError as exc:
            audit_request(
                ctx,
                request,
                "orchestration.request",
                "emergency",
                Outcome.DENIED,
                rationale=body.rationale,
                detail=str(exc),
            )
            raise
    given = body.parameters.model_dump(exclude_none=True)
    if strategy in (Strategy.DIRECT, Strategy.EVOLUTION) and not given:
        raise ValidationError("parameters", f"the {strategy.value} strategy needs a parameter")
    if len(set(body.target_voices)) != len(body.target_voices):
        raise ValidationError("target_voices", "a voice is named twice")
    options = body.strategy_parameters.model_dump(exclude_none=True)
    plans = {
        voice: planned(strategy, await current_parameters(ctx, voice), given, options)
        for voice in body.target_voices
    }
    oid = uuid.uuid4().hex
    event = decision_event(
        oid,
        "REQUEST",
        request.state.principal,
        body.rationale,
        strategy=strategy.value,
        target_voices=body.target_voices,
        duration_seconds=body.duration * 60,
        voice_parameters=plans,
        strategy_parameters=options,
    )
    await send_event(ctx, event)
    audit_request(
        ctx,
        request,
        "orchestration.request",
        oid,
        Outcome.OK,
        rationale=body.rationale,
        after=event,
    )
    return OrchestrationAccepted(orchestration_id=oid, action="request", status="accepted")
