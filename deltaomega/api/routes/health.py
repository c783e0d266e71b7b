"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deltaomega.api.auth.access import METRICS_SETTING, public
from deltaomega.api.deps import ContextDep
from deltaomega.api.problems import problem, problem_responses
from deltaomega.errors import ServiceUnavailableError
from deltaomega.outages import down_services

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_RETRY_AFTER_SECONDS = 5


@router.get("/healthz", summary="The process is up", **public())
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready to serve: ClickHouse and Kafka answer and, when hosted here, every worker "
    "consumer runs",
    description="503 problem+json with the checks that fail (a reason per check, never an "
    "error's text) and, with a worker, each consumer's last poll and batch age, "
    "consecutive failures and lag.",
    responses=problem_responses(503),
    **public(),
)
async def readyz(ctx: ContextDep) -> JSONResponse:
    checks: dict[str, str] = {}
    details: dict[str, Any] = {}
    try:
        checks["clickhouse"] = "ok" if await ctx.queries.ping() else "unexpected answer"
    except ServiceUnavailableError:
        checks["clickhouse"] = "unavailable"
    except Exception:  # noqa: BLE001 - any failure means not ready; the log has the details
        log.exception("readiness: the ClickHouse check failed")
        checks["clickhouse"] = "error"
    for service, seconds in sorted(down_services().items()):
        checks[service] = f"unavailable for {seconds:.0f} s"
        if service == "redis":  # rate limits fail open: the API still serves
            checks[service] = f"ok (unavailable for {seconds:.0f} s; rate limits not enforced)"
    if ctx.setup_problem is not None:
        checks["setup"] = ctx.setup_problem
    elif not ctx.prepared:
        checks["setup"] = "creating topics and tables"
    if ctx.prepared and not ctx.gatekeeper.keys.loaded:
        checks["api-keys"] = "loading"
    if ctx.control is not None:
        # the API serves while the control plane joins its group (after a crash, the old
        # member's session must run out first); a stopped one is a failure
        state = ctx.control.state
        checks["control-plane"] = "ok (starting)" if state == "starting" else state
    if ctx.worker is not None and ctx.prepared:
        readiness = ctx.worker.readiness()
        checks.update(readiness.checks)
        details["consumers"] = readiness.consumers
    if all(v == "ok" or v.startswith("ok ") for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks, **details})
    response = problem(
        503,
        "Not ready",
        "; ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok"),
        checks=checks,
        **details,
    )
    response.headers["Retry-After"] = str(_RETRY_AFTER_SECONDS)
    return response


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    **public(protected_by=METRICS_SETTING),
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
