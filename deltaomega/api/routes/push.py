"""Web push: the key browsers subscribe with, and a person's subscriptions (one per browser
or phone). The control plane's ``webpush`` channel sends alerts to them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep, audit_request
from deltaomega.api.routes.security_keys import _person
from deltaomega.errors import ConflictError, NotFoundError, ValidationError
from deltaomega.security.audit import Outcome
from deltaomega.security.push import (
    PushError,
    PushSubscriptions,
    application_server_key,
    public_subscription,
)
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.threads import in_thread

router = APIRouter(prefix="/api/v1/push", tags=["sign-in"])


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p256dh: str = Field(min_length=80, max_length=100, description="The browser's P-256 key.")
    auth: str = Field(min_length=20, max_length=30, description="The 16-byte auth secret.")


class NewSubscription(BaseModel):
    """A browser's PushSubscription as JSON (its toJSON()), and what to call the device."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str = Field(min_length=10, max_length=2000, pattern=r"^https?://")
    keys: PushKeys
    device: str = Field(default="", max_length=200)


class Subscription(BaseModel):
    id: str
    endpoint: str
    device: str
    created_ms: int


class ServerKey(BaseModel):
    public_key: str = Field(description="VAPID key: the applicationServerKey to subscribe with.")


def _subscriptions(ctx: ApiContext) -> PushSubscriptions:
    return PushSubscriptions(ctx.settings, ctx.gatekeeper.people.follower)


@router.get(
    "/key",
    summary="The server's web push key (VAPID), for the browser's subscription",
    response_model=ServerKey,
    **requires(Role.VIEWER, RouteClass.READ, 409),
)
async def server_key(ctx: ContextDep) -> Any:
    try:
        return {"public_key": application_server_key(ctx.settings)}
    except PushError as exc:
        raise ConflictError(str(exc)) from None


@router.get(
    "/subscriptions",
    summary="The signed-in person's devices that get notifications",
    response_model=list[Subscription],
    **requires(Role.VIEWER, RouteClass.READ, 409),
)
async def my_subscriptions(request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    return [public_subscription(s) for s in _subscriptions(ctx).of(username)]


@router.post(
    "/subscriptions",
    summary="Get notifications on this device (its browser's push subscription)",
    status_code=201,
    response_model=Subscription,
    **requires(Role.VIEWER, RouteClass.WRITE, 409),
)
async def subscribe(body: NewSubscription, request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    try:
        saved = await in_thread(
            _subscriptions(ctx).subscribe,
            username,
            body.endpoint,
            body.keys.model_dump(),
            body.device or request.headers.get("user-agent", ""),
        )
    except PushError as exc:
        raise ValidationError(exc.field, str(exc)) from None
    audit_request(ctx, request, "push.subscribe", username, Outcome.OK, detail=saved["device"])
    return saved


@router.delete(
    "/subscriptions/{subscription_id}",
    summary="Stop notifications on a device",
    status_code=204,
    response_model=None,
    **requires(Role.VIEWER, RouteClass.WRITE, 404, 409),
)
async def unsubscribe(
    subscription_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    request: Request,
    ctx: ContextDep,
) -> Response:
    username = _person(request)
    if not await in_thread(_subscriptions(ctx).unsubscribe, username, subscription_id):
        raise NotFoundError("push subscription", subscription_id)
    audit_request(ctx, request, "push.unsubscribe", subscription_id, Outcome.OK)
    return Response(status_code=204)
