"""End-to-end worker throughput: preload N voice events, then time decode → windows → ClickHouse.

    .venv/bin/python -m bench.worker_throughput --events 200000 --voices 64 [--batch 500]

Starts (or reuses) the local broker, writes into fresh topics, runs the real pipeline
in-process on the embedded ClickHouse, and prints events/s from the first record consumed
to the last raw row visible in ClickHouse.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from faust.contrib.asgi import faust_app_running

from deltaomega import localkafka
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.producer import VoiceProducer
from deltaomega.sinks.clickhouse import connect
from deltaomega.sinks.migrate import apply_migrations
from deltaomega.streams.app import create_pipeline
from deltaomega.topics import ensure_topics

T0 = 1_800_000_000_000


def preload(settings: Settings, events: int, voices: int, batch: int) -> float:
    started = time.perf_counter()
    with VoiceProducer(settings, batch_size=batch) as producer:
        for n in range(events):
            voice = n % voices
            producer.send_voice_event(
                {
                    "event_id": f"b-{n}",
                    "voice_id": f"voice-{voice:05d}",
                    "ts": T0 + n // voices * 10,
                    "temperature": 1.0,
                    "activation": (n % 100) / 100,
                    "stress": 0.3,
                    "influence": 0.4,
                    "context": {},
                }
            )
    return time.perf_counter() - started


async def consume(settings: Settings, events: int) -> tuple[float, int]:
    clickhouse = connect(settings)
    apply_migrations(clickhouse.client, settings.clickhouse_database)
    pipeline = create_pipeline(settings, clickhouse)
    db = settings.clickhouse_database
    async with faust_app_running(pipeline.app):
        while pipeline.progress.events == 0:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        last_report = started
        while True:
            rows = await clickhouse.acall(
                lambda c: c.query(f"SELECT count() FROM {db}.voice_events").result_rows[0][0]
            )
            if rows >= events:
                break
            if time.perf_counter() - last_report > 5:
                print(f"  {rows:,} rows in ClickHouse | {pipeline.progress.line()}", flush=True)
                last_report = time.perf_counter()
            await asyncio.sleep(0.2)
        return time.perf_counter() - started, pipeline.progress.windows_closed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--voices", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="events per Kafka record")
    args = parser.parse_args()
    configure_logging("WARNING")
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="deltaomega-bench-"))
    broker = Settings(data_dir=Path(".deltaomega"))
    localkafka.start(broker)
    settings = Settings(
        topic_prefix=f"bench{tag}.",
        app_id=f"bench-{tag}",
        data_dir=work,
        clickhouse_database=f"bench_{tag}",
        kafka_bootstrap=localkafka.status(broker).bootstrap,
    )
    ensure_topics(settings)
    produce_s = preload(settings, args.events, args.voices, args.batch)
    print(f"preloaded {args.events:,} events ({args.batch}/record) in {produce_s:.1f}s")
    seconds, windows = asyncio.run(consume(settings, args.events))
    print(
        f"worker end to end: {args.events / seconds:,.0f} events/s "
        f"({args.events:,} events, {args.voices} voices, {args.batch}/record, "
        f"{seconds:.2f}s, {windows} windows closed)"
    )


if __name__ == "__main__":
    main()
