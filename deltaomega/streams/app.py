"""The worker, from one Settings: window consumers, state and output sinks, inference.

The input topics are read by :class:`WindowConsumer` (confluent-kafka batches, open windows
in a :class:`WindowStore`); everything downstream of the state topics runs as Faust agents
and tasks, on the same event loop.
"""

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
from deltaomega.streams.deadletter import DeadLetterPublisher, faust_sender
from deltaomega.streams.inference import InferenceEngine
from deltaomega.streams.progress import Progress
from deltaomega.streams.specs import INTERACTION_SPEC, VOICE_SPEC
from deltaomega.streams.state_sink import StateSinkAgent
from deltaomega.streams.window_agent import WindowAgent, WindowStreamSpec
from deltaomega.streams.window_consumer import BatchOutputs, WindowConsumer
from deltaomega.streams.window_store import WindowStore
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
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        broker_commit_interval=1.0,
        # Faust agents only drain output topics into ClickHouse, _SINK_MAX_ROWS at a time.
        stream_buffer_maxsize=_SINK_MAX_ROWS,
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

    deadletter = DeadLetterPublisher(faust_sender(topic(topics.deadletter)))

    def window_consumer(
        spec: WindowStreamSpec,
        source: str,
        states: str,
        changelog: str,
        aggregator: TumblingWindowAggregator,
    ) -> WindowConsumer:
        outputs = BatchOutputs(settings, spec.name)
        store = WindowStore(
            (settings.data_dir / "windows" / spec.name).resolve(),
            changelog,
            settings.kafka_bootstrap,
            aggregator.is_watermark_key,
        )
        agent = WindowAgent(
            spec,
            store,
            aggregator,
            codec,
            sink,
            DeadLetterPublisher(outputs.sender(topics.deadletter)),
            progress,
            outputs.emit_to(states),
        )
        return WindowConsumer(settings, source, agent, outputs)

    consumers = [
        window_consumer(
            VOICE_SPEC,
            topics.voice_events,
            topics.voice_states,
            topics.voice_windows_changelog,
            TumblingWindowAggregator(METRICS, settings.window_ms, settings.grace_ms),
        ),
        window_consumer(
            INTERACTION_SPEC,
            topics.interactions,
            topics.interaction_states,
            topics.interaction_windows_changelog,
            TumblingWindowAggregator(
                ("strength",), settings.interaction_window_ms, settings.grace_ms
            ),
        ),
    ]
    for consumer in consumers:
        _register_consumer(app, consumer)

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

    _register_sink(app, topic(topics.voice_states), voice_state_sink)
    _register_sink(app, topic(topics.interaction_states), interaction_state_sink)

    return Pipeline(app=app, topics=topics, progress=progress)


def _register_consumer(app: faust.App, consumer: WindowConsumer) -> None:
    async def consume() -> None:
        await consumer.run()

    consume.__name__ = f"consume_{consumer.name}_windows"
    app.task(consume)


def _register_sink(app: faust.App, source: Any, agent: StateSinkAgent) -> None:
    """One agent moving a topic into its ClickHouse table.

    concurrency=1: more would let Faust commit past in-flight batches (faust issue 606).
    """

    async def store(stream: Any) -> None:
        await agent.run(stream, _SINK_MAX_ROWS, _SINK_WITHIN_SECONDS)

    store.__name__ = f"store_{agent.table}"
    app.agent(source, name=f"{agent.table}-sink", concurrency=1)(store)
