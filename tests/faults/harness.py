"""What every fault scenario shares: deterministic traffic, the expected result computed
from what the topics hold, and the checks that the pipeline's result equals it.

Traffic: voices with per-voice sequence numbers, sent as single records and as
VoiceEventBatch records, in event-time order but for some out of order within the grace
period and some far enough back to be late; interactions between them. The expectation is
computed from the input topics themselves (partition and offset of every record), with
the window semantics done one event at a time, so it does not depend on how the worker
batched, crashed or replayed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import AvroCodec
from deltaomega.schemas.records import INTERACTION_KINDS, INTERACTION_STATE, VOICE_STATE
from deltaomega.topics import Topics
from tests.kafka_tools import committed, log_end, read_topic

T0 = 1_800_000_000_000
WAVE_MS = 20_000


@dataclass
class Traffic:
    """Waves of events; wave ``i`` covers event time [T0 + i·20 s, T0 + (i+1)·20 s)."""

    seed: int
    voices: int = 10
    events_per_wave: int = 400
    interactions_per_wave: int = 80
    sequence: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sent_events: int = 0
    sent_interactions: int = 0

    def send_wave(self, settings: Settings, wave: int) -> None:
        rng = random.Random(self.seed * 1000 + wave)
        codec = AvroCodec()
        names = [f"v{i:02d}" for i in range(self.voices)]
        start = T0 + wave * WAVE_MS
        with VoiceProducer(settings, codec) as producer:
            pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for n in range(self.events_per_wave):
                voice = rng.choice(names)
                ts = start + n * WAVE_MS // self.events_per_wave
                roll = rng.random()
                if roll < 0.10:
                    ts -= rng.randrange(0, 1_800)  # out of order, inside the grace period
                elif roll < 0.13:
                    ts -= rng.randrange(12_000, 25_000)  # late: its window has closed
                self.sequence[voice] += 1
                event = {
                    "event_id": f"{voice}#{self.sequence[voice]}",
                    "voice_id": voice,
                    "ts": ts,
                    "temperature": round(rng.uniform(0, 2), 6),
                    "activation": round(rng.random(), 6),
                    "stress": round(rng.random(), 6),
                    "influence": round(rng.random(), 6),
                    "context": {"wave": str(wave)},
                }
                # About half the events go out packed in VoiceEventBatch records of 2 to 5.
                if rng.random() < 0.5:
                    producer.send_voice_event(event)
                else:
                    pending[voice].append(event)
                    if len(pending[voice]) >= rng.randrange(2, 6):
                        producer.send_raw(
                            producer.topics.voice_events,
                            voice,
                            codec.encode_voice_batch(pending.pop(voice)),
                        )
            for voice, events in pending.items():
                producer.send_raw(
                    producer.topics.voice_events, voice, codec.encode_voice_batch(events)
                )
            for n in range(self.interactions_per_wave):
                source, target = rng.sample(names, 2)
                producer.send_interaction(
                    {
                        "event_id": f"i{wave}-{n}",
                        "ts": start + n * WAVE_MS // self.interactions_per_wave,
                        "source": source,
                        "target": target,
                        "kind": rng.choice(INTERACTION_KINDS),
                        "strength": round(rng.random(), 6),
                        "context": {},
                    }
                )
            assert producer.flush(60) == 0
        self.sent_events += self.events_per_wave
        self.sent_interactions += self.interactions_per_wave

    def send_closers(self, settings: Settings, wave: int) -> None:
        """One event per voice and interaction source far ahead: every window before it closes
        on every partition that holds a key."""
        ts = T0 + wave * WAVE_MS + 30_000
        names = [f"v{i:02d}" for i in range(self.voices)]
        with VoiceProducer(settings) as producer:
            for voice in names:
                self.sequence[voice] += 1
                producer.send_voice_event(
                    {
                        "event_id": f"{voice}#{self.sequence[voice]}",
                        "voice_id": voice,
                        "ts": ts,
                        "temperature": 1.0,
                        "activation": 0.5,
                        "stress": 0.5,
                        "influence": 0.5,
                        "context": {},
                    }
                )
                producer.send_interaction(
                    {
                        "event_id": f"close-{voice}",
                        "ts": ts,
                        "source": voice,
                        "target": "closer",
                        "kind": "COOPERATION",
                        "strength": 0.5,
                        "context": {},
                    }
                )
            assert producer.flush(60) == 0
        self.sent_events += len(names)
        self.sent_interactions += len(names)


# -------------------------------------------------------------------- the expectation


@dataclass
class Expected:
    """What the pipeline must end with, from the input topics."""

    #: event_id → (voice, ts, 4 metrics, partition, offset)
    voice_rows: dict[str, tuple[Any, ...]]
    #: event_id → (source, target, kind, ts, strength, partition, offset)
    interaction_rows: dict[str, tuple[Any, ...]]
    #: (voice, window start) → (count, 16 stats in the table's column order)
    voice_states: dict[tuple[str, int], tuple[Any, ...]]
    #: (source, target, kind, window start) → (count, mean, min, max, last)
    interaction_states: dict[tuple[str, str, str, int], tuple[Any, ...]]


def _windows(
    events: list[tuple[Any, int, tuple[int, int, int], list[float]]],
    window_ms: int,
    grace_ms: int,
) -> dict[Any, tuple[Any, ...]]:
    """Closed windows of one partition's events, given in offset (then in-record) order.

    ``events`` holds (key, ts, order, values); a window takes an event unless its end is at
    or before the watermark the event arrives under (largest event time so far, the event's
    own included, minus the grace); it is closed once the final watermark passes its end.
    """
    max_ts = None
    rows: dict[tuple[Any, int], list[tuple[int, tuple[int, int, int], list[float]]]] = defaultdict(
        list
    )
    for key, ts, order, values in events:
        max_ts = ts if max_ts is None else max(max_ts, ts)
        start = ts - ts % window_ms
        if start + window_ms <= max_ts - grace_ms:
            continue
        rows[(key, start)].append((ts, order, values))
    closed: dict[Any, tuple[Any, ...]] = {}
    for (key, start), taken in rows.items():
        if max_ts is None or start + window_ms > max_ts - grace_ms:
            continue
        values = np.array([v for _, _, v in taken])
        last = max(range(len(taken)), key=lambda i: (taken[i][0], taken[i][1]))
        stats: list[float] = []
        for j in range(values.shape[1]):
            column = values[:, j]
            stats += [column.mean(), column.min(), column.max(), column[last]]
        closed[(key, start)] = (len(taken), *stats)
    return closed


def expected(settings: Settings) -> Expected:
    topics = Topics.from_settings(settings)
    codec = AvroCodec()
    window, grace = settings.window_ms, settings.grace_ms
    voice_rows: dict[str, tuple[Any, ...]] = {}
    by_partition: dict[int, list[Any]] = defaultdict(list)
    for record in read_topic(settings.kafka_bootstrap, topics.voice_events):
        cols = codec.decode_voice_events([record.value]).columns
        for i in range(len(cols)):
            event_id, voice = cols.event_id[i].as_py(), cols.voice_id[i].as_py()
            ts, values = int(cols.ts[i]), [float(v) for v in cols.metrics[i]]
            voice_rows[event_id] = (voice, ts, *values, record.partition, record.offset)
            by_partition[record.partition].append((voice, ts, (record.offset, i, 0), values))
    voice_states: dict[tuple[str, int], tuple[Any, ...]] = {}
    for events in by_partition.values():
        voice_states.update(_windows(events, window, grace))

    interaction_rows: dict[str, tuple[Any, ...]] = {}
    links: dict[int, list[Any]] = defaultdict(list)
    for record in read_topic(settings.kafka_bootstrap, topics.interactions):
        _, r = codec.decode(record.value)  # type: ignore[arg-type]
        interaction_rows[r["event_id"]] = (
            r["source"],
            r["target"],
            r["kind"],
            r["ts"],
            r["strength"],
            record.partition,
            record.offset,
        )
        key = (r["source"], r["target"], r["kind"])
        links[record.partition].append((key, r["ts"], (record.offset, 0, 0), [r["strength"]]))
    interaction_states: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}
    for events in links.values():
        for (key, start), value in _windows(events, window, grace).items():
            interaction_states[(*key, start)] = value
    return Expected(voice_rows, interaction_rows, voice_states, interaction_states)


# -------------------------------------------------------------------- what landed


def dump(settings: Settings, out: Path) -> dict[str, dict[str, list[list[Any]]]]:
    """The tables of a stopped worker's embedded ClickHouse."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.faults.dump",
            str(settings.data_dir),
            settings.clickhouse_database,
            str(out),
        ],
        check=True,
        timeout=120,
    )
    return json.loads(out.read_text())


