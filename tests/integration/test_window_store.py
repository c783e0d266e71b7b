"""The window store against a real broker: restores, and exact replays after any crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.streams.outputs import producer_config
from deltaomega.streams.window_store import Checkpoint, WindowStore
from deltaomega.streams.windows import TumblingWindowAggregator
from deltaomega.topics import ensure_topics
from tests.unit.test_windows import GRACE, W, assert_same, random_events, reference, run_batches


class PrefixProducer:
    """Forwards the first ``keep`` records and loses the rest: a worker dying mid-send."""

    def __init__(self, producer: Producer, keep: int) -> None:
        self.producer = producer
        self.keep = keep
        self.produced = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if self.produced < self.keep:
            self.producer.produce(*args, **kwargs)
        self.produced += 1

    def poll(self, timeout: float) -> int:
        return int(self.producer.poll(timeout))


def new_store(settings: Settings, path: Path) -> WindowStore:
    return WindowStore(
        path,
        ensure_topics(settings).voice_windows_changelog,
        client_config(settings),
        TumblingWindowAggregator.is_watermark_key,
    )


def opened(settings: Settings, path: Path) -> tuple[WindowStore, TumblingWindowAggregator]:
    """A store with partition 0 assigned (restored), and an aggregator indexed on it."""
    store = new_store(settings, path)
    store.assign([0])
    agg = TumblingWindowAggregator(("a", "b"), W, GRACE)
    agg.load_index(0, store.partitions[0].keys())
    return store, agg


def land(store: WindowStore, producer: Any, flush: Callable[[], object]) -> Checkpoint:
    """What the consumer does after a batch, minus the offset commit."""
    checkpoint = store.stage(producer)
    flush()
    store.stage_tombstones(checkpoint, producer)
    flush()
    return checkpoint


def changelog_keys(settings: Settings, topic: str) -> list[bytes | None]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "read"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    keys: list[bytes | None] = []
    while len(keys) < high:
        keys += [m.key() if m.value() is not None else None for m in consumer.consume(1000, 5)]
    consumer.close()
    return keys


def test_a_second_store_restores_the_changelog_and_the_first_reads_only_its_tail(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(partitions=2)
    producer = Producer(producer_config(settings, "test"))
    first = new_store(settings, tmp_path / "a")
    first.assign([0, 1])
    for partition in (0, 1):
        for n in range(5):
            first.partitions[partition].set(f"{partition}\x1fk{n}\x1f0".encode(), b"v%d" % n)
    first.partitions[0].set(b"0\x1f\x00watermark", b"wm")
    first.persist(land(first, producer, producer.flush))
    assert first.restored == 0

    second = new_store(settings, tmp_path / "b")
    second.assign([0])
    assert second.restored == 6  # nothing local: the whole partition from the changelog
    assert second.partitions[0].data == first.partitions[0].data
    second.partitions[0].set(b"0\x1fk9\x1f0", b"v9")
    second.partitions[0].delete(b"0\x1fk1\x1f0")
    second.persist(land(second, producer, producer.flush))
    expected = dict(second.partitions[0].data)
    second.close()

    first.revoke([0, 1])
    first.assign([0])
    assert first.restored == 2  # its RocksDB checkpoint, then the other store's two records
    assert first.partitions[0].data == expected
    # The marker follows the upserts; tombstones come last.
    keys = changelog_keys(settings, first.changelog)
    assert keys[:6] == [b"0\x1fk%d\x1f0" % n for n in range(5)] + [b"0\x1f\x00watermark"]
    assert keys[6:] == [b"0\x1fk9\x1f0", None]
    first.close()


@pytest.mark.parametrize("delivered", ["none", "some upserts", "marker", "a tombstone", "all"])
def test_replay_after_a_crash_at_any_changelog_prefix_is_exact(
    settings_factory: Callable[..., Settings], tmp_path: Path, delivered: str
) -> None:
    events = random_events(5, 900)
    want = reference(events)
    settings = settings_factory(partitions=1)
    producer = Producer(producer_config(settings, "test"))

    store, agg = opened(settings, tmp_path / "a")
    got = run_batches(agg, store.partitions[0], events[:500], [500])
    store.persist(land(store, producer, producer.flush))

    # The second batch: processed, its changelog records cut after some prefix, no commit.
    crashed = run_batches(agg, store.partitions[0], events[500:], [400], first_offset=500)
    state = store.partitions[0]
    upserts, deletes = len(state.upserts), list(state.deleted)
    tombstones = len(deletes)
    assert upserts > 2 and tombstones > 1, "the batch must open and close windows"
    keep = {
        "none": 0,
        "some upserts": upserts // 2,
        "marker": upserts,
        "a tombstone": upserts + 1,
        "all": upserts + tombstones,
    }[delivered]
    land(store, PrefixProducer(producer, keep), producer.flush)
    store.close()

    # A new worker without local state: restore, replay the uncommitted batch.
    recovered, agg = opened(settings, tmp_path / "b")
    replayed = run_batches(agg, recovered.partitions[0], events[500:], [400], first_offset=500)
    tombstoned = {
        TumblingWindowAggregator.split_key(k)[1:] for k in deletes[: max(0, keep - upserts)]
    }
    for window, state in crashed.items():
        if window in replayed:
            assert_same({window: replayed[window]}, {window: state})  # re-emitted identically
        else:
            # Not closed again only because its tombstone, sent after its state, landed.
            assert window in tombstoned
            got[window] = state
    got.update(replayed)
    assert_same(got, want)
    recovered.close()


def test_a_crash_with_two_batches_in_flight_restores_both_from_the_same_rocksdb(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """The second batch's upserts go out before the first's tombstones. The crash comes
    after RocksDB took the first batch and the second's tombstones were delivered, before
    RocksDB took the second: the restart reads the second batch's upserts back from the
    changelog (RocksDB's offset is its last upsert's, not its last tombstone's), so the
    second batch's windows are neither lost nor re-formed from half their events."""
    events = random_events(7, 1200)
    want = reference(events)
    settings = settings_factory(partitions=1)
    producer = Producer(producer_config(settings, "test"))
    store, agg = opened(settings, tmp_path / "a")
    got = run_batches(agg, store.partitions[0], events[:400], [400])
    first = store.stage(producer)
    crashed = run_batches(agg, store.partitions[0], events[400:800], [400], first_offset=400)
    second = store.stage(producer)
    assert first.tombstones and second.tombstones, "both batches must close windows"
    producer.flush()
    store.stage_tombstones(first, producer)
    producer.flush()
    store.persist(first)
    store.stage_tombstones(second, producer)
    producer.flush()
    store.close()  # no commit: the second batch replays

    again, agg = opened(settings, tmp_path / "a")
    assert again.restored == sum(len(u) for u in second.upserts.values()) + len(
        first.tombstones[0]
    ) + len(second.tombstones[0])
    replayed = run_batches(agg, again.partitions[0], events[400:], [400, 400], first_offset=400)
    assert not crashed.keys() & replayed.keys()  # tombstoned after their states went out
    assert_same(got | crashed | replayed, want)
    again.close()
