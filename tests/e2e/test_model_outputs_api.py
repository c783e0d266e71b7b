"""Model outputs and alerts: stored rows read back over REST with every filter, and the
SSE feeds of their topics resuming with Last-Event-ID without loss or repeats.

Records are put in Kafka and ClickHouse directly, so only the read side is under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    METRICS,
    PATTERN,
    PREDICTION,
)
from deltaomega.schemas.records import EMERGENCE as EMERGENCE_SCHEMA
from deltaomega.sinks.clickhouse import ClickHouse, ClickHouseSink
from tests import api_client
from tests.api_client import assert_invalid, read_events
from tests.conftest import RunningService
from tests.model_outputs import T0, alert, conflict, emergence, pattern, prediction

W = 10_000  # window length, ms
TIMES = ("window_start", "window_end", "target_window_start", "produced_at")


def iso(ms: int) -> str:
    """ISO-8601 UTC as the API writes it (microseconds only when there are any)."""
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}000Z" if millis else f"{text}Z"


def as_json(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its timestamps as the API renders them (the SSE shape)."""
    return {k: iso(v) if k in TIMES else v for k, v in record.items()}


def as_rest_prediction(record: dict[str, Any]) -> dict[str, Any]:
    out = as_json(record)
    for metric in METRICS:
        out[metric] = {s: out.pop(f"{metric}_{s}") for s in ("pred", "std", "low", "high")}
    return out


PREDICTIONS = [prediction(v, T0 + i * W, base=0.25 + i / 8) for i in range(3) for v in ("v1", "v2")]
CONFLICTS = [
    conflict("v1", "v2", T0, 0.875),
    conflict("v2", "v1", T0, 0.25),
    conflict("v1", "v3", T0 + W, 0.5),
    conflict("v3", "v1", T0 + W, 0.625),
    conflict("v2", "v3", T0 + 2 * W, 0.75),
]
SCORES = [
    emergence(T0, 0.125),
    emergence(T0 + W, 0.875, "synchronisation"),
    emergence(T0 + 2 * W, 0.375),
]
PATTERNS = [
    pattern(T0, "hierarchy"),
    pattern(T0 + W, "cooperative", novelty=2.5),
    pattern(T0 + 2 * W, "hierarchy"),
]
ALERTS = [
    alert("high_risk", "v1", T0, "WARNING"),
    alert("conflict", "v1->v2", T0, "CRITICAL", ["separate v1 and v2", "cool v1"]),
    alert("emergence", "system", T0 + W, "CRITICAL", ["inspect the interaction matrix"]),
    alert("high_risk", "v2", T0 + 2 * W, "INFO"),
]
# table, schema, records, Kafka key field (None: no key, records spread over partitions)
OUTPUTS: list[tuple[str, str, list[dict[str, Any]], str | None]] = [
    ("predictions", PREDICTION, PREDICTIONS, "voice_id"),
    ("conflict_predictions", CONFLICT_PREDICTION, CONFLICTS, "source"),
    ("emergence", EMERGENCE_SCHEMA, SCORES, None),
    ("patterns", PATTERN, PATTERNS, None),
    ("alerts", ALERT, ALERTS, "subject"),
]


@pytest.fixture
def api(
    settings: Settings,
    database: str,
    clickhouse: ClickHouse,
    service_factory: Callable[..., RunningService],
) -> str:
    """An API over a database holding every record above, each inserted twice (a replay)."""
    sink = ClickHouseSink(clickhouse, database)
    codec = AvroCodec()
    for table, schema, records, _ in OUTPUTS:
        decoded = [codec.decode(codec.encode(schema, r))[1] for r in records]
        for _ in range(2):
            sink.insert_states(table, decoded, [0] * len(decoded), list(range(len(decoded))))
    return service_factory(settings, worker=False).url


