"""Alert conditions and their lifecycle: acknowledge, resolve, silence.

Reads come from ClickHouse (the worker sinks every condition change and delivery attempt);
actions go to ``voice.alert-actions`` for the control plane's dispatch agent, keyed by the
condition's subject so they meet its alerts. One the current state does not allow is a
409 at once (the agent refuses it too, should the state have moved on meanwhile).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.alerting.conditions import ACKNOWLEDGED, RESOLVED, parse_condition_id
from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep, audit_request
from deltaomega.api.models import utc_from_ms
from deltaomega.api.params import Limit, Name, Severity, canonical_severity
from deltaomega.errors import ConflictError, NotFoundError, ValidationError
from deltaomega.schemas.records import ALERT_ACTION, MAX_ID_LENGTH
from deltaomega.security.audit import Outcome
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

ConditionId = Annotated[
    str,
    Path(
        min_length=5,
        max_length=2 * MAX_ID_LENGTH + 64,
        description="rule:subject@first window (ms), as listed.",
    ),
]
SilenceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="As created.")]


class AlertCondition(BaseModel):
    condition_id: str
    rule: str
    subject: str
    severity: str = Field(description="The highest it reached.")
    state: Literal["OPEN", "ACKNOWLEDGED", "RESOLVED"]
    first_window: datetime
    last_window: datetime
    windows: int = Field(description="Windows it fired in.")
    alert_id: str = Field(description="Its newest alert.")
    message: str
    value: float
    threshold: float
    recommended_actions: list[str]
    opened_at: datetime
    acknowledged_by: str
    resolved_by: str
    resolution: str = Field(description="cleared or manual; '' while unresolved.")
    silenced_by: str = Field(description="The silence holding its notifications, or ''.")
    escalation_level: int
    notifications: int
    changed_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AlertCondition:
        times = ("first_window", "last_window", "opened_at", "changed_at")
        return cls(**{**row, **{t: utc_from_ms(row[t]) for t in times}})


class AlertConditionList(BaseModel):
    conditions: list[AlertCondition] = Field(description="Newest opened first.")


class Delivery(BaseModel):
    delivery_id: str
    notification_id: str
    kind: str
    severity: str
    channel: str
    channel_type: str
    attempt: int
    outcome: Literal["DELIVERED", "RETRYING", "FAILED", "DROPPED"]
    status_code: int | None
    error: str
    latency_ms: float
    attempted_at: datetime


class DeliveryList(BaseModel):
    condition_id: str
    deliveries: list[Delivery] = Field(description="Oldest first.")


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000)


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: str | None = Field(default=None, min_length=1, max_length=64)
    subject: str | None = Field(
        default=None, min_length=1, max_length=2 * MAX_ID_LENGTH + 2, description="A glob."
    )
    severity: Literal["CRITICAL", "WARNING", "INFO"] | None = None
    duration_minutes: int | None = Field(
        default=None, ge=1, le=43_200, description="How long; or give `until`."
    )
    until: datetime | None = Field(default=None, description="When it ends; or give a duration.")
    reason: str = Field(min_length=3, max_length=2000)


class Silence(BaseModel):
    silence_id: str
    rule: str | None
    subject: str | None
    severity: str | None
    until: datetime
    reason: str
    actor: str
    at: datetime


class SilenceList(BaseModel):
    silences: list[Silence]


class ActionAccepted(BaseModel):
    action: str
    target: str = Field(description="The condition or the silence.")
    status: Literal["accepted"] = "accepted"


def _action(kind: str, principal: Principal, reason: str, **fields: Any) -> dict[str, Any]:
    return {
        "action_id": uuid.uuid4().hex,
        "action": kind,
        "condition_id": fields.get("condition_id", ""),
        "silence_id": fields.get("silence_id", ""),
        "rule": fields.get("rule"),
        "subject": fields.get("subject"),
        "severity": fields.get("severity"),
        "until": fields.get("until"),
        "reason": reason,
        "actor": principal.subject,
        "actor_role": principal.role.label,
        "at": int(time.time() * 1000),
    }


async def _send(ctx: ApiContext, key: str, action: dict[str, Any]) -> None:
    await ctx.writes.send(ctx.topics.alert_actions, key, ctx.codec.encode(ALERT_ACTION, action))


@router.get(
    "/conditions",
    response_model=AlertConditionList,
    summary="Alert conditions (grouped alerts) and their lifecycle state",
    **requires(Role.VIEWER),
)
async def list_conditions(
    ctx: ContextDep,
    state: Literal["OPEN", "ACKNOWLEDGED", "RESOLVED"] | None = None,
    severity: Severity = None,
    rule: Name = None,
    subject: Annotated[str | None, Query(min_length=1, max_length=2 * MAX_ID_LENGTH + 2)] = None,
    limit: Limit = 500,
) -> AlertConditionList:
    rows = await ctx.queries.alert_conditions(
        None, state, canonical_severity(severity), rule, subject, limit
    )
    return AlertConditionList(conditions=[AlertCondition.from_row(r) for r in rows])


async def _condition(ctx: ApiContext, condition_id: str) -> dict[str, Any]:
    try:
        parse_condition_id(condition_id)
    except ValueError as exc:
        raise ValidationError("condition_id", str(exc)) from exc
    rows = await ctx.queries.alert_conditions(condition_id, None, None, None, None, 1)
    if not rows:
        raise NotFoundError("alert condition", condition_id)
    return rows[0]


@router.get(
    "/conditions/{condition_id:path}/deliveries",
    response_model=DeliveryList,
    summary="Every attempt to deliver a condition's notifications",
    **requires(Role.VIEWER, RouteClass.READ, 404),
)
async def list_deliveries(
    ctx: ContextDep, condition_id: ConditionId, limit: Limit = 500
) -> DeliveryList:
    await _condition(ctx, condition_id)
    rows = await ctx.queries.alert_deliveries(condition_id, limit)
    return DeliveryList(
        condition_id=condition_id,
        deliveries=[
            Delivery(**{**r, "attempted_at": utc_from_ms(r["attempted_at"])}) for r in rows
        ],
    )


async def _lifecycle(
    ctx: ApiContext, request: Request, condition_id: str, kind: str, reason: str
) -> ActionAccepted:
    current = await _condition(ctx, condition_id)
    if current["state"] == RESOLVED:
        raise ConflictError(f"{condition_id} is resolved already")
    if kind == "ACKNOWLEDGE" and current["state"] == ACKNOWLEDGED:
        raise ConflictError(f"{condition_id} is acknowledged already")
    principal: Principal = request.state.principal
    action = _action(kind, principal, reason, condition_id=condition_id)
    await _send(ctx, current["subject"], action)
    audit_request(
        ctx, request, f"alert.{kind.lower()}.request", condition_id, Outcome.OK, rationale=reason
    )
    return ActionAccepted(action=kind.lower(), target=condition_id)


@router.post(
    "/conditions/{condition_id:path}/acknowledge",
    status_code=202,
    response_model=ActionAccepted,
    summary="Acknowledge a condition: no more reminders or escalation",
    **requires(Role.OPERATOR, RouteClass.WRITE, 404, 409),
)
async def acknowledge(
    ctx: ContextDep, request: Request, condition_id: ConditionId, body: LifecycleRequest
) -> ActionAccepted:
    return await _lifecycle(ctx, request, condition_id, "ACKNOWLEDGE", body.reason)


@router.post(
    "/conditions/{condition_id:path}/resolve",
    status_code=202,
    response_model=ActionAccepted,
    summary="Resolve a condition now; the channels that heard of it hear of this",
    **requires(Role.OPERATOR, RouteClass.WRITE, 404, 409),
)
async def resolve(
    ctx: ContextDep, request: Request, condition_id: ConditionId, body: ResolveRequest
) -> ActionAccepted:
    return await _lifecycle(ctx, request, condition_id, "RESOLVE", body.reason)


@router.get(
    "/silences",
    response_model=SilenceList,
    summary="Silences in force",
    **requires(Role.VIEWER),
)
async def list_silences(ctx: ContextDep) -> SilenceList:
    rows = await ctx.queries.silences(int(time.time() * 1000))
    times = ("until", "at")
    return SilenceList(
        silences=[Silence(**{**r, **{t: utc_from_ms(r[t]) for t in times}}) for r in rows]
    )


@router.post(
    "/silences",
    status_code=202,
    response_model=ActionAccepted,
    summary="Silence conditions by rule, subject glob and severity, for a while",
    **requires(Role.OPERATOR, RouteClass.WRITE),
)
async def silence(ctx: ContextDep, request: Request, body: SilenceRequest) -> ActionAccepted:
    """Matching conditions, open now or opening while it lasts, notify no one."""
    if body.rule is None and body.subject is None and body.severity is None:
        raise ValidationError("rule", "name a rule, a subject or a severity to silence")
    principal: Principal = request.state.principal
    now = datetime.now(UTC)
    if (body.duration_minutes is None) == (body.until is None):
        raise ValidationError("until", "give either 'until' or 'duration_minutes'")
    if body.until is not None:
        until = body.until if body.until.tzinfo else body.until.replace(tzinfo=UTC)
        if not now < until <= now + timedelta(days=30):
            raise ValidationError("until", "must be in the future, at most 30 days ahead")
    else:
        assert body.duration_minutes is not None
        until = now + timedelta(minutes=body.duration_minutes)
    sid = uuid.uuid4().hex
    action = _action(
        "SILENCE",
        principal,
        body.reason,
        silence_id=sid,
        rule=body.rule,
        subject=body.subject,
        severity=body.severity,
        until=int(until.timestamp() * 1000),
    )
    await _send(ctx, f"silence:{sid}", action)
    audit_request(
        ctx, request, "alert.silence.request", sid, Outcome.OK, rationale=body.reason, after=action
    )
    return ActionAccepted(action="silence", target=sid)


@router.delete(
    "/silences/{silence_id}",
    status_code=202,
    response_model=ActionAccepted,
    summary="Lift a silence",
    **requires(Role.OPERATOR, RouteClass.WRITE, 404),
)
async def unsilence(ctx: ContextDep, request: Request, silence_id: SilenceId) -> ActionAccepted:
    known = {s["silence_id"] for s in await ctx.queries.silences(int(time.time() * 1000))}
    if silence_id not in known:
        raise NotFoundError("silence", silence_id)
    principal: Principal = request.state.principal
    await _send(
        ctx, f"silence:{silence_id}", _action("UNSILENCE", principal, "", silence_id=silence_id)
    )
    audit_request(ctx, request, "alert.unsilence.request", silence_id, Outcome.OK)
    return ActionAccepted(action="unsilence", target=silence_id)
