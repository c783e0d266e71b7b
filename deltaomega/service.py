"""One process for the embedded default: the Faust worker and the API on one event loop.

chdb lets only one process own the ClickHouse data path, so with the embedded engine the
worker (which writes) and the API (which reads) must share a process; at scale they run
apart (`deltaomega worker`, `deltaomega api`) against a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from deltaomega.api.app import create_api
from deltaomega.api.deps import ApiContext
from deltaomega.api.queries import Queries
from deltaomega.config import Settings
from deltaomega.producer import SimulationConfig, run_simulation
from deltaomega.schemas.codec import AvroCodec
from deltaomega.sinks.clickhouse import ClickHouse, connect
from deltaomega.sinks.migrate import apply_migrations
from deltaomega.streams.app import create_pipeline
from deltaomega.topics import Topics, ensure_topics

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0


def build_app(
    settings: Settings,
    clickhouse: ClickHouse | None = None,
    *,
    worker: bool = True,
    api: bool = True,
    simulation: SimulationConfig | None = None,
) -> FastAPI:
    """The ASGI app; its lifespan prepares topics and tables and starts what was asked."""
    clickhouse = clickhouse or connect(settings)
    codec = AvroCodec.from_settings(settings)
    pipeline = create_pipeline(settings, clickhouse, codec) if worker else None
    context = ApiContext(
        settings=settings,
        queries=Queries(clickhouse, settings.clickhouse_database),
        codec=codec,
        topics=Topics.from_settings(settings),
        worker=pipeline.app if pipeline else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(ensure_topics, settings)
        await clickhouse.acall(lambda c: apply_migrations(c, settings.clickhouse_database))
        async with contextlib.AsyncExitStack() as stack:
            if pipeline is not None:
                await stack.enter_async_context(faust_app_running(pipeline.app))
                stack.enter_context(_progress_reporter(pipeline.progress))
            if simulation is not None:
                stack.enter_context(_simulator(settings, simulation))
            yield

    return create_api(context, lifespan, serve_api=api)


@contextlib.contextmanager
def _progress_reporter(progress: Any) -> Any:
    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            log.info("%s", progress.line())

    task = asyncio.get_running_loop().create_task(report())
    try:
        yield
    finally:
        task.cancel()


@contextlib.contextmanager
def _simulator(settings: Settings, config: SimulationConfig) -> Any:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_simulation,
        args=(settings, config, None),
        kwargs={"realtime": True, "stop": stop},
        name="simulator",
        daemon=True,
    )
    thread.start()
    log.info("simulating %d voices at %.0f events/s", config.voices, config.rate)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def run_service(
    settings: Settings,
    *,
    worker: bool = True,
    api: bool = True,
    simulate: bool = False,
    simulate_voices: int = 8,
    simulate_rate: float = 200.0,
) -> None:
    simulation = (
        SimulationConfig(
            voices=simulate_voices, rate=simulate_rate, interaction_rate=simulate_rate / 5
        )
        if simulate
        else None
    )
    app = build_app(settings, worker=worker, api=api, simulation=simulation)
    host, port = settings.api_host, settings.api_port
    if api:
        base = f"http://{host}:{port}"
        log.info("API %s/api/v1/voices | docs %s/docs | metrics %s/metrics", base, base, base)
    else:
        # `deltaomega worker`: the same app, serving only health and metrics.
        log.info("worker health and metrics on http://%s:%d/readyz", host, port)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
