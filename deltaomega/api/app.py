"""The FastAPI application: routers, problem+json errors and HTTP RED metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from deltaomega import __version__
from deltaomega.api import problems
from deltaomega.api.deps import ApiContext
from deltaomega.api.routes import (
    alerts,
    emergence,
    health,
    interactions,
    patterns,
    predictions,
    stream,
    voices,
)
from deltaomega.metrics import HTTP_REQUESTS, HTTP_SECONDS


def create_api(
    context: ApiContext, lifespan: Any | None = None, *, serve_api: bool = True
) -> FastAPI:
    """The app; with ``serve_api`` False only health and metrics (a worker-only process)."""
    app = FastAPI(
        title="Meta-ΔDΩΛ",
        version=__version__,
        description="Voice states, interactions, model outputs, alerts and live feeds of a "
        "multi-voice AI system.",
        lifespan=lifespan,
    )
    app.state.context = context
    problems.install(app)
    if serve_api:
        for module in (voices, interactions, predictions, patterns, emergence, alerts, stream):
            app.include_router(module.router, responses=problems.problem_responses(422, 503))
    app.include_router(health.router)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build_openapi()
        return problems.document_problems(schema) if fresh else schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.middleware("http")
    async def red_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        HTTP_SECONDS.labels(request.method, template).observe(time.perf_counter() - started)
        return response

    return app
