"""End-to-end worker throughput: preload N voice events, then time decode → windows → ClickHouse.

    .venv/bin/python -m bench.worker_throughput --events 200000 --voices 64 [--batch 500]

Starts (or reuses) the local broker, writes into fresh topics, runs the real pipeline
in-process on the embedded ClickHouse, and prints events/s from the first batch of records
in hand (as the ceiling and the peers count) to the last raw row visible in ClickHouse.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from bench._common import (
    batch_seconds,
    drop_topics_at_exit,
    emit,
    local_broker,
    parse_arguments,
    preload,
)
from deltaomega.config import Settings
from deltaomega.sinks.clickhouse import connect
from deltaomega.sinks.migrate import apply_migrations
from deltaomega.streams.app import create_pipeline
from deltaomega.topics import ensure_topics


async def consume(settings: Settings, events: int) -> tuple[float, int]:
    clickhouse = connect(settings)
    apply_migrations(clickhouse.client, settings.clickhouse_database)
    pipeline = create_pipeline(settings, clickhouse)
    db = settings.clickhouse_database
    pipeline.worker.start()
    try:
        while pipeline.progress.first_batch_at is None:
            await asyncio.sleep(0.01)
        # From the first batch in hand, as the ceiling and the peers count.
        started = pipeline.progress.first_batch_at
        last_report = time.perf_counter()
        while True:
            rows = await clickhouse.acall(
                lambda c: c.query(f"SELECT count() FROM {db}.voice_events").result_rows[0][0]
            )
            if rows >= events:
                break
            if time.perf_counter() - last_report > 5:
                print(f"  {rows:,} rows in ClickHouse | {pipeline.progress.line()}", flush=True)
                last_report = time.perf_counter()
            await asyncio.sleep(0.05)
        return time.perf_counter() - started, pipeline.progress.windows_closed
    finally:
        await pipeline.worker.stop(5.0)


def stage_seconds() -> str:
    """The worker's own per-stage timings (decode and aggregate on the event loop; the
    sink runs in a thread while the next batch is processed, so stages overlap)."""
    sums, counts = batch_seconds()
    stages = ", ".join(
        f"{stage} {value:.2f}" for (stream, stage), value in sums.items() if stream == "voice"
    )
    return f"{stages} ({counts.get(('voice', 'decode'), 0)} batches)"


def main() -> None:
    args = parse_arguments(200_000)
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="deltaomega-bench-"))
    settings = Settings(
        topic_prefix=f"bench{tag}.",
        app_id=f"bench-{tag}",
        data_dir=work,
        clickhouse_database=f"bench_{tag}",
        kafka_bootstrap=local_broker(),
        # Like the ceiling and the peers: the aggregation alone. Starting the model process
        # took a core for the first seconds of a 3-second run; ticks are measured by
        # bench.inference and bench.latency.
        models_enabled=False,
    )
    drop_topics_at_exit(settings)
    ensure_topics(settings)
    produce_s = preload(settings, args.events, args.voices, args.batch)
    print(f"preloaded {args.events:,} events ({args.batch}/record) in {produce_s:.1f}s")
    seconds, windows = asyncio.run(consume(settings, args.events))
    print(
        f"worker end to end: {args.events / seconds:,.0f} events/s "
        f"({args.events:,} events, {args.voices} voices, {args.batch}/record, "
        f"{seconds:.2f}s, {windows} windows closed)"
    )
    print(f"  where the time went (seconds summed over batches): {stage_seconds()}")
    emit(bench="worker", batch=args.batch, events=args.events, events_per_s=args.events / seconds)


if __name__ == "__main__":
    main()
