"""Open windows survive a worker restart (RocksDB + changelog) and close exactly once."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.sinks.clickhouse import ClickHouse
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000


def send(producer: VoiceProducer, voice: str, offsets_ms: list[int], value: float) -> None:
    for offset in offsets_ms:
        producer.send_voice_event(
            voice_event(f"{voice}-{offset}", voice, T0 + offset, value, value, value, value)
        )
    assert producer.flush() == 0


def test_windows_open_at_shutdown_are_recovered_from_the_changelog(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(window_seconds=10, grace_seconds=2)
    db = settings.clickhouse_database

    def raw_rows() -> int:
        return int(
            clickhouse.call(
                lambda c: c.query(f"SELECT count() FROM {db}.voice_events FINAL").result_rows[0][0]
            )
        )

    first = service_factory(settings)
    producer = VoiceProducer(settings)
    send(producer, "r1", [1_000, 2_000, 3_000], 0.2)  # window [0, 10) stays open
    wait_for(lambda: raw_rows() == 3, what="first events consumed")
    first.stop()
    # Lose the local RocksDB checkpoint too: the windows must come back from the changelog.
    shutil.rmtree(settings.data_dir / "windows")

    second = service_factory(settings)
    send(producer, "r1", [4_000, 15_000], 0.8)  # 15 s - 2 s grace closes [0, 10)
    wait_for(lambda: raw_rows() == 5, what="events after the restart consumed")

    def state() -> list[tuple]:
        return clickhouse.call(
            lambda c: (
                c.query(
                    f"SELECT count, activation_mean, activation_last FROM {db}.voice_states FINAL "
                    "WHERE voice_id = 'r1'"
                ).result_rows
            )
        )

    wait_for(lambda: len(state()) == 1, what="the recovered window to close")
    count, mean, last = state()[0]
    assert count == 4
    assert abs(mean - (0.2 * 3 + 0.8) / 4) < 1e-12
    assert last == 0.8
    assert second.thread.is_alive()
