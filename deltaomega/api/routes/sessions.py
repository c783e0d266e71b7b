"""People's sign-in to the console, and the accounts admins keep for them.

Sign-in, refresh and sign-out are open routes (they are how a person gets credentials);
each failed attempt counts against the address like a failed token or key, so guessing
passwords is as slow as guessing keys. Tokens come in the body: the console keeps the
refresh token out of page scripts' long-lived storage (memory and a session store)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api.auth.access import public, requires
from deltaomega.api.deps import ApiContext, ContextDep, audit_request
from deltaomega.api.problems import problem, problem_responses
from deltaomega.errors import ConflictError, ValidationError
from deltaomega.security.audit import Outcome
from deltaomega.security.gatekeeper import RateLimitedError
from deltaomega.security.people import MIN_PASSWORD, SignInError
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.security.security_keys import Ceremony, RelyingParty, SecurityKeyError
from deltaomega.threads import in_thread

router = APIRouter(tags=["sign-in"])

Username = Annotated[str, Field(min_length=2, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]+$")]


class SecondFactor(BaseModel):
    second_factor: Literal["security-key"] = Field(
        description="The account has a security key: answer the challenge to finish."
    )
    ceremony: str = Field(description="Send back with the key's answer (good for 2 minutes).")
    public_key: dict[str, Any] = Field(
        description="WebAuthn request options as JSON (PublicKeyCredentialRequestOptionsJSON)."
    )


class KeyAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceremony: str = Field(min_length=1, max_length=4096)
    credential: dict[str, Any] = Field(
        description="The browser's PublicKeyCredential as JSON (its toJSON())."
    )


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    password: str = Field(min_length=1, max_length=1024)


class RefreshToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=200)


class SignedInBody(BaseModel):
    username: str
    role: str
    session: str
    access_token: str
    token_type: str
    expires_in: int = Field(description="Seconds the access token is good for.")
    refresh_token: str = Field(description="Good once: each refresh returns the next one.")


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)
    role: Literal["viewer", "analyst", "operator", "admin"]


class Account(BaseModel):
    username: str
    role: str
    created_ms: int
    disabled_ms: int | None
    security_keys: int = Field(description="How many security keys the account holds.")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def relying_party(ctx: ApiContext, request: Request) -> RelyingParty:
    """The console's origin for security keys: the setting, or how this request came."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return RelyingParty.of(ctx.settings, request.url.scheme, host)


