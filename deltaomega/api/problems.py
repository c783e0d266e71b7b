"""Errors as RFC 9457 ``application/problem+json``, mapped here and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from deltaomega.errors import (
    ConflictError,
    DeltaOmegaError,
    NotFoundError,
    ServiceUnavailableError,
    TooManySubscribersError,
    ValidationError,
)
from deltaomega.security.security_keys import StepUpRequiredError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
_SERVICES = {
    "kafka": "Kafka",
    "clickhouse": "ClickHouse",
    "schema-registry": "The schema registry",
    "models": "The model runtime",
}


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="422: each invalid parameter or header, by name."
    )
    service: str | None = Field(default=None, description="503: the service that is away.")


_DESCRIPTIONS = {
    401: "No credentials, or credentials that do not verify; `WWW-Authenticate` says why",
    403: "The caller's role may not call this route",
    404: "Not found",
    409: "The target's current state does not allow it; `detail` says why",
    422: "Invalid request: `errors` names each invalid field",
    429: "Over the caller's rate limit; retry after the `Retry-After` seconds",
    503: "A service behind the API is unavailable (or, for /readyz, not ready); retry after "
    "the `Retry-After` seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (problem+json bodies)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": Problem, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            out[status]["headers"] = {
                "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}
            }
        if status == 401:
            out[status]["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
            }
    return out


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses of the OpenAPI document as ``application/problem+json``, which is what
    they are (FastAPI writes every response model as ``application/json``)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return schema


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field(loc: tuple[Any, ...]) -> str:
    # ("query", "window") → "window"; ("header", "last-event-id") → "last-event-id"
    parts = [str(p) for p in loc if p not in ("query", "path", "header", "body")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "Invalid request", detail, errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return problem(404, f"{exc.kind.capitalize()} not found", str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return problem(409, "Conflict", str(exc))


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return problem(
        422, "Invalid request", str(exc), errors=[{"field": exc.field, "message": str(exc)}]
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceUnavailableError)
    # The text names the service, not the driver's message: that stays in the server log.
    response = problem(
        503,
        "Service unavailable",
        f"{_SERVICES.get(exc.service, exc.service)} is unavailable; try again later",
        service=exc.service,
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _too_many(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManySubscribersError)
    status = 429 if exc.per_principal else 503
    response = problem(status, "Too many subscribers", str(exc))
    response.headers["Retry-After"] = "10"
    return response


async def _step_up(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StepUpRequiredError)
    response = problem(401, "Step-up required", str(exc), max_age=exc.max_age)
    response.headers["WWW-Authenticate"] = exc.challenge
    return response


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    """Any other failure: a problem body without internals (the server log has them;
    Starlette re-raises an exception that is not ours to its server, which logs it)."""
    if isinstance(exc, DeltaOmegaError):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", "the server could not answer this request")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(ServiceUnavailableError, _unavailable)
    app.add_exception_handler(TooManySubscribersError, _too_many)
    app.add_exception_handler(StepUpRequiredError, _step_up)
    app.add_exception_handler(DeltaOmegaError, _internal)
    app.add_exception_handler(Exception, _internal)
