"""Orchestration: requests (the strategy's parameters worked out here, from each target's
parameters now) and decisions go to ``voice.orchestration`` for the control plane's state
machine; reads come from ClickHouse, where the worker sinks each state change. A decision
the current state does not allow is a 409 at once (the state machine refuses it too)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from deltaomega.api.actions import decision_event, propose_orchestration, send_event
from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep, audit_request
from deltaomega.api.models import (
    Orchestration,
    OrchestrationAccepted,
    OrchestrationDecision,
    OrchestrationList,
    OrchestrationRequest,
)
from deltaomega.api.params import Limit
from deltaomega.api.problems import problem_responses
from deltaomega.control.decisions import refusal
from deltaomega.control.strategies import Strategy
from deltaomega.errors import ConflictError, NotFoundError
from deltaomega.security.audit import Outcome
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal

router = APIRouter(
    prefix="/api/v1/orchestration", tags=["orchestration"], responses=problem_responses(404)
)

OrchestrationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="As created.")]
State = Literal["PROPOSED", "APPROVED", "REJECTED", "ACTIVE", "COMPLETED", "ROLLED_BACK", "EXPIRED"]


@router.post(
    "/{strategy}",
    status_code=202,
    response_model=OrchestrationAccepted,
    summary="Propose an orchestration (an admin's emergency starts at once)",
    **requires(Role.OPERATOR, RouteClass.WRITE),
)
async def request_orchestration(
    ctx: ContextDep, request: Request, strategy: Strategy, body: OrchestrationRequest
) -> OrchestrationAccepted:
    return await propose_orchestration(ctx, request, strategy, body)


async def _decide(
    ctx: ApiContext, request: Request, oid: str, action: str, body: OrchestrationDecision
) -> OrchestrationAccepted:
    rows = await ctx.queries.orchestrations(oid, None, 1)
    if not rows:
        raise NotFoundError("orchestration", oid)
    state = rows[0]
    principal: Principal = request.state.principal
    why = refusal(action.upper(), state["state"], state["requested_by"], principal.subject)
    if why is not None:
        audit_request(
            ctx,
            request,
            f"orchestration.{action}",
            oid,
            Outcome.DENIED,
            rationale=body.rationale,
            detail=why,
        )
        raise ConflictError(why)
    await send_event(ctx, decision_event(oid, action.upper(), principal, body.rationale))
    audit_request(
        ctx, request, f"orchestration.{action}", oid, Outcome.OK, rationale=body.rationale
    )
    return OrchestrationAccepted(orchestration_id=oid, action=action, status="accepted")


for _action, _summary in (
    ("approve", "Approve a proposed orchestration (not its requester): it starts"),
    ("reject", "Reject a proposed orchestration"),
    ("rollback", "Roll back an active orchestration: its voices' parameters are restored"),
):

    def _route(action: str = _action) -> Any:
        async def decide(
            ctx: ContextDep,
            request: Request,
            orchestration_id: OrchestrationId,
            body: OrchestrationDecision,
        ) -> OrchestrationAccepted:
            return await _decide(ctx, request, orchestration_id, action, body)

        decide.__name__ = f"{action}_orchestration"
        return decide

    router.post(
        f"/{{orchestration_id}}/{_action}",
        status_code=202,
        response_model=OrchestrationAccepted,
        summary=_summary,
        **requires(Role.OPERATOR, RouteClass.WRITE, 409),
    )(_route())


@router.get(
    "",
    response_model=OrchestrationList,
    summary="Orchestrations in their current state, newest first",
    **requires(Role.VIEWER),
)
async def list_orchestrations(
    ctx: ContextDep, state: Annotated[State | None, Query()] = None, limit: Limit = 500
) -> OrchestrationList:
    rows = await ctx.queries.orchestrations(None, state, limit)
    return OrchestrationList(orchestrations=[Orchestration.from_row(r) for r in rows])


@router.get(
    "/{orchestration_id}",
    response_model=Orchestration,
    summary="One orchestration in its current state",
    **requires(Role.VIEWER),
)
async def get_orchestration(ctx: ContextDep, orchestration_id: OrchestrationId) -> Orchestration:
    rows = await ctx.queries.orchestrations(orchestration_id, None, 1)
    if not rows:
        raise NotFoundError("orchestration", orchestration_id)
    return Orchestration.from_row(rows[0])