async def _refused(
    ctx: ApiContext, request: Request, exc: SignInError | SecurityKeyError
) -> JSONResponse:
    await ctx.gatekeeper.failed_authentication(_client(request))
    response = problem(401, "Unauthorized", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer realm="deltaomega", error="invalid_grant"'
    return response


async def _throttled(ctx: ApiContext, request: Request) -> JSONResponse | None:
    try:
        await ctx.gatekeeper.before_authentication(_client(request))
    except RateLimitedError as exc:
        response = problem(429, "Too many requests", str(exc))
        response.headers["Retry-After"] = str(exc.verdict.retry_after)
        return response
    return None


@router.post(
    "/api/v1/auth/sign-in",
    summary=(
        "Sign a person in: an access token and the first refresh token of a new sign-in, "
        "or, for an account with a security key, the key's challenge"
    ),
    response_model=SignedInBody | SecondFactor,
    responses=problem_responses(401, 429),
    **public(),
)
async def sign_in(body: Credentials, request: Request, ctx: ContextDep) -> Any:
    if (throttled := await _throttled(ctx, request)) is not None:
        return throttled
    try:
        signed = await in_thread(
            ctx.gatekeeper.people.sign_in, body.username, body.password, relying_party(ctx, request)
        )
    except (SignInError, SecurityKeyError) as exc:
        ctx.audit.record(
            "session.sign-in", Outcome.DENIED, subject=f"user:{body.username}", detail=str(exc)
        )
        return await _refused(ctx, request, exc)
    if isinstance(signed, Ceremony):
        return {"second_factor": "security-key", **signed.body()}
    ctx.audit.record(
        "session.sign-in", Outcome.OK, subject=f"user:{signed.username}", target=signed.session
    )
    return signed.body()


@router.post(
    "/api/v1/auth/sign-in/security-key",
    summary="Finish a sign-in with the security key's answer to its challenge",
    response_model=SignedInBody,
    responses=problem_responses(401, 429),
    **public(),
)
async def sign_in_with_key(body: KeyAnswer, request: Request, ctx: ContextDep) -> Any:
    if (throttled := await _throttled(ctx, request)) is not None:
        return throttled
    try:
        signed = await in_thread(
            ctx.gatekeeper.people.finish_sign_in,
            body.ceremony,
            body.credential,
            relying_party(ctx, request),
        )
    except (SignInError, SecurityKeyError) as exc:
        ctx.audit.record(
            "session.sign-in", Outcome.DENIED, subject="unknown", detail=f"security key: {exc}"
        )
        return await _refused(ctx, request, exc)
    ctx.audit.record(
        "session.sign-in",
        Outcome.OK,
        subject=f"user:{signed.username}",
        target=signed.session,
        detail="with a security key",
    )
    return signed.body()


@router.post(
    "/api/v1/auth/refresh",
    summary="The next access token and refresh token; a refresh token used twice ends the sign-in",
    response_model=SignedInBody,
    responses=problem_responses(401, 429),
    **public(),
)
async def refresh(body: RefreshToken, request: Request, ctx: ContextDep) -> Any:
    if (throttled := await _throttled(ctx, request)) is not None:
        return throttled
    try:
        signed = await in_thread(ctx.gatekeeper.people.refresh, body.refresh_token)
    except SignInError as exc:
        ctx.audit.record("session.refresh", Outcome.DENIED, subject="unknown", detail=str(exc))
        return await _refused(ctx, request, exc)
    return signed.body()


@router.post(
    "/api/v1/auth/sign-out",
    summary="End a sign-in: its refresh and access tokens stop working",
    status_code=204,
    response_model=None,
    responses=problem_responses(401, 429),
    **public(),
)
async def sign_out(body: RefreshToken, request: Request, ctx: ContextDep) -> Response:
    if (throttled := await _throttled(ctx, request)) is not None:
        return throttled
    try:
        await in_thread(ctx.gatekeeper.people.sign_out, body.refresh_token)
    except SignInError as exc:
        return await _refused(ctx, request, exc)
    return Response(status_code=204)


@router.get(
    "/api/v1/auth/me",
    summary="Who the credentials belong to, and their role",
    **requires(Role.VIEWER),
)
async def me(request: Request) -> dict[str, Any]:
    principal = request.state.principal
    return {
        "subject": principal.subject,
        "role": principal.role.label,
        "method": principal.method,
        "session": principal.session,
        "stepped_up_at": principal.stepped_up_at,
    }


@router.get(
    "/api/v1/accounts",
    summary="People's accounts (never their password hashes)",
    response_model=list[Account],
    **requires(Role.ADMIN),
)
async def accounts(ctx: ContextDep) -> Any:
    return ctx.gatekeeper.people.accounts()


@router.post(
    "/api/v1/accounts",
    summary="Create a person's account",
    status_code=201,
    response_model=Account,
    **requires(Role.ADMIN, RouteClass.WRITE, 409),
)
async def create_account(body: NewAccount, request: Request, ctx: ContextDep) -> Any:
    try:
        account = await in_thread(
            ctx.gatekeeper.people.create_account,
            body.username,
            body.password,
            Role.parse(body.role),
        )
    except ValueError as exc:
        if "exists" in str(exc):
            raise ConflictError(str(exc)) from None
        raise ValidationError("password", str(exc)) from None
    audit_request(ctx, request, "account.create", body.username, Outcome.OK, after=account)
    return account


@router.delete(
    "/api/v1/accounts/{username}",
    summary="Disable an account and end its sign-ins",
    response_model=Account,
    **requires(Role.ADMIN, RouteClass.WRITE, 404),
)
async def disable_account(
    username: Annotated[str, Path(min_length=2, max_length=63)],
    request: Request,
    ctx: ContextDep,
) -> Any:
    account = await in_thread(ctx.gatekeeper.people.disable, username)
    audit_request(ctx, request, "account.disable", username, Outcome.OK, after=account)
    return account
