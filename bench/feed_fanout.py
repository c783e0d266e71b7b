"""Feed fan-out: one tail per topic serving many subscribers — latency from a record's
production to each subscriber having it, and the process's memory.

    .venv/bin/python -m bench.feed_fanout [--subscribers 1000] [--waves 40] [--per-wave 50]

Runs the API's feed hub in this process against the local broker (started if needed): the
subscribers (10 callers' worth each, filters keeping every record) read concurrently while
alerts are produced in waves 100 ms apart, each stamped with its production time. Reported:
p50/p99 of (delivered − produced) over every delivery, the deliveries per second, the one
consumer per topic, and the process's resident memory before and with the subscribers. The
HTTP or WebSocket write after delivery is not included (each subscriber only takes the
record's JSON, built once per record for all of them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from bench._common import drop_topics_at_exit, emit, local_broker
from deltaomega.api.feed_hub import FeedHub, Subscriber
from deltaomega.config import Settings
from deltaomega.errors import ServiceUnavailableError
from deltaomega.logs import configure_logging
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT
from deltaomega.topics import Topics, ensure_topics


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def produce(settings: Settings, topic: str, waves: int, per_wave: int) -> None:
    codec = AvroCodec.from_settings(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 1})
    for wave in range(waves):
        for n in range(per_wave):
            now = time.time_ns() // 1_000_000
            subject = f"v{n % 97}"
            record = alert_record(
                "conflict", subject, wave, "CRITICAL", "bench", 0.9, 0.85, [], "v1", now
            )
            producer.produce(topic, codec.encode(ALERT, record), subject.encode())
        producer.flush(10)
        time.sleep(0.1)


async def consume(subscriber: Subscriber, expected: int, delays: list[float]) -> None:
    got = 0
    async for batch in subscriber.deliveries():
        now = time.time_ns() / 1e6
        for record, _ in batch:
            _ = record.json  # what a feed sends, built once per record
            delays.append(now - record.record["produced_at"])
        got += len(batch)
        if got >= expected:
            return


async def run(args: argparse.Namespace) -> None:
    settings = Settings(
        kafka_bootstrap=local_broker(),
        topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.",
        partitions=3,
        feed_max_subscribers=args.subscribers + 10,
        feed_max_subscribers_per_principal=args.subscribers,
    )
    drop_topics_at_exit(settings)
    await asyncio.to_thread(ensure_topics, settings)
    topic = Topics.from_settings(settings).alerts
    hub = FeedHub(settings, AvroCodec.from_settings(settings))
    for _ in range(30):  # a topic just created may not have its leader yet
        try:
            await hub.tail(topic)
            break
        except ServiceUnavailableError:
            await asyncio.sleep(0.5)
    before = rss_mib()
    subscribers = [
        await hub.subscribe(topic, f"caller-{i % 10}", lambda r: True, None, "cursor")
        for i in range(args.subscribers)
    ]
    expected = args.waves * args.per_wave
    delays: list[float] = []
    started = time.perf_counter()
    readers = [asyncio.create_task(consume(s, expected, delays)) for s in subscribers]
    producing = asyncio.create_task(
        asyncio.to_thread(produce, settings, topic, args.waves, args.per_wave)
    )
    peak = before
    while not all(r.done() for r in readers):
        await asyncio.sleep(0.2)
        peak = max(peak, rss_mib())
    await producing
    seconds = time.perf_counter() - started
    delays.sort()
    dropped = sum(1 for s in subscribers if s.dropped)
    await hub.close()
    emit(
        bench="feed_fanout",
        subscribers=args.subscribers,
        records=expected,
        deliveries=len(delays),
        dropped=dropped,
        tails=1,
        p50_ms=round(statistics.median(delays), 1),
        p99_ms=round(delays[int(len(delays) * 0.99) - 1], 1),
        deliveries_per_s=round(len(delays) / seconds),
        rss_before_mib=round(before),
        rss_peak_mib=round(peak),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=40)
    parser.add_argument("--per-wave", type=int, default=50)
    configure_logging("WARNING")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