def get(url: str, **params: Any) -> Any:
    response = api_client.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_predictions_newest_first_with_filters(api: str) -> None:
    url = f"{api}/api/v1/predictions"
    # Newest window first; within a window, by voice.
    ordered = sorted(PREDICTIONS, key=lambda p: (-p["window_start"], p["voice_id"]))
    newest_first = [as_rest_prediction(p) for p in ordered]
    assert get(url) == {"predictions": newest_first}
    assert get(url, voice_id="v2")["predictions"] == [
        p for p in newest_first if p["voice_id"] == "v2"
    ]
    middle = get(url, start=iso(T0 + W), end=iso(T0 + 2 * W))["predictions"]
    assert [(p["voice_id"], p["window_start"]) for p in middle] == [
        ("v1", iso(T0 + W)),
        ("v2", iso(T0 + W)),
    ]
    assert get(url, limit=1)["predictions"] == newest_first[:1]
    assert get(url, voice_id="nobody") == {"predictions": []}


def test_conflicts_over_min_probability_newest_and_most_probable_first(api: str) -> None:
    url = f"{api}/api/v1/interactions/conflicts"

    def pairs(**params: Any) -> list[tuple[str, str, float]]:
        rows = get(url, **params)["conflicts"]
        return [(c["source"], c["target"], c["probability"]) for c in rows]

    assert pairs() == [
        ("v2", "v3", 0.75),
        ("v3", "v1", 0.625),
        ("v1", "v3", 0.5),
        ("v1", "v2", 0.875),
    ]
    assert len(pairs(min_probability=0)) == 5
    assert pairs(min_probability=0.7) == [("v2", "v3", 0.75), ("v1", "v2", 0.875)]
    assert pairs(source="v1") == [("v1", "v3", 0.5), ("v1", "v2", 0.875)]
    assert pairs(target="v1", min_probability=0) == [("v3", "v1", 0.625), ("v2", "v1", 0.25)]
    assert pairs(start=iso(T0 + W), end=iso(T0 + 2 * W)) == [("v3", "v1", 0.625), ("v1", "v3", 0.5)]
    assert get(url, limit=1)["conflicts"] == [as_json(CONFLICTS[4])]


def test_patterns_and_emergence(api: str) -> None:
    patterns = get(f"{api}/api/v1/patterns")["patterns"]
    assert patterns == [as_json(p) for p in reversed(PATTERNS)]
    assert get(f"{api}/api/v1/patterns", start=iso(T0 + W), limit=5)["patterns"] == patterns[:2]

    url = f"{api}/api/v1/emergence"
    assert get(url)["emergence"] == [as_json(e) for e in reversed(SCORES)]
    assert get(url, detected="true")["emergence"] == [as_json(SCORES[1])]
    assert get(url, detected="false")["emergence"] == [as_json(SCORES[2]), as_json(SCORES[0])]
    assert get(url, end=iso(T0 + W))["emergence"] == [as_json(SCORES[0])]


def test_system_outlook_sums_up_the_newest_tick(api: str) -> None:
    newest = T0 + 2 * W
    stress = METRICS.index("stress")
    outlook = get(f"{api}/api/v1/predictions/system")
    newest_predictions = [p for p in PREDICTIONS if p["window_start"] == newest]
    assert outlook["window_start"] == iso(newest)
    assert outlook["model_version"] == "test-1"
    assert outlook["voices"] == 2
    assert outlook["mean_predicted_stress"] == pytest.approx(0.5 + stress / 100)
    assert outlook["voices_at_risk"] == 0  # risk 0.25 each
    assert outlook["riskiest_voices"] == [as_rest_prediction(p) for p in newest_predictions]
    # Only the newest window's pairs: v2->v3 (the older windows' pairs are not the outlook).
    assert (outlook["pairs"], outlook["expected_conflicts"]) == (1, 0.75)
    assert outlook["max_conflict_probability"] == 0.75
    assert outlook["likeliest_conflicts"] == [as_json(CONFLICTS[4])]
    assert outlook["emergence"] == as_json(SCORES[2])
    assert get(f"{api}/api/v1/predictions/system", limit=1)["riskiest_voices"] == [
        as_rest_prediction(newest_predictions[0])
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": iso(T0 + W), "end": iso(T0)}, "start"),
        ({"start": iso(T0), "end": iso(T0 + 361 * W)}, "end"),
        ({"start": iso(T0)}, "end"),
        ({"start": iso(T0), "end": iso(T0 + W), "voices": ["v1"]}, "voices"),
    ],
)
def test_pattern_analysis_refuses_a_bad_range(api: str, body: dict[str, Any], field: str) -> None:
    response = httpx.post(
        f"{api}/api/v1/patterns/analyze", json=body, headers=api_client.auth(), timeout=30
    )
    assert_invalid(response, field)


