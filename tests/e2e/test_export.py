"""Exports against the running service: CSV, Parquet and Arrow files that read back, through
pyarrow, as exactly the table's rows in the range, and a row limit by role."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000
RANGE = {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T08:01:00Z"}


def test_exports_read_back_exactly_and_stop_at_the_role_limit(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(
        models_enabled=False, grace_seconds=1, rate_limits=False, export_max_rows=4
    )
    service = service_factory(settings)
    with VoiceProducer(settings) as producer:  # windows 0-2 of e1 and e2 close: 6 states
        for window in range(4):
            for voice in ("e1", "e2"):
                ts = T0 + window * 10_000 + 5_000
                producer.send_voice_event(voice_event(f"{voice}-{window}", voice, ts, stress=0.2))
    db = settings.clickhouse_database
    wait_for(
        lambda: clickhouse.rows(f"SELECT count() AS n FROM {db}.voice_states FINAL")[0]["n"] == 6,
        60,
        "6 closed windows",
    )
    stored = clickhouse.rows(
        f"SELECT voice_id, toUnixTimestamp64Milli(window_start) AS w, count, stress_mean "
        f"FROM {db}.voice_states FINAL ORDER BY window_start, voice_id"
    )
    admin = api_client.auth(Role.ADMIN)
    url = f"{service.url}/api/v1/export/voice_states"

    def read(fmt: str, headers: dict[str, str]) -> tuple[pa.Table, httpx.Response]:
        response = httpx.get(url, params={**RANGE, "format": fmt}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        data = io.BytesIO(response.content)
        if fmt == "csv":
            return pacsv.read_csv(data), response
        if fmt == "parquet":
            return pq.read_table(data), response
        return pa.ipc.open_stream(data).read_all(), response

    for fmt, media in (
        ("csv", "text/csv; charset=utf-8"),
        ("parquet", "application/vnd.apache.parquet"),
        ("arrow", "application/vnd.apache.arrow.stream"),
    ):
        table, response = read(fmt, admin)  # an admin's limit: 40 rows
        assert response.headers["content-type"] == media
        assert (
            response.headers["content-disposition"] == f'attachment; filename="voice_states.{fmt}"'
        )
        assert response.headers["deltaomega-truncated"] == "false"
        assert table.num_rows == 6
        assert "kafka_offset" not in table.column_names
        got = sorted(
            zip(
                table.column("voice_id").to_pylist(),
                table.column("count").to_pylist(),
                table.column("stress_mean").to_pylist(),
                strict=True,
            )
        )
        assert got == sorted((r["voice_id"], r["count"], r["stress_mean"]) for r in stored)

    limited, response = read("arrow", api_client.auth(Role.ANALYST))
    assert limited.num_rows == 4
    assert response.headers["deltaomega-row-limit"] == "4"
    assert response.headers["deltaomega-truncated"] == "true"
    # in window order: the first four stored rows' windows
    windows = [w.timestamp() * 1000 for w in limited.column("window_start").to_pylist()]
    assert sorted(windows) == sorted(r["w"] for r in stored[:4])

    # nested values (an alert's recommended actions) are JSON in a CSV; no rows: a header
    alerts = httpx.get(
        f"{service.url}/api/v1/export/alerts", params={**RANGE, "format": "csv"}, headers=admin
    )
    assert alerts.status_code == 200
    assert alerts.text.splitlines()[0].split(",")[:3] == ['"alert_id"', '"window_start"', '"rule"']
    assert '"recommended_actions"' in alerts.text.splitlines()[0]
    assert len(alerts.text.splitlines()) == 1

    unknown = httpx.get(f"{service.url}/api/v1/export/secrets", headers=admin)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "table"
