"""A person's security keys (WebAuthn): registering them, proving one for a step-up, and an
admin's reset for a person who lost theirs.

Every route here needs a person's sign-in (a console access token): API keys and service
tokens have no security key, and asking with one is a 409 that says so. A step-up returns
an access token of the same sign-in that allows emergency actions for ``step_up_seconds``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep, audit_request
from deltaomega.api.problems import problem
from deltaomega.api.routes.sessions import KeyAnswer, relying_party
from deltaomega.errors import ConflictError, NotFoundError, ValidationError
from deltaomega.security.audit import Outcome
from deltaomega.security.people import SignInError
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.security.security_keys import (
    STEP_UP,
    SecurityKeyError,
    listed_keys,
    require_step_up,
)
from deltaomega.security.tokens import Principal
from deltaomega.threads import in_thread

router = APIRouter(tags=["sign-in"])


class CeremonyBody(BaseModel):
    ceremony: str = Field(description="Send back with the key's answer (good for 2 minutes).")
    public_key: dict[str, Any] = Field(description="WebAuthn options as JSON, for the browser.")


class NewKey(KeyAnswer):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=60, description="What the person calls it.")


class SecurityKey(BaseModel):
    id: str
    name: str
    created_ms: int
    last_used_ms: int | None


class SteppedUp(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    stepped_up_until: int = Field(description="Epoch seconds: emergency actions until then.")


class Removed(BaseModel):
    username: str
    removed: int


def _person(request: Request) -> str:
    principal: Principal = request.state.principal
    if principal.session is None or not principal.subject.startswith("user:"):
        raise ConflictError(
            "security keys belong to people signed in to the console; "
            f"{principal.subject} is not one"
        )
    return principal.subject.removeprefix("user:")


@router.get(
    "/api/v1/auth/security-keys",
    summary="The signed-in person's security keys",
    response_model=list[SecurityKey],
    **requires(Role.VIEWER, RouteClass.READ, 409),
)
async def my_keys(request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    account = ctx.gatekeeper.people.follower.book.accounts.get(username, {})
    return listed_keys(account)


@router.post(
    "/api/v1/auth/security-keys/challenge",
    summary="Begin registering a security key: the options for the browser",
    response_model=CeremonyBody,
    **requires(Role.VIEWER, RouteClass.WRITE, 409),
)
async def key_challenge(request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    if ctx.gatekeeper.people.keys.has_keys(username):
        # a taken access token must not add its thief's key: a key proves the next one
        require_step_up(ctx.settings, request.state.principal, "adding another security key")
    try:
        ceremony = ctx.gatekeeper.people.keys.registration(username, relying_party(ctx, request))
    except SecurityKeyError as exc:
        raise ConflictError(str(exc)) from None
    return ceremony.body()


@router.post(
    "/api/v1/auth/security-keys",
    summary="Register a security key with the browser's answer (then sign-in needs it)",
    status_code=201,
    response_model=SecurityKey,
    **requires(Role.VIEWER, RouteClass.WRITE, 409),
)
async def register_key(body: NewKey, request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    try:
        key = await in_thread(
            ctx.gatekeeper.people.keys.register,
            username,
            body.ceremony,
            body.credential,
            body.name,
            relying_party(ctx, request),
        )
    except SecurityKeyError as exc:
        audit_request(
            ctx, request, "security-key.register", username, Outcome.DENIED, detail=str(exc)
        )
        raise ValidationError("credential", str(exc)) from None
    audit_request(ctx, request, "security-key.register", username, Outcome.OK, after=key)
    return key


@router.post(
    "/api/v1/auth/step-up/challenge",
    summary="Begin a step-up: the challenge for one of the person's security keys",
    response_model=CeremonyBody,
    **requires(Role.VIEWER, RouteClass.WRITE, 409),
)
async def step_up_challenge(request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    try:
        ceremony = ctx.gatekeeper.people.keys.challenge(
            username, STEP_UP, relying_party(ctx, request)
        )
    except SecurityKeyError as exc:
        raise ConflictError(str(exc)) from None
    return ceremony.body()


@router.post(
    "/api/v1/auth/step-up",
    summary="Prove a security key: an access token that allows emergency actions for a while",
    response_model=SteppedUp,
    **requires(Role.VIEWER, RouteClass.WRITE, 409),
)
async def step_up(body: KeyAnswer, request: Request, ctx: ContextDep) -> Any:
    username = _person(request)
    try:
        stepped = await in_thread(
            ctx.gatekeeper.people.step_up,
            request.state.principal,
            body.ceremony,
            body.credential,
            relying_party(ctx, request),
        )
    except (SecurityKeyError, SignInError) as exc:
        audit_request(ctx, request, "session.step-up", username, Outcome.DENIED, detail=str(exc))
        response: JSONResponse = problem(401, "Unauthorized", str(exc))
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="deltaomega", error="insufficient_user_authentication"'
        )
        return response
    audit_request(ctx, request, "session.step-up", username, Outcome.OK)
    return stepped


@router.delete(
    "/api/v1/accounts/{username}/security-keys",
    summary="Remove a person's security keys (they lost them): password sign-in again",
    response_model=Removed,
    **requires(Role.ADMIN, RouteClass.WRITE, 404, 409),
)
async def remove_keys(
    username: Annotated[str, Path(min_length=2, max_length=63)],
    request: Request,
    ctx: ContextDep,
) -> Any:
    if username not in ctx.gatekeeper.people.follower.book.accounts:
        raise NotFoundError("account", username)
    try:
        removed = await in_thread(ctx.gatekeeper.people.keys.remove_all, username)
    except SecurityKeyError as exc:
        raise ConflictError(str(exc)) from None
    audit_request(
        ctx, request, "security-key.remove", username, Outcome.OK, detail=f"{removed} removed"
    )
    return {"username": username, "removed": removed}
