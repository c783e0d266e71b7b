"""`deltaomega simulate` publishes the same events for the same seed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deltaomega.cli import main
from deltaomega.config import Settings
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
    rows = zip(cols.event_id, cols.ts.tolist(), cols.metrics[:, 2].tolist(), strict=True)
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
