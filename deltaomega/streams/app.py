"""The Faust app factory: topics, durable window tables and the agents, from one Settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from deltaomega.config import Settings
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    INTERACTION_STATE,
    METRICS,
    PATTERN,
    PREDICTION,
    VOICE_STATE,
)
from deltaomega.sinks.clickhouse import ClickHouse, ClickHouseSink
from deltaomega.sinks.recent import last_tick, states_since
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.inference import InferenceEngine
from deltaomega.streams.progress import Progress
from deltaomega.streams.specs import INTERACTION_SPEC, VOICE_SPEC
from deltaomega.streams.state_sink import StateSinkAgent
from deltaomega.streams.window_agent import WindowAgent
from deltaomega.streams.windows import TumblingWindowAggregator
from deltaomega.topics import Topics

_SINK_MAX_ROWS = 50_000
_SINK_WITHIN_SECONDS = 1.0


@dataclass
class Pipeline:
    app: faust.App
    topics: Topics
    progress: Progress


def create_faust_app(settings: Settings) -> faust.App:
    datadir = (settings.data_dir / "faust").resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.table_store,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        # Windows close on our per-partition event-time watermark, never on Faust's clock.
        table_cleanup_interval=3600.0,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, settings.batch_max_records),
        producer_max_request_size=4 * 1024 * 1024,
    )


def create_pipeline(
    settings: Settings, clickhouse: ClickHouse, codec: AvroCodec | None = None
) -> Pipeline:
    """Build the app and register its agents (nothing runs until the app starts)."""
    codec = codec or AvroCodec.from_settings(settings)
    app = create_faust_app(settings)
    topics = Topics.from_settings(settings)
    sink = ClickHouseSink(clickhouse, settings.clickhouse_database)
    progress = Progress()

    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    deadletter = DeadLetterPublisher(topic(topics.deadletter))

    def window_table(name: str) -> Any:
        return app.Table(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)

    voice_agent = WindowAgent(
        VOICE_SPEC,
        app,
        window_table("voice-windows"),
        topic(topics.voice_states),
        TumblingWindowAggregator(METRICS, settings.window_ms, settings.grace_ms),
        codec,
        sink,
        deadletter,
        progress,
    )
    interaction_agent = WindowAgent(
        INTERACTION_SPEC,
        app,
        window_table("interaction-windows"),
        topic(topics.interaction_states),
        TumblingWindowAggregator(("strength",), settings.interaction_window_ms, settings.grace_ms),
        codec,
        sink,
        deadletter,
        progress,
    )

    def recent(windows: int) -> tuple[int | None, list[dict[str, Any]], list[dict[str, Any]]]:
        database = settings.clickhouse_database
        last = last_tick(clickhouse, database)
        if last is None:
            return None, [], []
        return (
            last,
            *states_since(clickhouse, database, last - (windows - 1) * settings.window_ms),
        )

    inference = (
        InferenceEngine(
            settings,
            ModelRuntime(ModelRegistry(settings.resolved_models_dir), settings.inference_threads),
            recent,
        )
        if settings.models_enabled
        else None
    )
    feed = inference.add_states if inference is not None else None
    voice_state_sink = StateSinkAgent(
        VOICE_STATE, "voice_states", codec, sink, deadletter, on_records=feed
    )
    interaction_state_sink = StateSinkAgent(
        INTERACTION_STATE, "interaction_states", codec, sink, deadletter, on_records=feed
    )
    # Model outputs: topic → ClickHouse table, one sink agent each.
    outputs = {
        PREDICTION: (topics.predictions, "predictions"),
        CONFLICT_PREDICTION: (topics.conflicts, "conflict_predictions"),
        EMERGENCE: (topics.emergence, "emergence"),
        PATTERN: (topics.patterns, "patterns"),
        ALERT: (topics.alerts, "alerts"),
    }
    output_topics = {schema: topic(name) for schema, (name, _) in outputs.items()}
    for schema, (_, table) in outputs.items():
        _register_sink(
            app, output_topics[schema], StateSinkAgent(schema, table, codec, sink, deadletter)
        )

    if inference is not None:
        engine = inference

        async def publish(schema: str, key: bytes, record: dict[str, Any]) -> None:
            value = codec.encode(schema, record, validate=False)
            await output_topics[schema].send(key=key, value=value)

        @app.task  # type: ignore[untyped-decorator]
        async def run_inference() -> None:
            await engine.run(publish)

    batch, within = settings.batch_max_records, settings.batch_within_seconds

    # concurrency=1: more would let Faust commit past in-flight batches (faust issue 606).
    @app.agent(topic(topics.voice_events), name="voice-windows", concurrency=1)
    async def voice_windows(stream: Any) -> None:
        await voice_agent.run(stream, batch, within)

    @app.agent(topic(topics.interactions), name="interaction-windows", concurrency=1)
    async def interaction_windows(stream: Any) -> None:
        await interaction_agent.run(stream, batch, within)

    _register_sink(app, topic(topics.voice_states), voice_state_sink)
    _register_sink(app, topic(topics.interaction_states), interaction_state_sink)

    return Pipeline(app=app, topics=topics, progress=progress)


def _register_sink(app: faust.App, source: Any, agent: StateSinkAgent) -> None:
    """One agent (concurrency 1, see above) moving a topic into its ClickHouse table."""

    async def store(stream: Any) -> None:
        await agent.run(stream, _SINK_MAX_ROWS, _SINK_WITHIN_SECONDS)

    store.__name__ = f"store_{agent.table}"
    app.agent(source, name=f"{agent.table}-sink", concurrency=1)(store)
