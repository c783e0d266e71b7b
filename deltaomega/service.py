"""One process for the embedded default: the worker and the API on one event loop.

chdb lets only one process own the ClickHouse data path, so with the embedded engine the
worker (which writes) and the API (which reads) must share a process; at scale they run
apart (`deltaomega worker`, `deltaomega api`) against a ClickHouse server.

The API answers from the first moment: topics and tables are prepared in the background
(retried while Kafka or ClickHouse is away, the outage logged once), and the worker starts
once they exist; until then, and while the worker restores its windows, readiness says
why it is not ready. A stop (Ctrl-C, SIGTERM) cancels everything and waits a bounded time;
a watchdog ends the process if anything still holds it after ``shutdown_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from deltaomega import faults
from deltaomega.alerting.routing import load_routing
from deltaomega.api.analysis_sql import AnalysisSql
from deltaomega.api.app import create_api
from deltaomega.api.deps import ApiContext
from deltaomega.api.feed_hub import FeedHub
from deltaomega.api.pattern_analysis import PatternAnalyzer
from deltaomega.api.queries import Queries
from deltaomega.api.writes import KafkaWrites
from deltaomega.config import Settings
from deltaomega.control.app import control_app
from deltaomega.control.policies import load_policies
from deltaomega.control.runner import ControlPlane
from deltaomega.errors import ConfigurationError, DeltaOmegaError, ServiceUnavailableError
from deltaomega.outages import configure_outages, process_stopping
from deltaomega.producer import SimulationConfig, run_simulation
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT
from deltaomega.security.audit import AuditTrail
from deltaomega.security.gatekeeper import Gatekeeper
from deltaomega.security.keys import KeyFollower, KeyLedger
from deltaomega.security.people import People
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse, connect
from deltaomega.sinks.migrate import apply_migrations
from deltaomega.sinks.retention import apply_ttls
from deltaomega.streams.app import Pipeline, create_pipeline
from deltaomega.streams.health import PipelineHealth, publish_memory_limit
from deltaomega.streams.health import now_ms as health_now_ms
from deltaomega.threads import in_thread
from deltaomega.topics import Topics, ensure_topics

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0
#: Stopping the simulator, the key follower and the control plane (each bounded).
_STOP_PARTS_SECONDS = 5.0
_PREPARE_MAX_DELAY_SECONDS = 10.0
#: ClickHouse settings of the API's reads: one core each, so reads never starve ingestion.
_READ_OPTIONS: dict[str, Any] = {"max_threads": 1}


def build_app(
    settings: Settings,
    clickhouse: ClickHouse | None = None,
    *,
    worker: bool = True,
    api: bool = True,
    simulation: SimulationConfig | None = None,
    demo_keys: bool = False,
    control: bool = False,
) -> FastAPI:
    """The ASGI app; its lifespan prepares topics and tables and starts what was asked."""
    configure_outages(settings.outage_summary_seconds)
    publish_memory_limit()
    if settings.faults:
        faults.arm(settings.faults)
    clickhouse = clickhouse or connect(settings)
    # The API reads on connections of its own (same engine or server as the worker's).
    reads = connect(clickhouse.settings, settings.clickhouse_read_connections, **_READ_OPTIONS)
    codec = AvroCodec.from_settings(settings)
    pipeline = create_pipeline(settings, clickhouse, codec) if worker else None
    context = ApiContext(
        settings=settings,
        queries=Queries(reads, settings.clickhouse_database),
        codec=codec,
        topics=Topics.from_settings(settings),
        gatekeeper=Gatekeeper.from_settings(settings),
        audit=AuditTrail(settings, codec),
        writes=KafkaWrites(settings),
        feeds=FeedHub(settings, codec),
        analysis=AnalysisSql(settings, clickhouse.settings),
        patterns=PatternAnalyzer(settings),
        worker=pipeline.worker if pipeline else None,
    )

    policies = load_policies(settings.policies_file) if control else []
    if policies:
        log.info(
            "%d policies from %s: %s",
            len(policies),
            settings.policies_file,
            ", ".join(p.name + (" (automatic)" if p.automatic else "") for p in policies),
        )
    routing = load_routing(settings.alert_routing_file) if control else None
    if routing is not None and settings.alert_routing_file is not None:
        log.info(
            "alert routing from %s: channels %s",
            settings.alert_routing_file,
            ", ".join(f"{n} ({c.type})" for n, c in routing.channels.items()) or "none",
        )
    control_plane = (
        ControlPlane(lambda: control_app(settings, codec, context.audit, policies, routing))
        if control
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        starting = asyncio.get_running_loop().create_task(
            _prepare_and_start(
                settings,
                clickhouse,
                context,
                pipeline,
                simulation,
                stop,
                demo_keys=demo_keys,
                control_plane=control_plane,
            )
        )
        try:
            yield
        finally:
            stop.set()
            starting.cancel()
            await asyncio.wait({starting}, timeout=_STOP_PARTS_SECONDS)
            if pipeline is not None:
                await pipeline.worker.stop(settings.shutdown_seconds / 2)
            await context.feeds.close()
            await in_thread(context.writes.close)
            await in_thread(context.audit.close)

    return create_api(context, lifespan, serve_api=api)


async def _prepare_and_start(
    settings: Settings,
    clickhouse: ClickHouse,
    context: ApiContext,
    pipeline: Pipeline | None,
    simulation: SimulationConfig | None,
    stop: threading.Event,
    demo_keys: bool = False,
    control_plane: ControlPlane | None = None,
) -> None:
    """Create topics and tables (each retried while its service is away), then start the
    worker and the simulator; runs until cancelled."""
    try:
        await asyncio.gather(
            _until_done("topics", lambda: ensure_topics(settings)),
            _until_done("tables", lambda: clickhouse.call(lambda c: _tables(c, settings))),
        )
    except ConfigurationError as exc:
        context.setup_problem = "topics do not match the settings"
        log.error("cannot start: %s", exc)
        return
    context.prepared = True
    keys = context.gatekeeper.keys
    keys.start()
    if demo_keys:
        await _until_done("demo keys", lambda: _print_demo_keys(settings))
        await _until_done("demo accounts", lambda: _print_demo_people(settings, keys))
    tasks: list[asyncio.Task[None]] = []
    if pipeline is not None:
        pipeline.worker.start()
        tasks.append(asyncio.create_task(_report_progress(pipeline)))
        tasks.append(asyncio.create_task(_check_health(settings, context, pipeline)))
    if control_plane is not None:
        context.control = control_plane
        control_plane.start()
    simulator = None
    if simulation is not None:
        simulator = threading.Thread(
            target=run_simulation,
            args=(settings, simulation, None),
            kwargs={"realtime": True, "stop": stop, "control": True},
            name="simulator",
            daemon=True,
        )
        simulator.start()
        log.info("simulating %d voices at %.0f events/s", simulation.voices, simulation.rate)
    try:
        await asyncio.gather(*tasks)
        await asyncio.Event().wait()
    finally:
        for task in tasks:
            task.cancel()
        stop.set()
        if control_plane is not None:
            await in_thread(control_plane.stop)
        await in_thread(keys.stop)
        if simulator is not None:
            await in_thread(simulator.join, 2.0)


_DEMO_KEYS = (("demo-admin", Role.ADMIN), ("demo-viewer", Role.VIEWER))


def _print_demo_keys(settings: Settings) -> None:
    """An admin and a viewer key for this local run (the last run's are revoked)."""
    ledger = KeyLedger(settings)
    names = {name for name, _ in _DEMO_KEYS}
    for old in ledger.list():
        if old.name in names and not old.revoked:
            ledger.revoke(old.key_id)
    base = base_url(settings)
    for name, role in _DEMO_KEYS:
        _, text = ledger.create(name, role)
        log.info("%s key (%s): %s", name, role.label, text)
    log.info("try: curl -H 'X-API-Key: <key>' %s/api/v1/voices", base)


_DEMO_PEOPLE = (
    ("demo-viewer", Role.VIEWER),
    ("demo-operator", Role.OPERATOR),
    ("demo-admin", Role.ADMIN),
)


def _print_demo_people(settings: Settings, keys: KeyFollower) -> None:
    """Console accounts for this local run, with new passwords (the last run's end)."""
    if not keys.wait_loaded(30):
        raise ServiceUnavailableError("kafka", "the accounts did not load")
    people = People(settings, keys)
    for name, role in _DEMO_PEOPLE:
        if name in keys.book.accounts:
            people.disable(name)
        password = secrets.token_urlsafe(12)
        people.create_account(name, password, role)
        log.info("console account %s (%s), password: %s", name, role.label, password)
    # by name: security keys (WebAuthn) are bound to a host name, never to an address
    console = base_url(settings).replace("://127.0.0.1:", "://localhost:")
    log.info("console: %s/console/", console)


def _tables(client: Any, settings: Settings) -> None:
    apply_migrations(client, settings.clickhouse_database)
    apply_ttls(client, settings.clickhouse_database, settings)


async def _until_done(what: str, prepare: Callable[[], object]) -> None:
    """Run ``prepare`` in a thread until it succeeds; a ConfigurationError is final."""
    delay = 0.5
    while True:
        try:
            await in_thread(prepare)
            return
        except ServiceUnavailableError:
            pass  # the outage tracker logged it
        except ConfigurationError:
            raise
        except DeltaOmegaError as exc:
            log.error("preparing %s failed (%s); retrying in %.1fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _PREPARE_MAX_DELAY_SECONDS)


async def _report_progress(pipeline: Pipeline) -> None:
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        log.info("%s", pipeline.progress.line())


async def _check_health(settings: Settings, context: ApiContext, pipeline: Pipeline) -> None:
    """The pipeline's own alert rules, once a window (deltaomega.streams.health)."""
    health = PipelineHealth(settings, pipeline.progress)
    while True:
        await asyncio.sleep(settings.window_seconds)
        for alert in health.check(health_now_ms()):
            try:
                await context.writes.send(
                    context.topics.alerts, alert["subject"], context.codec.encode(ALERT, alert)
                )
            except ServiceUnavailableError:
                break  # Kafka is away (the outage tracker says so); the next check tells
            log.debug("pipeline alert %s: %s", alert["rule"], alert["message"])


def base_url(settings: Settings) -> str:
    scheme = "https" if settings.api_tls_cert is not None else "http"
    return f"{scheme}://{settings.api_host}:{settings.api_port}"


def server_config(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings: HTTPS when a certificate and key are set."""
    tls: dict[str, Any] = {}
    if settings.api_tls_cert is not None:
        tls = {
            "ssl_certfile": str(settings.api_tls_cert),
            "ssl_keyfile": str(settings.api_tls_key),
            "ssl_context_factory": _tls_context,
        }
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds / 4)),
        ws="websockets-sansio",
        ws_per_message_deflate=True,
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
        ws_max_size=1024 * 1024,
        **tls,
    )


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's context, refusing anything before TLS 1.2 (1.3 is chosen when the client
    offers it: OpenSSL takes the highest version both sides speak)."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Server(uvicorn.Server):
    """uvicorn, with a watchdog armed by the first stop signal."""

    def __init__(self, config: uvicorn.Config, deadline_seconds: float) -> None:
        super().__init__(config)
        self.deadline_seconds = deadline_seconds
        self._watchdog: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._watchdog is None:
            log.info("stopping (signal %d)", sig)
            process_stopping()
            self._watchdog = threading.Thread(
                target=_exit_after, args=(self.deadline_seconds,), name="watchdog", daemon=True
            )
            self._watchdog.start()
        super().handle_exit(sig, frame)


def _exit_after(seconds: float, code: int = 1) -> None:
    """End the process if a stop has not done so within ``seconds``."""
    threading.Event().wait(seconds)
    if code:
        log.error("still not stopped %.0f s after the signal; exiting now", seconds)
    else:
        log.warning("threads still blocked %.0f s after a clean stop; exiting", seconds)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


@contextlib.contextmanager
def _no_stray_threads() -> Iterator[None]:
    """After a clean stop, do not wait long on a thread still blocked in a client call."""
    try:
        yield
    finally:
        threading.Thread(target=_exit_after, args=(2.0, 0), daemon=True).start()


def run_service(
    settings: Settings,
    *,
    worker: bool = True,
    api: bool = True,
    simulate: bool = False,
    simulate_voices: int = 8,
    simulate_rate: float = 200.0,
    demo_keys: bool = False,
    control: bool = False,
) -> None:
    simulation = (
        SimulationConfig(
            voices=simulate_voices, rate=simulate_rate, interaction_rate=simulate_rate / 5
        )
        if simulate
        else None
    )
    app = build_app(
        settings,
        worker=worker,
        api=api,
        simulation=simulation,
        demo_keys=demo_keys,
        control=control,
    )
    host, port = settings.api_host, settings.api_port
    base = base_url(settings)
    if api:
        log.info("API %s/api/v1/voices | docs %s/docs | metrics %s/metrics", base, base, base)
        ws = base.replace("http", "ws", 1)
        log.info("GraphQL %s/graphql | WebSocket %s/api/v1/ws", base, ws)
    else:
        # `deltaomega worker` or `control`: the same app, serving only health and metrics.
        log.info("health and metrics on %s/readyz", base)
    config = server_config(app, settings, host, port)
    server: Any = _Server(config, settings.shutdown_seconds)
    with _no_stray_threads():
        server.run()
