"""The feed hub against the real broker: one consumer per topic however many subscribers,
each gets exactly the records of its filter in order, a stalled one is dropped without
holding up the rest, caps hold, and a resume replays history into the live stream with no
record twice or missing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from deltaomega.api.feed_hub import Delivery, FeedHub, FeedRecord, Subscriber
from deltaomega.config import Settings
from deltaomega.errors import TooManySubscribersError, ValidationError
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT
from deltaomega.topics import Topics, ensure_topics

RULES = ("conflict", "emergence", "stress_trend", "interval_breach")


def _produce(settings: Settings, topic: str, first: int, count: int, pause: float = 0.0) -> None:
    """Alerts first..first+count-1: rule by number, subject spread over the partitions."""
    codec = AvroCodec.from_settings(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    for n in range(first, first + count):
        record = alert_record(
            RULES[n % 4], f"v{n % 17}", n, "INFO", str(n), 0.0, 0.0, [], "v1", 1_800_000_000_000
        )
        producer.produce(topic, codec.encode(ALERT, record), f"v{n % 17}".encode())
        if pause:
            producer.poll(0)
            time.sleep(pause)
    assert producer.flush(10) == 0


def _rule(rule: str) -> Callable[[FeedRecord], bool]:
    return lambda r: r.record["rule"] == rule


async def _collect(subscriber: Subscriber, count: int, timeout: float = 30.0) -> list[Delivery]:
    got: list[Delivery] = []

    async def read() -> None:
        async for batch in subscriber.deliveries():
            got.extend(batch)
            if len(got) >= count:
                return

    await asyncio.wait_for(read(), timeout)
    return got


def _numbers(got: list[Delivery]) -> list[int]:
    return [int(r.record["message"]) for r, _ in got]


def _in_order(got: list[Delivery]) -> bool:
    """Offsets rise within each partition, and each cursor is the position just past."""
    last: dict[int, int] = {}
    for record, cursor in got:
        if record.offset <= last.get(record.partition, -1):
            return False
        last[record.partition] = record.offset
        if f"{record.partition}:{record.offset}" not in cursor.split(","):
            return False
    return True


def _tails(topic: str) -> float | None:
    return REGISTRY.get_sample_value("deltaomega_feed_tails", {"topic": topic})


@pytest.mark.kafka
async def test_two_hundred_subscribers_share_one_tail_and_each_gets_its_records(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(feed_queue_records=300, feed_max_subscribers_per_principal=20)
    await asyncio.to_thread(ensure_topics, settings)
    topic = Topics.from_settings(settings).alerts
    hub = FeedHub(settings, AvroCodec.from_settings(settings))
    try:
        subscribers = [
            await hub.subscribe(topic, f"caller-{i % 10}", _rule(RULES[i % 4]), None, "cursor")
            for i in range(200)
        ]
        stalled = await hub.subscribe(topic, "stalled", lambda r: True, None, "cursor")
        assert _tails(topic) == 1.0  # one consumer, however many subscribers

        # A subscriber takes what it is offered while it has no more than its bound (300)
        # waiting, and is dropped when offered more beyond it. The one that reads nothing
        # has at most 240 waiting while the first 240 records are offered, however the tail
        # batches them; over 300 (if it is still there) when the last 40 come.
        results: list[list[Delivery]] = [[] for _ in subscribers]
        for first, count in ((0, 240), (240, 80)):
            readers = [asyncio.create_task(_collect(s, count // 4)) for s in subscribers]
            await asyncio.to_thread(_produce, settings, topic, first, count)
            for got, more in zip(results, await asyncio.gather(*readers), strict=True):
                got += more
            if first == 0:
                assert stalled.dropped is None
        readers = [asyncio.create_task(_collect(s, 10)) for s in subscribers]
        await asyncio.to_thread(_produce, settings, topic, 320, 40)
        for got, more in zip(results, await asyncio.gather(*readers), strict=True):
            got += more
        for i, got in enumerate(results):
            assert len(got) == 90
            assert sorted(_numbers(got)) == list(range(i % 4, 360, 4))
            assert _in_order(got)
        # the one that never read was dropped, saying why; nobody waited for it
        assert stalled.dropped == "too slow: more than 300 records waiting"
        assert stalled not in hub.subscribers()

        # caps: per caller (429) and per process (503)
        with pytest.raises(TooManySubscribersError) as mine:
            await hub.subscribe(topic, "caller-0", _rule("conflict"), None, "cursor")
        assert mine.value.per_principal
        assert str(mine.value) == ("20 feeds are open for this caller already (the most is 20)")
        for s in subscribers:
            s.close()
        assert hub.subscribers() == []
    finally:
        await hub.close()
    assert _tails(topic) == 0.0


@pytest.mark.kafka
async def test_a_resume_replays_history_into_the_live_stream_exactly_once(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(feed_max_subscribers=3)
    await asyncio.to_thread(ensure_topics, settings)
    topic = Topics.from_settings(settings).alerts
    hub = FeedHub(settings, AvroCodec.from_settings(settings))
    try:
        live = await hub.subscribe(topic, "a", lambda r: True, None, "cursor")
        await asyncio.to_thread(_produce, settings, topic, 0, 300)
        first = await _collect(live, 300)
        assert sorted(_numbers(first)) == list(range(300))
        middle = first[149][1]  # the cursor after the 150th record this client had

        # records go on arriving while the history is replayed
        more = threading.Thread(target=_produce, args=(settings, topic, 300, 200, 0.002))
        more.start()
        cursor = {int(p): int(o) for p, o in (x.split(":") for x in middle.split(","))}
        resumed = await hub.subscribe(topic, "a", lambda r: True, cursor, "Last-Event-ID")
        await asyncio.to_thread(more.join)
        got = await _collect(resumed, 350)
        assert sorted(_numbers(got)) == sorted(_numbers(first[150:])) + list(range(300, 500))
        assert len({(r.partition, r.offset) for r, _ in got}) == 350  # none twice
        assert _in_order(got)

        # from every partition's start, filtered
        start = dict.fromkeys(cursor, -1)
        conflicts = await hub.subscribe(topic, "a", _rule("conflict"), start, "cursor")
        filtered = await _collect(conflicts, 125)
        assert sorted(_numbers(filtered)) == list(range(0, 500, 4))
        assert _in_order(filtered)
        with pytest.raises(TooManySubscribersError) as full:
            await hub.subscribe(topic, "b", lambda r: True, None, "cursor")
        assert not full.value.per_principal
        assert str(full.value) == "this API process serves 3 feed subscribers already"

        # a cursor not of this topic: 422 naming the field
        conflicts.close()
        with pytest.raises(ValidationError) as wrong:
            await hub.subscribe(topic, "b", lambda r: True, {99: 0}, "Last-Event-ID")
        assert wrong.value.field == "Last-Event-ID"
        assert str(wrong.value).startswith("Last-Event-ID: names partition 99")
    finally:
        await hub.close()
