"""The FastAPI application: routers, problem+json errors and HTTP RED metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from deltaomega import __version__
from deltaomega.api import problems
from deltaomega.api.auth.access import declare_access
from deltaomega.api.auth.guard import Guard
from deltaomega.api.deps import ApiContext
from deltaomega.api.graphql_api import graphql_router
from deltaomega.api.read_cache import ReadCache
from deltaomega.api.red_metrics import RedMetrics
from deltaomega.api.routes import (
    alert_conditions,
    alerts,
    audit,
    console,
    emergence,
    export,
    health,
    interactions,
    monitor,
    orchestration,
    parameters,
    patterns,
    pipeline,
    predictions,
    push,
    query,
    security_keys,
    sessions,
    stream,
    voices,
    ws,
)
from deltaomega.security.roles import Role


def create_api(
    context: ApiContext,
    lifespan: Any | None = None,
    *,
    serve_api: bool = True,
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
        routers = (
            parameters,
            voices,
            interactions,
            predictions,
            patterns,
            emergence,
            alerts,
            alert_conditions,
            stream,
            ws,
            orchestration,
            audit,
            query,
            export,
            monitor,
            sessions,
            security_keys,
            push,
            pipeline,
            console,
        )
        for module in routers:
            app.include_router(module.router, responses=problems.problem_responses(422, 503))
        graphql = graphql_router()
        declare_access(graphql.routes, Role.VIEWER)  # each field checks its own role
        app.include_router(graphql)
    app.include_router(health.router)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build_openapi()
        return problems.document_problems(schema) if fresh else schema

    app.openapi = openapi  # type: ignore[method-assign]

    # The last added is the outermost: metrics see every answer, cached ones too.
    app.add_middleware(ReadCache, seconds=context.settings.api_cache_seconds)
    app.add_middleware(Guard, api=app, gatekeeper=context.gatekeeper, audit=context.audit)
    app.add_middleware(RedMetrics)
    return app