def merge(dumps: list[dict[str, dict[str, list[list[Any]]]]]) -> dict[str, dict[str, Any]]:
    """Several workers' tables as one: rows of all, FINAL rows deduplicated by natural key
    as one ReplacingMergeTree would (duplicates must agree on every column)."""
    keys = {
        "voice_events": lambda r: r[0],
        "interaction_events": lambda r: r[0],
        "voice_states": lambda r: (r[0], r[1]),
        "interaction_states": lambda r: (r[0], r[1], r[2], r[3]),
    }
    merged: dict[str, dict[str, Any]] = {}
    for table, key in keys.items():
        rows_all = [row for d in dumps for row in d[table]["all"]]
        final: dict[Any, list[Any]] = {}
        for d in dumps:
            for row in d[table]["final"]:
                k = key(row)
                if k in final:
                    assert final[k] == row, (table, k, final[k], row)
                final[k] = row
        merged[table] = {"all": rows_all, "final": list(final.values())}
    return merged


@dataclass
class Landed:
    """Counts for the report: what was produced and what landed."""

    events: int
    interactions: int
    raw_rows: int
    raw_rows_before_final: int
    voice_states: int
    interaction_states: int
    states_on_topic: int
    repeated_states_on_topic: int


def check(
    settings: Settings,
    tables: dict[str, dict[str, Any]],
    want: Expected,
    exact_without_final: bool = True,
) -> Landed:
    """Every assertion of a drained scenario; the counts it saw.

    Raw rows carry deduplication tokens, so in one ClickHouse they are exact without FINAL
    too, unless ``exact_without_final`` is off: workers with an embedded engine each have
    their own ClickHouse, where a batch one inserted and another replayed is in both (one
    server would drop the repeat); a worker that lost its partitions with batches landed
    but not committed replays them as one batch, whose token differs from theirs.
    """
    topics = Topics.from_settings(settings)
    # Raw rows: exactly the produced events, once each (FINAL), with their positions.
    got_events = {r[0]: tuple(r[1:]) for r in tables["voice_events"]["final"]}
    assert len(tables["voice_events"]["final"]) == len(got_events)
    assert got_events.keys() == want.voice_rows.keys()
    for event_id, row in want.voice_rows.items():
        assert got_events[event_id] == row, (event_id, got_events[event_id], row)
    got_links = {r[0]: tuple(r[1:]) for r in tables["interaction_events"]["final"]}
    assert got_links == want.interaction_rows
    if exact_without_final:
        assert len(tables["voice_events"]["all"]) == len(want.voice_rows)
        assert len(tables["interaction_events"]["all"]) == len(want.interaction_rows)
    # Windows: every closed window equals the one-event-at-a-time reference.
    got_states = {(r[0], r[1]): r[2:] for r in tables["voice_states"]["final"]}
    assert sorted(got_states) == sorted(want.voice_states)
    for key, row in want.voice_states.items():
        assert got_states[key][0] == row[0], (key, got_states[key][0], row[0])
        np.testing.assert_allclose(got_states[key][1:], row[1:], rtol=0, atol=1e-9)
    got_link_states = {tuple(r[:4]): r[4:] for r in tables["interaction_states"]["final"]}
    assert sorted(got_link_states) == sorted(want.interaction_states)
    for key, row in want.interaction_states.items():
        assert got_link_states[key][0] == row[0], key
        np.testing.assert_allclose(got_link_states[key][1:], row[1:], rtol=0, atol=1e-9)
    # No window emitted twice on the states topic except as an identical repeat.
    codec = AvroCodec()
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    repeats = 0
    on_topic = 0
    for topic, schema in (
        (topics.voice_states, VOICE_STATE),
        (topics.interaction_states, INTERACTION_STATE),
    ):
        for record in read_topic(settings.kafka_bootstrap, topic):
            name, state = codec.decode(record.value)  # type: ignore[arg-type]
            assert name == schema
            on_topic += 1
            key = (
                (state["voice_id"], state["window_start"])
                if schema == VOICE_STATE
                else (state["source"], state["target"], state["kind"], state["window_start"])
            )
            if key in seen:
                repeats += 1
                assert seen[key] == state, ("a window emitted twice, differently", key)
            seen[key] = state
    assert on_topic - repeats == len(want.voice_states) + len(want.interaction_states)
    # Nothing dead-lettered: the input is valid, faults must not make it look otherwise.
    assert read_topic(settings.kafka_bootstrap, topics.deadletter) == []
    assert drained(settings)
    return Landed(
        events=len(want.voice_rows),
        interactions=len(want.interaction_rows),
        raw_rows=len(got_events),
        raw_rows_before_final=len(tables["voice_events"]["all"]),
        voice_states=len(got_states),
        interaction_states=len(got_link_states),
        states_on_topic=on_topic,
        repeated_states_on_topic=repeats,
    )


def drained(settings: Settings) -> bool:
    """Every group's committed offsets at the log end of every topic it reads."""
    topics = Topics.from_settings(settings)
    app = settings.app_id
    reads = [
        (f"{app}-voice-windows", topics.voice_events),
        (f"{app}-interaction-windows", topics.interactions),
        (f"{app}-sinks", topics.voice_states),
        (f"{app}-sinks", topics.interaction_states),
    ]
    for group, topic in reads:
        ends = log_end(settings.kafka_bootstrap, topic)
        found = committed(settings.kafka_bootstrap, group, topic)
        # A partition that never held a record has nothing to commit.
        if any(end > 0 and found.get(p) != end for p, end in ends.items()):
            return False
    return True


def wait_drained(settings: Settings, timeout: float = 120.0) -> float:
    started = time.monotonic()
    while not drained(settings):
        assert time.monotonic() - started < timeout, "not drained in time"
        time.sleep(0.5)
    return time.monotonic() - started