def test_alerts_filtered_by_severity_rule_and_subject(api: str) -> None:
    url = f"{api}/api/v1/alerts"

    def ids(**params: Any) -> list[str]:
        return [a["alert_id"] for a in get(url, **params)["alerts"]]

    everything = get(url)["alerts"]
    # Newest window first; within a window, by alert id.
    assert everything == [as_json(ALERTS[i]) for i in (3, 2, 1, 0)]
    assert everything[2]["recommended_actions"] == ["separate v1 and v2", "cool v1"]
    assert ids(severity="critical") == [f"emergence:system:{T0 + W}", f"conflict:v1->v2:{T0}"]
    assert ids(severity="Critical", rule="conflict") == [f"conflict:v1->v2:{T0}"]
    assert ids(rule="high_risk") == [f"high_risk:v2:{T0 + 2 * W}", f"high_risk:v1:{T0}"]
    assert ids(subject="v2") == [f"high_risk:v2:{T0 + 2 * W}"]
    assert ids(severity="INFO", start=iso(T0), end=iso(T0 + 2 * W)) == []
    assert ids(start=iso(T0), end=iso(T0 + W), limit=1) == [f"conflict:v1->v2:{T0}"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/alerts", {"severity": "urgent"}, "severity"),
        ("/api/v1/stream/alerts", {"severity": "urgent"}, "severity"),
        ("/api/v1/interactions/conflicts", {"min_probability": "1.5"}, "min_probability"),
        ("/api/v1/interactions/conflicts", {"min_probability": "likely"}, "min_probability"),
        ("/api/v1/stream/conflicts", {"min_probability": "-0.1"}, "min_probability"),
        ("/api/v1/predictions", {"limit": "0"}, "limit"),
        ("/api/v1/interactions/conflicts", {"limit": "10001"}, "limit"),
        ("/api/v1/patterns", {"limit": "many"}, "limit"),
        ("/api/v1/emergence", {"detected": "maybe"}, "detected"),
        (
            "/api/v1/alerts",
            {"start": "2027-01-15T08:00:10Z", "end": "2027-01-15T08:00:00Z"},
            "start",
        ),
        ("/api/v1/predictions", {"end": "soon"}, "end"),
        ("/api/v1/predictions/system", {"limit": "0"}, "limit"),
    ],
)
def test_bad_parameter_is_422_problem_naming_it(
    api: str, path: str, params: dict[str, str], field: str
) -> None:
    assert_invalid(api_client.get(api + path, params=params, timeout=30), field)


FEEDS = [
    # path, event name, records, topic attribute, schema, key field, query params
    ("predictions", "prediction", PREDICTIONS, "predictions", PREDICTION, "voice_id", {}),
    (
        "conflicts",
        "conflict",
        CONFLICTS,
        "conflicts",
        CONFLICT_PREDICTION,
        "source",
        {"min_probability": "0"},
    ),
    ("emergence", "emergence", SCORES, "emergence", EMERGENCE_SCHEMA, None, {}),
    ("alerts", "alert", ALERTS, "alerts", ALERT, "subject", {}),
]


