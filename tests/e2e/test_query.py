"""Analysts' SQL against the running service: answers as JSON and as Arrow, every class of
forbidden statement refused with a 422 naming why, and a runaway query stopped at its
limit by ClickHouse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
import pytest

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000
ANALYST = api_client.auth(Role.ANALYST)


def _query(url: str, sql: str, headers: dict[str, str] = ANALYST, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/query", json={"sql": sql, **extra}, headers=headers, timeout=60
    )


@pytest.fixture
def service(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> tuple[str, Settings]:
    settings = settings_factory(
        models_enabled=False,
        grace_seconds=1,
        rate_limits=False,
        analysis_max_execution_seconds=1.0,
        analysis_max_result_rows=50,
        analysis_max_memory_bytes=100 << 20,
    )
    running = service_factory(settings)
    # q1 has events in windows 0-3 (0-2 close), q2 in 0, 1 and 3 (0 and 1 close)
    with VoiceProducer(settings) as producer:
        for window in range(4):
            for voice in ("q1", "q2"):
                if voice == "q2" and window == 2:
                    continue
                producer.send_voice_event(
                    voice_event(f"{voice}-{window}", voice, T0 + window * 10_000 + 5_000)
                )
    db = settings.clickhouse_database
    wait_for(
        lambda: clickhouse.rows(f"SELECT count() AS n FROM {db}.voice_states FINAL")[0]["n"] == 5,
        60,
        "5 closed windows",
    )
    return running.url, settings


def test_a_select_answers_as_json_and_as_arrow(service: tuple[str, Settings]) -> None:
    url, _ = service
    sql = (
        "SELECT voice_id, count() AS windows, max(window_start) AS last "
        "FROM voice_states FINAL GROUP BY voice_id ORDER BY voice_id"
    )
    answer = _query(url, sql)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == [
        {"name": "voice_id", "type": "LowCardinality(String)"},
        {"name": "windows", "type": "UInt64"},
        {"name": "last", "type": "DateTime64(3, 'UTC')"},
    ]
    assert body["rows"] == [
        ["q1", 3, "2027-01-15T08:00:20+00:00"],
        ["q2", 2, "2027-01-15T08:00:10+00:00"],  # its window 3 is still open
    ]
    assert body["row_count"] == 2
    arrow = _query(url, sql, format="arrow")
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column_names == ["voice_id", "windows", "last"]
    assert table.column("voice_id").to_pylist() == ["q1", "q2"]
    assert table.column("windows").to_pylist() == [3, 2]


#: (statement, what the 422 says): each class of statement that may not run
FORBIDDEN = [
    (
        "INSERT INTO voice_states (voice_id) VALUES ('x')",
        "only a SELECT may run here, not InsertQuery",
    ),
    ("DROP TABLE voice_states", "only a SELECT may run here, not DropQuery"),
    ("ALTER TABLE voice_states DELETE WHERE 1", "only a SELECT may run here, not AlterQuery"),
    ("SELECT * FROM system.tables", "only the "),
    ("SELECT 1 WHERE 1 IN system.one", "only the "),
    (
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "table functions are not allowed here (file)",
    ),
    ("SELECT * FROM numbers(10)", "table functions are not allowed here (numbers)"),
    ("SELECT file('/etc/hostname')", "the function file reaches outside"),
    ("SELECT 1 SETTINGS max_result_rows = 1000000", "a query may not carry SETTINGS"),
    ("SELECT 1; SELECT 2", "Multi-statements are not allowed"),
    ("SELEC 1", "Syntax error"),
    ("SELECT nothing FROM voice_states", "Unknown expression identifier"),
]


def test_forbidden_statements_are_refused_naming_why(service: tuple[str, Settings]) -> None:
    """One service for every case (each would otherwise start its own)."""
    url, _ = service
    for sql, detail in FORBIDDEN:
        answer = _query(url, sql)
        assert answer.status_code == 422, (sql, answer.text)
        problem = answer.json()
        assert problem["errors"][0]["field"] == "sql"
        assert detail in problem["detail"], (sql, problem["detail"])


def test_runaway_queries_are_stopped_at_their_limits(service: tuple[str, Settings]) -> None:
    url, settings = service
    # five windows joined with themselves twelve times: 244 million rows
    joined = ", ".join(f"voice_states AS t{i}" for i in range(12))
    hashed = ", ".join(f"t{i}.count" for i in range(12))
    slow = _query(url, f"SELECT sum(cityHash64({hashed})) FROM {joined}")
    assert slow.status_code == 422
    assert slow.json()["detail"] == "sql: stopped: it ran longer than 1 s (max_execution_time)"
    greedy = _query(
        url,
        "SELECT sum(cityHash64(a, b)) FROM "
        "(SELECT arrayJoin(range(100000)) AS a, arrayJoin(range(100001)) AS b)",
    )
    assert greedy.status_code == 422
    assert greedy.json()["detail"] == (
        "sql: stopped: it needs more than 104857600 bytes of memory (max_memory_usage)"
    )
    three = "SELECT a.voice_id FROM voice_states AS a, voice_states AS b, voice_states AS c"
    big = _query(url, three)  # 125 rows
    assert big.status_code == 422
    assert (
        big.json()["detail"] == "sql: stopped: its result has more than 50 rows (max_result_rows)"
    )
    # a result computed without reading a table is held to the same bound
    constant = _query(url, "SELECT arrayJoin(range(1000)) AS n")
    assert constant.json()["detail"] == big.json()["detail"]
    # an admin's limits are ten times the rows
    admin = _query(url, three, api_client.auth(Role.ADMIN))
    assert admin.status_code == 200 and admin.json()["row_count"] == 125
    # the connection is still good afterwards, and viewers may not run SQL
    assert _query(url, "SELECT 1 AS one").json()["rows"] == [[1]]
    assert _query(url, "SELECT 1", api_client.auth(Role.VIEWER)).status_code == 403


def test_saved_queries_are_each_callers_own(service: tuple[str, Settings]) -> None:
    url, _ = service
    saved = f"{url}/api/v1/query/saved"
    alice = api_client.auth(Role.ANALYST, subject="alice")
    bob = api_client.auth(Role.ANALYST, subject="bob")
    first = "SELECT voice_id, count() FROM voice_states FINAL GROUP BY voice_id"
    put = httpx.put(f"{saved}/per voice", json={"sql": first, "description": "d"}, headers=alice)
    assert put.status_code == 200, put.text
    assert (put.json()["name"], put.json()["sql"]) == ("per voice", first)
    refused = httpx.put(f"{saved}/drop", json={"sql": "DROP TABLE alerts"}, headers=alice)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "sql: only a SELECT may run here, not DropQuery"
    badly_named = httpx.put(f"{saved}/no%21", json={"sql": "SELECT 1"}, headers=alice)
    assert badly_named.status_code == 422
    assert badly_named.json()["errors"][0]["field"] == "name"

    def names(headers: dict[str, str]) -> list[tuple[str, str]]:
        return [(q["name"], q["sql"]) for q in httpx.get(saved, headers=headers).json()["queries"]]

    assert names(alice) == [("per voice", first)]
    assert names(bob) == []
    assert (
        httpx.put(f"{saved}/per voice", json={"sql": "SELECT 2"}, headers=alice).status_code == 200
    )
    assert httpx.put(f"{saved}/another", json={"sql": "SELECT 3"}, headers=alice).status_code == 200
    assert names(alice) == [("another", "SELECT 3"), ("per voice", "SELECT 2")]
    assert httpx.delete(f"{saved}/per voice", headers=bob).status_code == 404  # not bob's
    assert httpx.delete(f"{saved}/per voice", headers=alice).status_code == 204
    assert names(alice) == [("another", "SELECT 3")]
    assert httpx.delete(f"{saved}/per voice", headers=alice).status_code == 404
