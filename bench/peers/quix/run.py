"""Peer 2: Quix Streams' dataframe API for our aggregation.

    <venv>/bin/python -m bench.peers.quix.run --bootstrap 127.0.0.1:9092 \\
        --topic TOPIC --events 100000

Runs in its own virtualenv (``requirements.txt`` beside this file; ``bench.peers_throughput``
creates it). ``app.dataframe(topic)`` reads TOPIC from the earliest offset with a fresh
consumer group; a custom deserializer checks the 10-byte single-object header and decodes
the body with ``fastavro.schemaless_reader``; the event time is the event's ``ts`` (a
timestamp extractor), and ``tumbling_window(10 s, grace 5 s).agg(Count, 4 × Mean).final()``
keeps the windows per message key (the voice id) in Quix's default RocksDB state, emitting
each window once when it closes, like our worker. After ``--events`` events (counted by the
application's ``on_message_processed`` hook) it stops and prints one JSON line; the timer
runs from the first record deserialized to the last one processed; ``until_stopped_s`` runs
on to ``app.run()`` returning, after the final checkpoint (state flushed, changelog produced,
offsets committed): with the default 5 s commit interval a short run's only checkpoint is
that final one.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Mean
from quixstreams.models import Deserializer

from bench.peers._single_object import METRICS, VoiceEventDecoder, result_line


class AvroSingleObjectDeserializer(Deserializer):
    def __init__(self, on_first: Any) -> None:
        super().__init__()
        self.decoder = VoiceEventDecoder()
        self.on_first = on_first

    def __call__(self, value: bytes, ctx: Any) -> Any:
        if self.on_first is not None:
            self.on_first()
            self.on_first = None
        return self.decoder(value)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="peer-quix-"))
    seen = closed = in_closed = 0
    started = finished = 0.0

    def first_event() -> None:
        nonlocal started
        started = time.perf_counter()

    def processed(topic: str, partition: int, offset: int) -> None:
        nonlocal seen, finished
        seen += 1
        if seen == args.events:
            finished = time.perf_counter()
            app.stop()

    def window_closed(window: dict[str, Any]) -> None:
        nonlocal closed, in_closed
        closed += 1
        in_closed += window["count"]

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"peer-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        on_message_processed=processed,
    )
    topic = app.topic(
        args.topic,
        key_deserializer="bytes",
        value_deserializer=AvroSingleObjectDeserializer(first_event),
        timestamp_extractor=lambda value, headers, timestamp, kind: value["ts"],
    )
    sdf = app.dataframe(topic)
    sdf = (
        sdf.tumbling_window(duration_ms=10_000, grace_ms=5_000)
        .agg(count=Count(), **{m: Mean(m) for m in METRICS})
        .final()
    )
    sdf.update(window_closed)
    app.run()
    stopped = time.perf_counter()
    print(
        result_line(
            "quix",
            seen,
            finished - started,
            closed,
            events_in_closed_windows=in_closed,
            until_stopped_s=round(stopped - started, 3),
            store="rocksdb",
            versions={p: version(p) for p in ("quixstreams", "confluent-kafka", "fastavro")},
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
