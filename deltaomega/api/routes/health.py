"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deltaomega.api.deps import ContextDep
from deltaomega.api.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="ClickHouse answers and, when hosted here, the worker runs")
async def readyz(ctx: ContextDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        checks["clickhouse"] = "ok" if await ctx.queries.ping() else "unexpected answer"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["clickhouse"] = f"error: {exc}"
    if ctx.worker is not None:
        crashed = getattr(ctx.worker, "crashed", False) or any(
            getattr(agent, "crashed", False) for agent in ctx.worker.agents.values()
        )
        running = ctx.worker.started and not crashed
        checks["worker"] = "ok" if running else "not running"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    return problem(
        503, "Not ready", "; ".join(f"{k}: {v}" for k, v in checks.items()), checks=checks
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
