"""What the benchmarks share: arguments, the local broker, preloading voice events."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deltaomega import localkafka
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.metrics import BATCH_SECONDS
from deltaomega.producer import VoiceProducer

T0 = 1_800_000_000_000


def batch_seconds() -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], int]]:
    """The window consumers' seconds and batch counts, by (stream, stage), summed."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    for metric in BATCH_SECONDS.collect():
        for sample in metric.samples:
            key = (sample.labels["stream"], sample.labels["stage"])
            if sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = int(sample.value)
    return sums, counts


def emit(**result: object) -> None:
    """One machine-readable result line; `bench.report` collects them into one table."""
    print("RESULT " + json.dumps(result), flush=True)


def parse_arguments(default_events: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=default_events)
    parser.add_argument("--voices", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="events per Kafka record")
    args = parser.parse_args()
    configure_logging("WARNING")
    return args


def local_broker() -> str:
    """Start (or reuse) the local broker of this checkout; its bootstrap address."""
    broker = Settings(data_dir=Path(".deltaomega"))
    localkafka.start(broker)
    return localkafka.status(broker).bootstrap


def bench_event(n: int, voices: int, ts: int | None = None) -> dict[str, object]:
    """The n-th benchmark event: voices in turn, 10 ms apart per voice from T0 by default."""
    return {
        "event_id": f"b-{n}",
        "voice_id": f"voice-{n % voices:05d}",
        "ts": T0 + n // voices * 10 if ts is None else ts,
        "temperature": 1.0,
        "activation": (n % 100) / 100,
        "stress": 0.3,
        "influence": 0.4,
        "context": {},
    }


def preload(settings: Settings, events: int, voices: int, batch: int) -> float:
    started = time.perf_counter()
    with VoiceProducer(settings, batch_size=batch) as producer:
        for n in range(events):
            producer.send_voice_event(bench_event(n, voices))
    return time.perf_counter() - started
