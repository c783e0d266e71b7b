"""The state feed's "read to the end" signal against a real broker: it is what lets a live
window tick 0.2 s after its last state instead of the whole settle time, so it must say
drained only when every partition of both state topics has been read to its end."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.schemas import AvroCodec
from deltaomega.streams.state_feed import StateFeed
from deltaomega.topics import ensure_topics


@pytest.mark.kafka
def test_the_feed_is_drained_only_when_every_partition_is_read_to_its_end(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(partitions=2)
    topics = ensure_topics(settings)
    producer = Producer(client_config(settings, "drained-test"))
    for n in range(5):
        producer.produce(topics.voice_states, value=b"x%d" % n, partition=1)
    assert producer.flush(10) == 0
    feed = StateFeed(settings, AvroCodec())
    keys = [(t, p) for t in (topics.voice_states, topics.interaction_states) for p in (0, 1)]
    consumer = Consumer(feed._config())
    consumer.assign([TopicPartition(t, p, 0) for t, p in keys])
    try:
        read = 0
        feed.positions = {key: 0 for key in keys} | {(topics.voice_states, 1): 5}
        deadline = time.monotonic() + 20
        # until the consumer has fetched every partition once (the end it reports is cached)
        while read < 5 or not feed._drained(consumer):
            assert time.monotonic() < deadline, f"never drained ({read} of 5 read)"
            read += len(consumer.consume(10, 0.5))
        assert read == 5
        for behind in (0, 4):
            feed.positions[(topics.voice_states, 1)] = behind
            assert not feed._drained(consumer), f"drained at offset {behind} of 5"
        feed.positions[(topics.voice_states, 1)] = 5
        feed.positions[(topics.interaction_states, 0)] = -1  # never read
        assert not feed._drained(consumer)
    finally:
        consumer.close()
