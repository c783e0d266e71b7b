"""A simulated conflict and an emergence onset, through the worker's models, into
ClickHouse and onto the SSE feeds; the stream's outputs equal an offline run of the same
states through the same engine."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from deltaomega.config import Settings
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.producer import SimulationConfig, run_simulation
from deltaomega.producer.episodes import Episode
from deltaomega.schemas.records import METRICS
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from deltaomega.sinks.recent import states_since
from deltaomega.streams.ticks import ClosedWindow, TickOutputs, TickRunner
from deltaomega.topics import Topics
from tests import api_client
from tests.api_client import sse_events
from tests.conftest import RunningService, wait_for
from tests.model_outputs import simulate_episodes
from tests.receivers import hook_routing, http_receiver

WINDOW = 10_000
VOICES = [f"voice-{i:02d}" for i in range(8)]
PAIR = {"voice-01->voice-02", "voice-02->voice-01"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column}) AS {column}"


def topic_records(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "count"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def wait_until_stored(settings: Settings, clickhouse: ClickHouse) -> None:
    """Every output record published so far is in ClickHouse (each sink inserts on its own)."""
    topics = Topics.from_settings(settings)
    db = settings.clickhouse_database
    for table, topic in (
        ("predictions", topics.predictions),
        ("conflict_predictions", topics.conflicts),
        ("emergence", topics.emergence),
        ("patterns", topics.patterns),
        ("alerts", topics.alerts),
        ("prediction_scores", topics.prediction_scores),
    ):
        published = topic_records(settings, topic)
        wait_for(
            lambda t=table, n=published: (
                clickhouse.rows(f"SELECT count() AS n FROM {db}.{t} FINAL")[0]["n"] == n
            ),
            timeout=30,
            what=f"{published} rows in {table}",
        )


def offline_outputs(
    settings: Settings, clickhouse: ClickHouse, starts: list[int]
) -> dict[int, TickOutputs]:
    """The stored states of these windows through an engine that never stopped, in order."""
    voices, links = states_since(clickhouse, settings.clickhouse_database, starts[0])
    runner = TickRunner(settings, ModelRuntime(ModelRegistry(settings.resolved_models_dir)))
    runner.runtime.start()
    return {
        start: runner.run_tick(
            ClosedWindow(
                start,
                {s["voice_id"]: s for s in voices if s["window_start"] == start},
                [x for x in links if x["window_start"] == start],
            )
        )
        for start in starts
    }


def check_scores(settings: Settings, clickhouse: ClickHouse, url: str, t0: int, end: int) -> None:
    db = settings.clickhouse_database
    state = {
        (r["voice_id"], r["window_start"]): r
        for r in clickhouse.rows(
            f"SELECT voice_id, {ms('window_start')}, "
            + ", ".join(f"{m}_mean" for m in METRICS)
            + f" FROM {db}.voice_states FINAL"
        )
    }
    made: dict[int, list[dict[str, Any]]] = {}
    for p in clickhouse.rows(f"SELECT *, {ms('target_window_start')} FROM {db}.predictions FINAL"):
        made.setdefault(p["target_window_start"], []).append(p)
    antagonism: Counter[tuple[int, str, str]] = Counter()
    for link in clickhouse.rows(
        f"SELECT {ms('window_start')}, source, target, strength_mean FROM {db}.interaction_states "
        "FINAL WHERE kind IN ('COMPETITION', 'SUPPRESSION')"
    ):
        antagonism[(link["window_start"], link["source"], link["target"])] += link["strength_mean"]
    in_conflict: dict[int, set[tuple[str, str]]] = {}
    for (w, s, t), total in antagonism.items():
        if total >= settings.conflict_observed_strength:
            in_conflict.setdefault(w, set()).add((s, t))
    predicted: dict[int, set[tuple[str, str]]] = {}
    for c in clickhouse.rows(
        f"SELECT {ms('window_start')}, source, target FROM {db}.conflict_predictions FINAL "
        "WHERE probability >= {p:Float64}",
        p=settings.alert_conflict_warning,
    ):
        predicted.setdefault(c["window_start"], set()).add((c["source"], c["target"]))

    response = httpx.get(
        f"{url}/api/v1/predictions/scores",
        params={"start": iso(t0), "end": iso(end)},
        headers=api_client.auth(Role.ANALYST),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    windows = response.json()["windows"]
    # every window but the first (nothing was predicted for it), newest first
    assert [iso_ms(w["window_start"]) for w in windows] == list(range(end - WINDOW, t0, -WINDOW))
    for w in windows:
        start = iso_ms(w["window_start"])
        scored = [p for p in made[start] if (p["voice_id"], start - WINDOW) in state]
        assert w["voices"] == len(scored) == 8
        for m in METRICS:
            actual = [state[(p["voice_id"], start)][f"{m}_mean"] for p in scored]
            before = [state[(p["voice_id"], start - WINDOW)][f"{m}_mean"] for p in scored]
            got = w["metrics"][m]
            assert got["mae"] == pytest.approx(
                sum(abs(p[f"{m}_pred"] - a) for p, a in zip(scored, actual, strict=True)) / 8
            )
            assert got["persistence_mae"] == pytest.approx(
                sum(abs(b - a) for b, a in zip(before, actual, strict=True)) / 8
            )
            assert got["coverage"] == pytest.approx(
                sum(
                    p[f"{m}_low"] <= a <= p[f"{m}_high"]
                    for p, a in zip(scored, actual, strict=True)
                )
                / 8
            )
        made_at = start - 3 * WINDOW
        if made_at < t0:
            assert w["conflicts"] is None
            continue
        said = predicted.get(made_at, set())
        happened = set().union(*(in_conflict.get(made_at + i * WINDOW, set()) for i in (1, 2, 3)))
        assert w["conflicts"] == {
            "predicted_at": iso(made_at),
            "threshold": settings.alert_conflict_warning,
            "predicted": len(said),
            "hits": len(said & happened),
            "false_alarms": len(said - happened),
            "misses": len(happened - said),
        }
    # The conflict episode was predicted and seen: some hits.
    assert sum(w["conflicts"]["hits"] for w in windows if w["conflicts"]) > 0


def read_feed(url: str, want: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with api_client.stream("GET", url, timeout=httpx.Timeout(5.0, read=30.0)) as response:
        assert response.status_code == 200
        for event in sse_events(response, time.monotonic() + 60):
            if event is not None:
                got.append(json.loads(event["data"]))
                if want(got):
                    return got
    raise AssertionError("feed ended")


@pytest.mark.kafka
def test_conflict_and_emergence_end_to_end(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    tmp_path: Path,
) -> None:
    # Alert dispatch on, one webhook for warnings and criticals; conditions stay open for
    # the whole run, so each gets exactly one first notice however many windows it fires.
    receiver = next(receivers := http_receiver())
    routing = hook_routing(
        tmp_path / "routing.yaml",
        f"{receiver.url}/hook",
        ("CRITICAL", "WARNING"),
        resolve_after_windows=1000,
    )
    settings = settings_factory(batch_max_records=2000, alert_routing_file=routing)
    db = settings.clickhouse_database
    t0 = (int(time.time() * 1000) - 600_000) // WINDOW * WINDOW
    conflict = Episode("conflict", t0 + 60_000, t0 + 150_000, ("voice-01", "voice-02"))
    onset = Episode("emergence", t0 + 200_000, t0 + 230_000, tuple(VOICES))
    service = service_factory(settings, control=True)
    summary = simulate_episodes(settings, t0, 300.0, 21, [conflict, onset])
    assert summary.failed == 0 and summary.episodes == 2

    # Windows up to [t0 + 280 s, t0 + 290 s) close (events run to t0 + 300 s, grace 5 s).
    end = t0 + 290_000
    wait_for(
        lambda: clickhouse.rows(f"SELECT count() AS n FROM {db}.patterns FINAL")[0]["n"] == 29,
        timeout=120,
        what="29 ticks through the models",
    )
    wait_until_stored(settings, clickhouse)
    emergence = clickhouse.rows(
        f"SELECT {ms('window_start')}, probability, detected, type, voices, model_version "
        f"FROM {db}.emergence FINAL ORDER BY window_start",
    )
    assert [e["window_start"] for e in emergence] == list(range(t0, end, WINDOW))
    assert all(e["voices"] == 8 for e in emergence)
    detected = [e["window_start"] - t0 for e in emergence if e["detected"]]
    assert detected and all(200_000 <= d < 240_000 for d in detected), detected
    assert detected[0] == 200_000  # in the window the onset happened

    conflicts = clickhouse.rows(
        f"SELECT {ms('window_start')}, source, target, probability "
        f"FROM {db}.conflict_predictions FINAL",
    )
    # Confident predictions come only around the episode (the horizon is 3 windows) …
    around = range(60_000 - 3 * WINDOW, 150_000 + 3 * WINDOW)
    confident = [c for c in conflicts if c["probability"] >= 0.85]
    assert {f"{c['source']}->{c['target']}" for c in confident} >= PAIR
    assert all(c["window_start"] - t0 in around for c in confident), confident
    # … and it is the episode that raised the pair's probability.
    pair = [c for c in conflicts if f"{c['source']}->{c['target']}" in PAIR]
    before = [c["probability"] for c in pair if c["window_start"] - t0 < 30_000]
    assert before and max(before) < 0.5, before

    alerts = clickhouse.rows(
        f"SELECT alert_id, rule, severity, subject, {ms('window_start')}, recommended_actions "
        f"FROM {db}.alerts FINAL WHERE rule IN ('conflict', 'emergence')",
    )
    conflict_alerts = [a for a in alerts if a["rule"] == "conflict"]
    emergence_alerts = [a for a in alerts if a["rule"] == "emergence"]
    assert {a["subject"] for a in conflict_alerts} >= PAIR
    assert all(a["window_start"] - t0 in around for a in conflict_alerts)
    assert sorted(a["window_start"] - t0 for a in emergence_alerts) == detected
    assert all(a["recommended_actions"] for a in alerts)
    assert all(a["alert_id"] == f"{a['rule']}:{a['subject']}:{a['window_start']}" for a in alerts)

    # The same states through the same engine, offline, give the same numbers.
    offline = offline_outputs(settings, clickhouse, [e["window_start"] for e in emergence])
    for e in emergence:
        out = offline[e["window_start"]]
        assert out.emergence["probability"] == pytest.approx(e["probability"], abs=1e-6)
        assert out.emergence["model_version"] == e["model_version"]

    # Each window's predictions were scored as it closed: the same numbers as computed here
    # from the stored predictions, states and links.
    check_scores(settings, clickhouse, service.url, t0, end)

    # On demand over a chosen range, the API's models agree with the stream's, window for
    # window, also where the range starts mid-run (its first windows see the stored history).
    patterns = clickhouse.rows(
        f"SELECT {ms('window_start')}, pattern, confidence, novelty FROM {db}.patterns FINAL "
        "ORDER BY window_start",
    )
    by_start = {p["window_start"]: p for p in patterns}
    scores = {e["window_start"]: e for e in emergence}
    for first, last in ((t0, end), (t0 + 95_000, t0 + 205_000)):
        response = httpx.post(
            f"{service.url}/api/v1/patterns/analyze",
            json={"start": iso(first), "end": iso(last)},
            headers=api_client.auth(Role.ANALYST),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        report = response.json()
        starts = list(range(-(-first // WINDOW) * WINDOW, last, WINDOW))
        assert [iso_ms(w["window_start"]) for w in report["windows"]] == starts
        assert report["model_version"] == emergence[0]["model_version"]
        for w in report["windows"]:
            stored = by_start[iso_ms(w["window_start"])]
            assert w["pattern"] == stored["pattern"]
            assert w["confidence"] == pytest.approx(stored["confidence"], abs=1e-6)
            assert w["novelty"] == pytest.approx(stored["novelty"], abs=1e-5)
            score = scores[iso_ms(w["window_start"])]
            assert w["emergence_probability"] == pytest.approx(score["probability"], abs=1e-6)
            assert w["emergence_detected"] == score["detected"]
            assert w["voices"] == 8
        seen = [by_start[s]["pattern"] for s in starts]
        assert report["pattern_counts"] == {k: seen.count(k) for k in set(seen)}
        assert report["changes"] == [
            {"window_start": iso(s), "before": a, "after": b}
            for s, a, b in zip(starts[1:], seen, seen[1:], strict=False)
            if a != b
        ]
        assert report["emergent_windows"] == sum(scores[s]["detected"] for s in starts)

    # The simulated conflict reached people once per condition, not once per window: one
    # first notice for each pair that alerted (in many windows), and at most one more when
    # it turned critical.
    windows_alerted = Counter(a["subject"] for a in conflict_alerts)
    assert max(windows_alerted.values()) >= 3, windows_alerted

    def notices() -> Counter[tuple[str, str]]:
        seen = {r.headers["X-DeltaOmega-Delivery"]: r.json() for r in receiver.on("/hook")}
        return Counter(
            (n["condition"]["subject"], n["kind"])
            for n in seen.values()
            if n["condition"]["rule"] == "conflict"
        )

    wait_for(
        lambda: {s for s, k in notices() if k == "opened"} == set(windows_alerted),
        30,
        "a notice per conflict condition",
    )
    got = notices()
    assert {s: got[(s, "opened")] for s in windows_alerted} == dict.fromkeys(windows_alerted, 1)
    assert set(got) <= {(s, k) for s in windows_alerted for k in ("opened", "severity")}
    assert all(n == 1 for n in got.values()), got
    receivers.close()

    # The live feeds carry the same records, from the start of the topics.
    feed = f"{service.url}/api/v1/stream"
    got = read_feed(
        f"{feed}/alerts?cursor=0:-1",
        lambda a: {x["rule"] for x in a} >= {"conflict", "emergence"},
    )
    ids = {a["alert_id"] for a in alerts}
    assert {a["alert_id"] for a in got if a["rule"] in ("conflict", "emergence")} <= ids
    got = read_feed(f"{feed}/emergence?cursor=0:-1", lambda a: len(a) == len(emergence))
    assert [g["probability"] for g in got] == pytest.approx([e["probability"] for e in emergence])


@pytest.mark.kafka
def test_running_worker_picks_up_an_activated_version(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(batch_max_records=2000, models_poll_seconds=0.2)
    db = settings.clickhouse_database
    t0 = (int(time.time() * 1000) - 600_000) // WINDOW * WINDOW
    service = service_factory(settings)
    registry = ModelRegistry(settings.resolved_models_dir)
    # The model process installs the shipped version as it starts.
    wait_for(lambda: registry.active() is not None, timeout=60, what="a model version")
    shipped = registry.active()
    assert shipped is not None

    def simulate(start: int, seed: int) -> None:
        config = SimulationConfig(
            voices=6, rate=120, interaction_rate=24, seed=seed, episodes=False
        )
        run_simulation(settings, config, 100.0, realtime=False, batch_size=50, start_ms=start)

    def versions() -> dict[int, str]:
        found = clickhouse.rows(
            f"SELECT {ms('window_start')}, model_version FROM {db}.patterns FINAL",
        )
        return {r["window_start"] - t0: r["model_version"] for r in found}

    simulate(t0, seed=1)
    wait_for(lambda: len(versions()) >= 8, timeout=60, what="windows up to t0 + 70 s")
    # A second version (same graphs, another name), activated as `deltaomega models activate` does.
    shutil.copytree(registry.versions_dir / shipped, registry.versions_dir / "v2")
    registry.activate("v2")

    def serving_v2() -> bool:
        text = api_client.get(f"{service.url}/metrics", timeout=5).text
        return 'deltaomega_model_version_active{version="v2"} 1.0' in text

    wait_for(serving_v2, timeout=30, what="the worker to load v2")
    simulate(t0 + 100_000, seed=2)
    wait_for(lambda: len(versions()) == 19, timeout=90, what="windows up to t0 + 180 s")
    wait_until_stored(settings, clickhouse)
    seen = versions()
    assert sorted(seen) == list(range(0, 190_000, WINDOW))
    assert {seen[w] for w in range(0, 80_000, WINDOW)} == {shipped}
    assert {seen[w] for w in range(90_000, 190_000, WINDOW)} == {"v2"}
    assert registry.rollback() == shipped


@pytest.mark.kafka
def test_restarted_worker_continues_with_the_history_it_had(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(batch_max_records=2000)
    db = settings.clickhouse_database
    t0 = (int(time.time() * 1000) - 600_000) // WINDOW * WINDOW

    def simulate(start: int, seed: int) -> None:
        config = SimulationConfig(voices=6, rate=120, interaction_rate=24, seed=seed)
        run_simulation(settings, config, 100.0, realtime=False, batch_size=50, start_ms=start)

    def ticks() -> int:
        return int(clickhouse.rows(f"SELECT count() AS n FROM {db}.patterns FINAL")[0]["n"])

    first = service_factory(settings)
    simulate(t0, seed=1)
    wait_for(lambda: ticks() == 9, timeout=90, what="ticks up to t0 + 80 s")
    wait_until_stored(settings, clickhouse)
    first.stop()
    service_factory(settings)
    simulate(t0 + 100_000, seed=2)
    wait_for(lambda: ticks() == 19, timeout=90, what="ticks up to t0 + 180 s")
    wait_until_stored(settings, clickhouse)

    # One engine that never stopped, over the same stored states, gives the same outputs:
    # the restarted worker carried its 8 windows of history over.
    stored = {
        (r["window_start"], r["voice_id"]): r["stress_pred"]
        for r in clickhouse.rows(
            f"SELECT {ms('window_start')}, voice_id, stress_pred FROM {db}.predictions FINAL",
        )
    }
    patterns = {
        r["window_start"]: r["novelty"]
        for r in clickhouse.rows(f"SELECT {ms('window_start')}, novelty FROM {db}.patterns FINAL")
    }
    offline = offline_outputs(settings, clickhouse, list(range(t0, t0 + 190_000, WINDOW)))
    for start, out in offline.items():
        assert len(out.predictions) == 6
        for p in out.predictions:
            assert p["stress_pred"] == pytest.approx(stored[(start, p["voice_id"])], abs=1e-6)
        assert out.pattern["novelty"] == pytest.approx(patterns[start], abs=1e-5)
