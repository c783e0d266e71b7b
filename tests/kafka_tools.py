"""Exact reads of topics and consumer groups for assertions: whole topics up to their end
at the time of the call, log ends and committed offsets."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from deltaomega.config import Settings
from deltaomega.schemas.codec import AvroCodec


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _consumer(bootstrap: str, group: str = "test-reader") -> Consumer:
    return Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )


def log_end(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition → high watermark."""
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in sorted(partitions)
        }
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of ``topic`` from its start to its end now, in partition/offset order."""
    ends = log_end(bootstrap, topic)
    consumer = _consumer(bootstrap)
    out: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        position = dict.fromkeys(ends, -1)
        deadline = time.monotonic() + timeout
        while any(position[p] + 1 < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout}s"
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                p, o = int(message.partition()), int(message.offset())
                if o >= ends[p]:
                    continue
                position[p] = o
                out.append(
                    Record(p, o, message.key(), message.value(), dict(message.headers() or []))
                )
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition → the group's committed offset (-1001 when none)."""
    consumer = _consumer(bootstrap, group)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: int(tp.offset) for tp in found}
    finally:
        consumer.close()


def avro_records(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, decoded record) of each record of ``topic`` up to its end now, partition by
    partition."""
    codec = AvroCodec.from_settings(settings)
    return [
        (r.key, codec.decode(r.value)[1])
        for r in read_topic(settings.kafka_bootstrap, topic)
        if r.value is not None
    ]


def wait_for_records(
    settings: Settings, topic: str, count: int, timeout: float = 30.0
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """The records of ``topic`` once it holds at least ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        records = avro_records(settings, topic)
        if len(records) >= count:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(records)} records on {topic} after {timeout}s, not {count}")
        time.sleep(0.2)


def produce_avro(
    settings: Settings, topic: str, key: str, schema: str, record: dict[str, Any]
) -> None:
    """One Avro record, delivered before this returns."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    codec = AvroCodec.from_settings(settings)
    producer.produce(topic, codec.encode(schema, record), key.encode())
    assert producer.flush(10) == 0
