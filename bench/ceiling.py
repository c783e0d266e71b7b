"""The ceiling: confluent-kafka ``consume(num_messages=…)`` plus the bulk decoder, nothing else.

    .venv/bin/python -m bench.ceiling --events 300000 --voices 64 [--batch 500]

Preloads fresh topics like ``bench.worker_throughput`` and reads them back as fast as the
client and ``AvroCodec.decode_voice_events`` allow: what no worker on this machine can beat.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer

from bench._common import drop_topics_at_exit, emit, local_broker, parse_arguments, preload
from deltaomega.config import Settings
from deltaomega.schemas import AvroCodec
from deltaomega.topics import ensure_topics


def read_all(settings: Settings, topic: str, events: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"ceiling-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    consumer.subscribe([topic])
    codec = AvroCodec()
    decoded = 0
    started = None
    while decoded < events:
        messages = consumer.consume(num_messages=10_000, timeout=1.0)
        if not messages:
            continue
        if started is None:
            started = time.perf_counter()
        batch = codec.decode_voice_events([m.value() for m in messages if m.error() is None])
        decoded += len(batch.columns)
    consumer.close()
    assert started is not None
    return time.perf_counter() - started


def main() -> None:
    args = parse_arguments(300_000)
    tag = uuid.uuid4().hex[:8]
    settings = Settings(topic_prefix=f"ceiling{tag}.", kafka_bootstrap=local_broker())
    drop_topics_at_exit(settings)
    topics = ensure_topics(settings)
    preload(settings, args.events, args.voices, args.batch)
    seconds = read_all(settings, topics.voice_events, args.events)
    print(
        f"ceiling (consume + bulk decode): {args.events / seconds:,.0f} events/s "
        f"({args.events:,} events, {args.batch}/record, {seconds:.2f}s)"
    )
    emit(bench="ceiling", batch=args.batch, events=args.events, events_per_s=args.events / seconds)


if __name__ == "__main__":
    main()
