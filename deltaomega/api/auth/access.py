"""Each route declares who may call it and what it costs, in its OpenAPI operation
(``x-access``): one source for the guard that enforces it, the API's documentation and
the README's route × role table (`deltaomega auth routes`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Security
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from deltaomega.api.problems import problem_responses
from deltaomega.security.rate_limits import BUDGETS, RouteClass
from deltaomega.security.roles import Role

ANYONE = "anyone"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
#: The setting that makes /metrics ask for a viewer's credentials.
METRICS_SETTING = "DELTAOMEGA_METRICS_AUTH"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A JWT: `deltaomega auth token`, or the identity provider's.",
)
_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `deltaomega auth create-key`.",
)


async def _credentials(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    key: Annotated[str | None, Security(_api_key)],
) -> None:
    """Documents the two ways to authenticate; the guard has checked them already."""


@dataclass(frozen=True)
class Access:
    #: the least role that may call; None: anyone, credentials or not
    role: Role | None
    route_class: RouteClass | None = None
    #: a public route that asks for credentials when this setting is on
    protected_by: str | None = None


def requires(
    role: Role, route_class: RouteClass = RouteClass.READ, *extra_statuses: int
) -> dict[str, Any]:
    """Route decorator keywords: callers need ``role`` or above; ``route_class`` sets the rate
    limit. ``extra_statuses`` are the route's own error responses."""
    return {
        "openapi_extra": {"x-access": {"role": role.label, "rate-limit": route_class.value}},
        "dependencies": [Security(_credentials)],
        "responses": problem_responses(401, 403, 429, *extra_statuses),
    }


def public(protected_by: str | None = None) -> dict[str, Any]:
    """Route decorator keywords: open to anyone (health, metrics)."""
    access: dict[str, str] = {"role": ANYONE}
    if protected_by is not None:
        access["protected-by"] = protected_by
    return {"openapi_extra": {"x-access": access}}


def websocket_access(
    role: Role, route_class: RouteClass = RouteClass.READ
) -> Callable[[Endpoint], Endpoint]:
    """Decorator of a WebSocket endpoint (which has no OpenAPI operation): the same
    declaration, on the endpoint itself; connecting counts as one request."""

    def declare(endpoint: Endpoint) -> Endpoint:
        endpoint.x_access = {"role": role.label, "rate-limit": route_class.value}  # type: ignore[attr-defined]
        return endpoint

    return declare


def declare_access(
    routes: Iterable[BaseRoute], role: Role, route_class: RouteClass = RouteClass.READ
) -> None:
    """The declaration, on routes a library made (GraphQL's, outside the OpenAPI)."""
    for route in routes:
        route.x_access = {"role": role.label, "rate-limit": route_class.value}  # type: ignore[attr-defined]


def guarded_routes(app: FastAPI) -> list[RouteContext]:
    """What the guard checks: the API's routes, its WebSocket endpoints and the routes
    declared outside the OpenAPI."""
    others = [
        r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIWebSocketRoute) or hasattr(r.original_route, "x_access")
    ]
    return api_routes(app) + [r for r in others if not _in_schema(r)]


def _in_schema(route: RouteContext) -> bool:
    return isinstance(route.original_route, APIRoute) and bool(route.include_in_schema)


def api_routes(app: FastAPI) -> list[RouteContext]:
    """The routes of the API's schema (not its documentation pages), routers included."""
    return [
        r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and r.include_in_schema
    ]


def access_of(route: RouteContext) -> Access | None:
    """The route's declared access; None when it declares none (the guard refuses it)."""
    declared = getattr(route.original_route, "x_access", None)
    if declared is None and isinstance(route.original_route, APIWebSocketRoute):
        declared = getattr(route.endpoint, "x_access", None)
    elif declared is None:
        declared = (route.openapi_extra or {}).get("x-access")
    if not isinstance(declared, dict):
        return None
    if declared["role"] == ANYONE:
        return Access(None, None, declared.get("protected-by"))
    return Access(Role.parse(declared["role"]), RouteClass(declared["rate-limit"]))


def routes_table(app: FastAPI) -> str:
    """The route × role table (Markdown), from the routes' declarations."""
    roles = list(Role)
    head = "| Route | " + " | ".join(r.label for r in roles) + " | Rate limit |"
    lines = [head, "|" + "---|" * (len(roles) + 2)]
    for route in sorted(guarded_routes(app), key=lambda r: (r.path, sorted(r.methods or ()))):
        access = access_of(route)
        methods = ",".join(sorted((route.methods or set()) - {"HEAD"})) or "WS"
        cells: list[str]
        if access is None:
            cells = ["—"] * len(roles) + ["undeclared"]
        elif access.role is None:
            note = (
                f"anyone (viewer+ with {access.protected_by}=true)"
                if access.protected_by
                else "anyone"
            )
            cells = ["✓"] * len(roles) + [note]
        else:
            cells = ["✓" if r >= access.role else "" for r in roles]
            cells.append(_budget_text(access.route_class or RouteClass.READ))
        lines.append(f"| `{methods} {route.path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _budget_text(route_class: RouteClass) -> str:
    b = BUDGETS[route_class]
    text = f"{route_class.value}: {b.standard}/min"
    if b.premium != b.standard:
        text += f", premium {b.premium}"
    if b.admin is not None:
        text += f", admin {b.admin}"
    if b.anonymous:
        text += f", anonymous {b.anonymous}"
    return text
