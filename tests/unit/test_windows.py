"""The batched window path against a plain per-event reference, and replay exactness."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from deltaomega.streams.window_consumer import consume_size
from deltaomega.streams.windows import ClosedWindows, PartitionStore, TumblingWindowAggregator

W, GRACE = 10_000, 5_000
T0 = 1_800_000_000_000


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)


def reference(events: list[tuple[str, int, float, float]]) -> dict[tuple[str, int], dict]:
    """One event at a time: the semantics the batch code must reproduce exactly."""
    max_ts = None
    open_: dict[tuple[str, int], list[tuple[int, float, float]]] = defaultdict(list)
    closed: dict[tuple[str, int], dict] = {}
    for key, ts, a, b in events:
        max_ts = ts if max_ts is None else max(max_ts, ts)
        start = ts - ts % W
        if start + W <= max_ts - GRACE:
            continue  # late
        open_[(key, start)].append((ts, a, b))
        for k, rows in list(open_.items()):
            if k[1] + W <= max_ts - GRACE:
                closed[k] = summarise(rows)
                del open_[k]
    return closed


def summarise(rows: list[tuple[int, float, float]]) -> dict:
    values = np.array([[a, b] for _, a, b in rows])
    last = max(range(len(rows)), key=lambda i: (rows[i][0], i))
    return {
        "count": len(rows),
        "mean": values.mean(axis=0),
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "last": values[last],
    }


def run_batches(
    agg: TumblingWindowAggregator,
    store: PartitionStore,
    events: list,
    sizes: list[int],
    first_offset: int = 0,
) -> dict[tuple[str, int], dict]:
    out: dict[tuple[str, int], dict] = {}
    i = 0
    for size in sizes:
        chunk = events[i : i + size]
        offsets = np.arange(first_offset + i, first_offset + i + len(chunk), dtype=np.int64)
        i += size
        names = sorted({e[0] for e in chunk}, reverse=True)  # codes need not follow name order
        outcome = agg.process(
            0,
            store,
            np.array([names.index(e[0]) for e in chunk], dtype=np.int64),
            names,
            np.array([e[1] for e in chunk], dtype=np.int64),
            np.array([[e[2], e[3]] for e in chunk]),
            offsets,
        )
        collect(outcome.closed, out)
    return out


def collect(closed: ClosedWindows, out: dict) -> None:
    for row, key in enumerate(closed.keys):
        k = (key, int(closed.start[row]))
        assert k not in out, f"window {k} closed twice"
        out[k] = {
            "count": int(closed.count[row]),
            "mean": closed.mean[row],
            "min": closed.min[row],
            "max": closed.max[row],
            "last": closed.last[row],
        }


def random_events(seed: int, n: int) -> list[tuple[str, int, float, float]]:
    rng = np.random.default_rng(seed)
    keys = [f"voice-{i}" for i in range(7)]
    base = T0 + np.sort(rng.integers(0, 120_000, n))
    # Out of order by up to 12 s: some inside the grace period, some beyond it (late).
    jitter = rng.integers(-12_000, 1, n)
    ts = base + jitter
    return [
        (keys[int(rng.integers(0, len(keys)))], int(t), float(rng.random()), float(rng.random()))
        for t in ts
    ]


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k]["count"] == want[k]["count"], k
        for stat in ("mean", "min", "max", "last"):
            np.testing.assert_allclose(got[k][stat], want[k][stat], rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_windows_equal_per_event_reference(seed: int) -> None:
    events = random_events(seed, 3000)
    want = reference(events)
    rng = np.random.default_rng(seed + 100)
    sizes = list(rng.integers(1, 400, 40))
    agg = TumblingWindowAggregator(("a", "b"), W, GRACE)
    agg.load_index(0, [])
    got = run_batches(agg, DictStore(), events, sizes + [len(events)])
    late = sum(1 for _ in events) - sum(v["count"] for v in want.values())
    assert late > 0, "the data set must contain late events"
    assert len(want) > 50
    assert_same(got, want)


def test_each_window_key_is_written_once_per_batch() -> None:
    events = [("v", T0 + i, 0.5, 0.5) for i in range(1000)]  # one key, one window
    store = DictStore()
    agg = TumblingWindowAggregator(("a", "b"), W, GRACE)
    agg.load_index(0, [])
    run_batches(agg, store, events, [1000])
    # One entry write plus the partition's watermark record.
    assert store.writes == 2


def test_redelivered_batch_changes_nothing() -> None:
    events = random_events(9, 1200)
    want = reference(events)
    store = DictStore()
    agg = TumblingWindowAggregator(("a", "b"), W, GRACE)
    agg.load_index(0, [])
    got = run_batches(agg, store, events[:600], [300, 300])
    # A crash before the commit: the consumer redelivers offsets 300..599, then goes on.
    got.update(run_batches(agg, store, events[300:], [300, 600], first_offset=300))
    assert_same(got, want)


class CrashingStore(DictStore):
    """Dies on the first watermark write: the batch's entries are stored, nothing after."""

    def set(self, key: bytes, value: bytes) -> None:
        if b"\x00watermark" in key and not getattr(self, "crashed", False):
            self.crashed = True
            raise RuntimeError("worker died")
        super().set(key, value)


def test_partial_replay_after_crash_between_entry_and_watermark_writes() -> None:
    events = random_events(4, 900)
    want = reference(events)
    store = DictStore()
    agg = TumblingWindowAggregator(("a", "b"), W, GRACE)
    agg.load_index(0, [])
    got = run_batches(agg, store, events[:500], [500])
    crashing = CrashingStore()
    crashing.data = store.data
    with pytest.raises(RuntimeError, match="worker died"):
        run_batches(agg, crashing, events[500:], [400], first_offset=500)
    # Recovery: a new aggregator rebuilds its index from the store and gets the batch again;
    # entries that already hold some of its rows must not count them twice.
    recovered = TumblingWindowAggregator(("a", "b"), W, GRACE)
    recovered.load_index(0, list(store.data))
    got.update(run_batches(recovered, store, events[500:], [400], first_offset=500))
    assert_same(got, want)


def test_store_keys_round_trip() -> None:
    raw = TumblingWindowAggregator._entry_key(3, "voice-7", T0)
    assert TumblingWindowAggregator.split_key(raw) == (3, "voice-7", T0)


@pytest.mark.parametrize(
    ("events", "records", "expected"),
    [
        (50_000, 50_000, 50_000),  # one event per record: the record cap holds
        (500_000, 1_000, 200),  # 500 per record: 200 records make 100,000 events
        (3_000_000, 2_000, 67),  # 1,500 per record, rounded
        (10_000_000, 10, 1),  # never below one record
        (0, 0, 50_000),  # an all-rejected or empty batch says nothing about the ratio
    ],
)
def test_consume_size_follows_events_per_record(events: int, records: int, expected: int) -> None:
    assert consume_size(events, records, max_records=50_000, max_events=100_000) == expected
