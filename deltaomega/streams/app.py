"""The worker, from one Settings: window consumers, state and output sinks, inference.

The input topics are read by :class:`WindowConsumer` (confluent-kafka batches, open windows
in a :class:`WindowStore`), the state and model-output topics by one :class:`SinkConsumer`;
a :class:`Worker` runs them, and the inference engine, as tasks of one event loop; the
models themselves run in a process of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    ALERT_ACTION,
    ALERT_CONDITION,
    ALERT_DELIVERY,
    AUDIT_EVENT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    INTERACTION_STATE,
    METRICS,
    ORCHESTRATION_STATUS,
    PARAMETER_CHANGE,
    PATTERN,
    PREDICTION,
    PREDICTION_SCORE,
    VOICE_STATE,
)
from deltaomega.sinks.clickhouse import ClickHouse, ClickHouseSink
from deltaomega.sinks.recent import last_tick
from deltaomega.streams.batch_consumer import BatchConsumer
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.inference_leader import InferenceLeader
from deltaomega.streams.model_process import output_topics
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.progress import Progress
from deltaomega.streams.specs import INTERACTION_SPEC, VOICE_SPEC
from deltaomega.streams.state_sink import SinkConsumer, StateSinkAgent
from deltaomega.streams.window_agent import WindowAgent, WindowStreamSpec
from deltaomega.streams.window_consumer import WindowConsumer
from deltaomega.streams.window_store import WindowStore
from deltaomega.streams.windows import TumblingWindowAggregator
from deltaomega.streams.worker import Worker
from deltaomega.topics import Topics

_SINK_MAX_ROWS = 50_000


def _json_modifiers(change: dict[str, Any]) -> dict[str, Any]:
    """Context modifiers hold strings and numbers: the column keeps them as JSON."""
    return {**change, "context_modifiers": json.dumps(change["context_modifiers"], sort_keys=True)}


_SINK_WITHIN_SECONDS = 1.0


@dataclass
class Pipeline:
    worker: Worker
    topics: Topics
    progress: Progress


def create_pipeline(
    settings: Settings, clickhouse: ClickHouse, codec: AvroCodec | None = None
) -> Pipeline:
    """Build the worker (nothing runs until it starts)."""
    codec = codec or AvroCodec.from_settings(settings)
    topics = Topics.from_settings(settings)
    sink = ClickHouseSink(clickhouse, settings.clickhouse_database)
    progress = Progress()

    def deadletters(outputs: BatchOutputs) -> DeadLetterPublisher:
        return DeadLetterPublisher(
            outputs.emit_to(topics.deadletter), settings.deadletter_max_bytes
        )

    sink_outputs = BatchOutputs(settings, "sinks")
    deadletter = deadletters(sink_outputs)

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
            client_config(settings, f"{settings.app_id}-{spec.name}-restore"),
            aggregator.is_watermark_key,
        )
        agent = WindowAgent(spec, store, aggregator, codec, sink, progress)
        return WindowConsumer(settings, source, agent, outputs, states, deadletters(outputs))

    consumers: list[BatchConsumer] = [
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

    voice_state_sink = StateSinkAgent(VOICE_STATE, "voice_states", codec, sink, deadletter)
    interaction_state_sink = StateSinkAgent(
        INTERACTION_STATE, "interaction_states", codec, sink, deadletter
    )
    # Model outputs: topic → ClickHouse table.
    tables = {
        PREDICTION: "predictions",
        CONFLICT_PREDICTION: "conflict_predictions",
        EMERGENCE: "emergence",
        PATTERN: "patterns",
        ALERT: "alerts",
        PREDICTION_SCORE: "prediction_scores",
    }
    sinks = {
        topics.voice_states: voice_state_sink,
        topics.interaction_states: interaction_state_sink,
    }
    for schema, topic in output_topics(topics).items():
        sinks[topic] = StateSinkAgent(schema, tables[schema], codec, sink, deadletter)
    sinks[topics.audit] = StateSinkAgent(AUDIT_EVENT, "audit_log", codec, sink, deadletter)
    sinks[topics.orchestration_status] = StateSinkAgent(
        ORCHESTRATION_STATUS, "orchestrations", codec, sink, deadletter
    )
    for topic, schema, table in (
        (topics.alert_actions, ALERT_ACTION, "alert_actions"),
        (topics.alert_status, ALERT_CONDITION, "alert_conditions"),
        (topics.alert_deliveries, ALERT_DELIVERY, "alert_deliveries"),
    ):
        sinks[topic] = StateSinkAgent(schema, table, codec, sink, deadletter)
    sinks[topics.parameters] = StateSinkAgent(
        PARAMETER_CHANGE, "parameter_changes", codec, sink, deadletter, prepare=_json_modifiers
    )
    consumers.append(
        SinkConsumer(settings, sinks, sink_outputs, _SINK_MAX_ROWS, _SINK_WITHIN_SECONDS)
    )
    if not settings.models_enabled:
        return Pipeline(Worker(consumers), topics, progress)
    leader = InferenceLeader(
        settings, codec, lambda: last_tick(clickhouse, settings.clickhouse_database)
    )
    return Pipeline(Worker(consumers, {"inference": leader.run}, leader.status), topics, progress)
