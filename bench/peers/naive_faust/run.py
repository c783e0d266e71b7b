"""Peer 1: the textbook Faust agent for our aggregation, one windowed-table update per event.

    <venv>/bin/python -m bench.peers.naive_faust.run --bootstrap 127.0.0.1:9092 \\
        --topic TOPIC --events 100000 [--store rocksdb|memory]

Runs in its own virtualenv (``requirements.txt`` beside this file; ``bench.peers_throughput``
creates it). A faust-streaming app reads TOPIC from the earliest offset with a fresh
consumer group; a codec decodes each record (10-byte single-object header skipped,
``fastavro.schemaless_reader`` for the body); the agent folds every event into a tumbling
table of 10 s windows keyed by voice id (count and the sums of the four metrics, from which
the means follow), the window chosen by the event's ``ts`` as our worker does. After
``--events`` events it prints one JSON line; the timer runs from the first event the agent
sees to the last (``until_stopped_s``: to the app's stop having returned, offsets committed
and the changelog flushed).

Faust expires windows against the wall clock (``window.stale(end, time.time())`` in the
table's cleanup timer); the bench's events are timestamped in 2027, so no window closes
during a run, and ``windows_closed`` stays 0. The table still holds every window, which the
program sums up at the end (``events_in_table`` must equal ``--events``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import faust
from faust.contrib.asgi import faust_app_running
from faust.serializers.codecs import Codec

from bench.peers._single_object import METRICS, VoiceEventDecoder, result_line


class AvroSingleObject(Codec):
    """Faust's place for a custom deserializer: a codec, here read-only."""

    decoder = VoiceEventDecoder()

    def _loads(self, s: bytes) -> Any:
        return self.decoder(s)

    def _dumps(self, s: Any) -> bytes:
        raise NotImplementedError("the peer only reads")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4, help="of TOPIC (tables match it)")
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    parser.add_argument("--state-dir", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="peer-faust-"))
    app = faust.App(
        f"peer-naive-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{args.bootstrap}",
        store=f"{args.store}://",
        datadir=state_dir,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer=AvroSingleObject())
    closed = 0

    def on_window_close(key: Any, value: Any) -> None:
        nonlocal closed
        closed += 1

    table = app.Table(
        "voice-windows",
        default=dict,
        partitions=args.partitions,
        on_window_close=on_window_close,
    )
    # The window comes from the event's own time, as in our worker (default: Kafka timestamp).
    windows = table.tumbling(10.0, expires=timedelta(seconds=15)).relative_to(
        lambda event: event.value["ts"] / 1000
    )
    seen = 0
    started = finished = 0.0
    done = asyncio.Event()

    @app.agent(topic)
    async def aggregate(stream: Any) -> None:
        nonlocal seen, started, finished
        async for event in stream:
            if seen == 0:
                started = time.perf_counter()
            voice = event["voice_id"]
            agg = windows[voice].value()
            windows[voice] = {
                "count": agg.get("count", 0) + 1,
                **{m: agg.get(m, 0.0) + event[m] for m in METRICS},
            }
            seen += 1
            if seen == args.events:
                finished = time.perf_counter()
                done.set()

    async def run() -> int:
        async with faust_app_running(app, stop_timeout=60):
            await done.wait()
            return sum(value["count"] for value in table.data.values())

    in_table = asyncio.run(run())
    stopped = time.perf_counter()
    print(
        result_line(
            "naive_faust",
            seen,
            finished - started,
            closed,
            events_in_table=in_table,
            until_stopped_s=round(stopped - started, 3),
            store=args.store,
            versions={p: version(p) for p in ("faust-streaming", "aiokafka", "fastavro")},
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
