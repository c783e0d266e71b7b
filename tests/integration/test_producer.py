"""The producer SDK against the real broker: keys, batching, delivery reports."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import AvroCodec
from tests.conftest import voice_event

T0 = 1_800_000_000_000


def event(voice: str, n: int) -> dict[str, object]:
    return voice_event(f"{voice}-{n}", voice, T0 + n, 1.0, 0.5, 0.1, 0.2)


def read(settings: Settings, topic: str, count: int) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    out: list = []
    for _ in range(40):
        out += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        if len(out) >= count:
            break
    consumer.close()
    return out


def test_batches_pack_per_voice_and_keep_the_voice_key(settings: Settings, topics: None) -> None:
    codec = AvroCodec()
    with VoiceProducer(settings, codec, batch_size=4) as producer:
        for n in range(10):
            producer.send_voice_event(event("alpha", n))
            producer.send_voice_event(event("beta", n))
    assert producer.stats.delivered == 6 and producer.stats.failed == 0  # 4+4+2 per voice
    messages = read(settings, producer.topics.voice_events, 6)
    assert len(messages) == 6
    by_key: dict[bytes, list[str]] = {}
    partitions: dict[bytes, set[int]] = {}
    for message in messages:
        decoded = codec.decode_voice_events([message.value()])
        assert decoded.errors == []
        by_key.setdefault(message.key(), []).extend(decoded.columns.event_id.to_pylist())
        partitions.setdefault(message.key(), set()).add(message.partition())
    assert by_key[b"alpha"] == [f"alpha-{n}" for n in range(10)]
    assert by_key[b"beta"] == [f"beta-{n}" for n in range(10)]
    assert all(len(p) == 1 for p in partitions.values())  # one voice, one partition
