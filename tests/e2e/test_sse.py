"""SSE: read states, disconnect, reconnect with Last-Event-ID, get exactly what was missed."""

from __future__ import annotations

import gc
import json
import time
import warnings
from collections.abc import Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.api_client import assert_invalid, read_events, sse_events
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000
VOICES = ["s1", "s2", "s3", "s4"]


def read_states(
    url: str,
    count: int,
    last_event_id: str | None = None,
    linger: float = 0.0,
    on_open: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return read_events(
        f"{url}/api/v1/stream/voice-states", count, headers, linger=linger, on_open=on_open
    )


def publish_windows(producer: VoiceProducer, first: int, last: int) -> None:
    """Events in 10 s windows first..last for every voice, plus one that closes them."""
    for window in range(first, last + 2):
        for voice in VOICES:
            ts = T0 + window * 10_000 + 7_000  # +7 s: with 1 s grace, this closes window-1
            producer.send_voice_event(voice_event(f"{voice}-{window}", voice, ts))
    assert producer.flush() == 0


def test_reconnect_with_last_event_id_gets_exactly_the_missed_states(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(window_seconds=10, grace_seconds=1)
    service = service_factory(settings)
    producer = VoiceProducer(settings)
    db = settings.clickhouse_database

    def states_in_db() -> int:
        return int(
            clickhouse.call(
                lambda c: c.query(f"SELECT count() FROM {db}.voice_states FINAL").result_rows[0][0]
            )
        )

    # Connect first, then publish windows 0..2: 3 windows × 4 voices = 12 states.
    first = read_states(service.url, 12, on_open=lambda: publish_windows(producer, 0, 2))
    assert len(first) == 12
    assert all(e["event"] == "voice-state" for e in first)
    seen = {
        (json.loads(e["data"])["voice_id"], json.loads(e["data"])["window_start"]) for e in first
    }
    assert len(seen) == 12
    last_id = first[-1]["id"]
    assert len(last_id.split(",")) == settings.partitions  # one partition:offset per partition

    # Disconnected: windows 3..5 close (12 more states) and reach ClickHouse.
    wait_for(lambda: states_in_db() == 12, what="first 12 states stored")
    publish_windows(producer, 3, 5)
    wait_for(lambda: states_in_db() == 24, what="24 states stored")

    missed = read_states(service.url, 12, last_event_id=last_id, linger=3.0)
    assert len(missed) == 12, "exactly the missed states, no repeats"
    missed_keys = {
        (json.loads(e["data"])["voice_id"], json.loads(e["data"])["window_start"]) for e in missed
    }
    assert len(missed_keys) == 12
    assert not (missed_keys & seen)
    assert {ws for _, ws in missed_keys} == {
        "2027-01-15T08:00:30Z",
        "2027-01-15T08:00:40Z",
        "2027-01-15T08:00:50Z",
    }

    # From the start of every partition: all 24; with voice_id, only that voice's 6.
    everything = read_states(service.url, 24, last_event_id="0:-1,1:-1,2:-1", linger=2.0)
    assert len(everything) == 24
    filtered = []
    with api_client.stream(
        "GET",
        f"{service.url}/api/v1/stream/voice-states",
        params={"voice_id": "s2", "cursor": "0:-1,1:-1,2:-1"},
        timeout=httpx.Timeout(5.0, read=30.0),
    ) as response:
        for event in sse_events(response, time.monotonic() + 60):
            if event is None:
                continue
            filtered.append(json.loads(event["data"]))
            if len(filtered) == 6:
                break
    assert [s["voice_id"] for s in filtered] == ["s2"] * 6
    assert [s["window_start"][-3:-1] for s in filtered] == ["00", "10", "20", "30", "40", "50"]


def open_feed_consumers() -> int:
    """aiokafka consumers of this process that were started and not stopped."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance on every object wakes deprecated modules
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, AIOKafkaConsumer) and not o._closed)


@pytest.mark.parametrize(
    ("cursor", "detail", "against_the_topic"),
    [
        ("yesterday", "must be 'partition:offset' pairs joined by ','", False),
        ("0:-5", "must be 'partition:offset' pairs joined by ','", False),
        ("0:-1,0:3", "names partition 0 twice", False),
        ("0:-1,1:-1,2:-1,7:0", "names partition 7, which", True),
        ("0:-1,1:1000000,2:-1", "offset 1000000 of partition 1 is past the partition's end", True),
        (
            ",".join(f"{p}:{10**18 + p}" for p in range(1300)),
            "characters long, more than a cursor can be",
            False,
        ),
    ],
)
def test_bad_last_event_id_is_a_422_naming_the_header_and_opens_nothing_per_request(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    cursor: str,
    detail: str,
    against_the_topic: bool,
) -> None:
    service = service_factory(settings_factory(), worker=False)
    before = open_feed_consumers()
    for headers, params, field in (
        ({"Last-Event-ID": cursor}, {}, "Last-Event-ID"),
        ({}, {"cursor": cursor}, "cursor"),
    ):
        response = api_client.get(
            f"{service.url}/api/v1/stream/voice-states", headers=headers, params=params
        )
        assert_invalid(response, field)
        assert detail in response.json()["detail"]
    # checking a cursor against the topic's ends starts its one shared tail (which stays
    # for later subscribers); nothing is left open per request
    assert open_feed_consumers() == before + int(against_the_topic)
