"""Codec records/s (encode, bulk decode) and ClickHouse sink rows/s, without Kafka.

    .venv/bin/python -m bench.codec_sink [--events 200000] [--voices 64]

The sink writes raw voice events into an embedded ClickHouse (chdb) in a temporary
directory, in batches of 10,000 rows, as the worker does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import bench_event, emit
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.schemas import VOICE_EVENT, AvroCodec
from deltaomega.sinks.clickhouse import ClickHouseSink, connect
from deltaomega.sinks.migrate import apply_migrations

SINK_BATCH = 10_000


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--voices", type=int, default=64)
    args = parser.parse_args()
    configure_logging("WARNING")
    codec = AvroCodec()
    records = [bench_event(n, args.voices) for n in range(args.events)]
    rows = []

    started = time.perf_counter()
    single = [codec.encode(VOICE_EVENT, r, validate=False) for r in records]
    rows.append(("encode, one event per record", rate(len(single), time.perf_counter() - started)))
    started = time.perf_counter()
    batches = [codec.encode_voice_batch(records[i : i + 500]) for i in range(0, len(records), 500)]
    rows.append(
        ("encode, 500 events per record", rate(len(records), time.perf_counter() - started))
    )
    started = time.perf_counter()
    decoded = codec.decode_voice_events(single)
    rows.append(
        (
            "bulk decode, one event per record",
            rate(len(decoded.columns), time.perf_counter() - started),
        )
    )
    started = time.perf_counter()
    decoded_batches = codec.decode_voice_events(batches)
    rows.append(
        (
            "bulk decode, 500 events per record",
            rate(len(decoded_batches.columns), time.perf_counter() - started),
        )
    )

    # The embedded ClickHouse may still be merging parts in there as the directory goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        settings = Settings(data_dir=Path(tmp))
        clickhouse = connect(settings)
        apply_migrations(clickhouse.client, settings.clickhouse_database)
        sink = ClickHouseSink(clickhouse, settings.clickhouse_database)
        cols = decoded.columns
        partitions = np.zeros(len(cols), dtype=np.int64)
        offsets = np.arange(len(cols), dtype=np.int64)
        started = time.perf_counter()
        inserted = 0
        for i in range(0, len(cols), SINK_BATCH):
            part = cols.take(np.arange(i, min(i + SINK_BATCH, len(cols))))
            inserted += sink.insert_voice_events(
                part, partitions[i : i + SINK_BATCH], offsets[i : i + SINK_BATCH]
            )
        rows.append(
            (
                f"ClickHouse (chdb) insert, {SINK_BATCH:,}-row batches",
                rate(inserted, time.perf_counter() - started),
            )
        )

    print(f"# codec and sink, {args.events:,} events, {args.voices} voices")
    print("| stage | per second |")
    print("| --- | --- |")
    for stage, value in rows:
        print(f"| {stage} | {value} |")
        emit(bench="codec_sink", stage=stage, per_s=float(value.replace(",", "")))


if __name__ == "__main__":
    main()