@pytest.mark.parametrize(
    ("path", "event", "records", "topic", "schema", "key", "params"),
    FEEDS,
    ids=[f[0] for f in FEEDS],
)
def test_feed_resumes_with_last_event_id_without_loss_or_repeats(
    settings: Settings,
    service_factory: Callable[..., RunningService],
    path: str,
    event: str,
    records: list[dict[str, Any]],
    topic: str,
    schema: str,
    key: str | None,
    params: dict[str, str],
) -> None:
    service = service_factory(settings, worker=False)
    url = f"{service.url}/api/v1/stream/{path}"
    producer = VoiceProducer(settings)
    codec = AvroCodec()

    def publish(batch: list[dict[str, Any]]) -> None:
        for record in batch:
            value = codec.encode(schema, record)
            producer.send_raw(getattr(producer.topics, topic), record[key] if key else None, value)
        assert producer.flush() == 0

    half = len(records) // 2
    first, rest = records[:half], records[half:]
    # Connected at the live end, the client gets what is published from then on.
    live = read_events(url, len(first), params=params, on_open=lambda: publish(first))
    assert [e["event"] for e in live] == [event] * len(first)
    assert sorted((json.loads(e["data"]) for e in live), key=json.dumps) == sorted(
        (as_json(r) for r in first), key=json.dumps
    )
    last_id = live[-1]["id"]
    assert len(last_id.split(",")) == settings.partitions

    publish(rest)  # while disconnected
    missed = read_events(
        url, len(rest), headers={"Last-Event-ID": last_id}, params=params, linger=2.0
    )
    assert sorted((json.loads(e["data"]) for e in missed), key=json.dumps) == sorted(
        (as_json(r) for r in rest), key=json.dumps
    ), "exactly the missed records, none repeated"

    # ?cursor= from the start of every partition: everything, once.
    start = ",".join(f"{p}:-1" for p in range(settings.partitions))
    replay = read_events(url, len(records), params={**params, "cursor": start}, linger=2.0)
    assert sorted(e["data"] for e in replay) == sorted(e["data"] for e in live + missed)


def test_feed_filters(settings: Settings, service_factory: Callable[..., RunningService]) -> None:
    service = service_factory(settings, worker=False)
    producer = VoiceProducer(settings)
    codec = AvroCodec()
    for record in PREDICTIONS:
        producer.send_raw(
            producer.topics.predictions, record["voice_id"], codec.encode(PREDICTION, record)
        )
    for record in ALERTS:
        producer.send_raw(producer.topics.alerts, record["subject"], codec.encode(ALERT, record))
    for record in CONFLICTS:
        producer.send_raw(
            producer.topics.conflicts, record["source"], codec.encode(CONFLICT_PREDICTION, record)
        )
    for record in SCORES:
        producer.send_raw(producer.topics.emergence, None, codec.encode(EMERGENCE_SCHEMA, record))
    assert producer.flush() == 0
    start = ",".join(f"{p}:-1" for p in range(settings.partitions))

    def feed(path: str, count: int, **params: str) -> list[dict[str, Any]]:
        url = f"{service.url}/api/v1/stream/{path}"
        events = read_events(url, count, params={**params, "cursor": start}, linger=2.0)
        return sorted((json.loads(e["data"]) for e in events), key=json.dumps)

    def expected(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted((as_json(r) for r in records), key=json.dumps)

    v2 = [p for p in PREDICTIONS if p["voice_id"] == "v2"]
    assert feed("predictions", 3, voice_id="v2") == expected(v2)
    assert feed("alerts", 2, severity="critical") == expected(ALERTS[1:3])
    assert feed("alerts", 1, severity="info", rule="high_risk") == expected(ALERTS[3:])
    likely = [c for c in CONFLICTS if c["probability"] >= 0.5]  # the default min_probability
    assert feed("conflicts", 4) == expected(likely)
    assert feed("emergence", 1, detected="true") == [as_json(SCORES[1])]
