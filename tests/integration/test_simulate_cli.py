"""`deltaomega simulate` publishes the same events for the same seed, and its labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deltaomega.cli import main
from deltaomega.config import Settings
from deltaomega.producer.episodes import REGIMES, Scenario, read_episodes
from deltaomega.schemas import AvroCodec
from tests.integration.test_producer import read


def run_cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> None:
    monkeypatch.setenv("DELTAOMEGA_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("DELTAOMEGA_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("DELTAOMEGA_PARTITIONS", str(settings.partitions))
    assert main(["simulate", *args]) == 0


def published(settings: Settings, records: int) -> list[tuple[str, int, float]]:
    messages = read(settings, f"{settings.topic_prefix}voice.events", records)
    assert len(messages) == records
    cols = AvroCodec().decode_voice_events([m.value() for m in messages]).columns
    rows = zip(
        cols.event_id.to_pylist(), cols.ts.tolist(), cols.metrics[:, 2].tolist(), strict=True
    )
    return sorted(rows)


def test_same_seed_publishes_the_same_events(
    monkeypatch: pytest.MonkeyPatch,
    settings_factory: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = settings_factory(), settings_factory()
    args = [
        "--voices",
        "5",
        "--rate",
        "500",
        "--duration",
        "3",
        "--seed",
        "42",
        "--fast",
        "--start-ms",
        "1800000000000",
        "--batch-size",
        "20",
    ]
    run_cli(monkeypatch, first, *args)
    # "sent N voice events and M interactions (R records delivered, 0 failed)"
    words = capsys.readouterr().out.split()
    sent, interactions, records = int(words[1]), int(words[5]), int(words[7].lstrip("("))
    assert sent > 1000
    run_cli(monkeypatch, second, *args)
    voice_records = records - interactions
    a, b = published(first, voice_records), published(second, voice_records)
    assert len(a) == sent
    assert a == b


def test_labels_file_holds_the_episodes_played(
    monkeypatch: pytest.MonkeyPatch,
    settings_factory: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    settings = settings_factory()
    labels = tmp_path / "labels.jsonl"
    start = 1_800_000_000_000
    args = ["--voices", "6", "--rate", "60", "--duration", "400", "--seed", "3", "--fast"]
    run_cli(monkeypatch, settings, *args, "--start-ms", str(start), "--labels", str(labels))
    episodes = read_episodes(labels)
    # The same seed's scenario, planned without Kafka, is exactly what the file says.
    scenario = Scenario([f"voice-{i:02d}" for i in range(6)], start, seed=3)
    scenario.plan_until(start + 400_000)
    assert episodes == scenario.begun(start + 400_000)
    assert len(episodes) >= 2
    assert all(e.regime in REGIMES and start <= e.start_ms < start + 400_000 for e in episodes)
    assert f"wrote {len(episodes)} labelled episodes" in capsys.readouterr().out
