"""The pipeline's health in one answer for people (the console's overview): readiness,
consumer lag, events per second and the model version served. Readiness and metrics are
this process's: in the embedded setup that is the whole pipeline; at scale, each API
process reports the worker it runs (none: the numbers are null)."""

from __future__ import annotations

import time
from collections import deque

from fastapi import APIRouter
from prometheus_client import Counter
from pydantic import BaseModel, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.metrics import EVENTS_DECODED, MODEL_VERSION_INFO
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/pipeline", tags=["monitoring"])

#: (monotonic time, events decoded so far) of the last minute's answers: the rate between
_SAMPLES: deque[tuple[float, float]] = deque()
_RATE_OVER_SECONDS = 60.0


class PipelineHealth(BaseModel):
    ready: bool = Field(description="Every consumer polling, models serving or off.")
    checks: dict[str, str]
    lag: int | None = Field(description="Records behind the log end, all consumers together.")
    events_per_second: float | None = Field(
        description="Events decoded per second since an answer up to a minute ago."
    )
    model_version: str | None


def _total(metric: Counter) -> float:
    return float(
        sum(s.value for f in metric.collect() for s in f.samples if s.name.endswith("_total"))
    )


def _rate(now: float, total: float) -> float | None:
    while _SAMPLES and now - _SAMPLES[0][0] > _RATE_OVER_SECONDS:
        _SAMPLES.popleft()
    _SAMPLES.append((now, total))
    (then, before) = _SAMPLES[0]
    return None if now - then < 1.0 else round((total - before) / (now - then), 1)


@router.get(
    "",
    summary="Readiness, lag, throughput and model version, for people",
    response_model=PipelineHealth,
    **requires(Role.VIEWER),
)
async def pipeline_health(ctx: ContextDep) -> PipelineHealth:
    if ctx.worker is None or not ctx.prepared:
        # an API process without a worker is no failure; a worker still preparing is
        return PipelineHealth(
            ready=ctx.worker is None,
            checks={},
            lag=None,
            events_per_second=None,
            model_version=None,
        )
    readiness = ctx.worker.readiness()
    lags = [c["lag"] for c in readiness.consumers.values() if c.get("lag") is not None]
    versions = [
        s.labels["version"]
        for family in MODEL_VERSION_INFO.collect()
        for s in family.samples
        if s.value == 1
    ]
    return PipelineHealth(
        ready=readiness.ready,
        checks=readiness.checks,
        lag=sum(lags) if lags else None,
        events_per_second=_rate(time.monotonic(), _total(EVENTS_DECODED)),
        model_version=versions[0] if versions else None,
    )
