"""GraphQL against the running service: queries with exact values and one parameters read
for every voice, role checks per field, mutations through the same path as REST (records,
audit rows, validation), the depth limit, and a subscription over graphql-transport-ws."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from deltaomega.api.queries import Queries
from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.models.registry import ModelRegistry
from deltaomega.producer import VoiceProducer
from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import ALERT
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for
from tests.kafka_tools import produce_avro, wait_for_records

T0 = 1_800_000_000_000
VOICES = ("g1", "g2", "g3")


def _gql(url: str, query: str, role: Role = Role.VIEWER, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers=api_client.auth(role, subject=f"{role.label}-1"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _publish(settings: Settings) -> None:
    """Windows 0 and 1 of every voice (stress 0.1 × voice number in window 1), and one that
    closes them."""
    with VoiceProducer(settings) as producer:
        for window in range(3):
            for n, voice in enumerate(VOICES, start=1):
                ts = T0 + window * 10_000 + 7_000
                event = voice_event(f"{voice}-{window}", voice, ts, stress=0.1 * n * window)
                producer.send_voice_event(event)


def test_queries_mutations_roles_and_limits(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(models_enabled=False, rate_limits=False, grace_seconds=1)
    service = service_factory(settings)
    url = service.url
    _publish(settings)
    db = settings.clickhouse_database
    wait_for(
        lambda: (
            clickhouse.rows(f"SELECT count() AS n FROM {db}.voice_latest FINAL")[0]["n"] == 3
            and all(
                r["w"] == T0 + 10_000
                for r in clickhouse.rows(
                    f"SELECT toUnixTimestamp64Milli(window_start) AS w FROM {db}.voice_latest FINAL"
                )
            )
        ),
        60,
        "window 1 of every voice",
    )

    # one parameters read for every voice of a query (a loader), however many voices
    queries: Queries = service.server.config.app.state.context.queries
    batches: list[list[str]] = []
    read = queries.parameter_changes_of

    async def counting(voice_ids: list[str], limit: int) -> dict[str, list[dict[str, Any]]]:
        batches.append(sorted(voice_ids))
        return await read(voice_ids, limit)

    queries.parameter_changes_of = counting  # type: ignore[method-assign]
    data = _gql(
        url,
        "{ voices { voiceId windowStart count stress { mean max } "
        "parameters { influenceWeight sensitivity } } }",
    )
    assert "errors" not in data, data
    assert data["data"]["voices"] == [
        {
            "voiceId": voice,
            "windowStart": "2027-01-15T08:00:10+00:00",
            "count": 1,
            "stress": {"mean": 0.1 * n * 1, "max": 0.1 * n * 1},  # as published
            "parameters": {"influenceWeight": 1.0, "sensitivity": 1.0},
        }
        for n, voice in enumerate(VOICES, start=1)
    ]
    assert batches == [list(VOICES)]
    filtered = _gql(url, "{ voices(filter: {minStress: 0.25}) { voiceId } }")
    assert filtered["data"]["voices"] == [{"voiceId": "g3"}]
    one = _gql(
        url, "query($id: String!) { voice(id: $id) { voiceId activation { last } } }", id="g2"
    )
    assert one["data"]["voice"] == {"voiceId": "g2", "activation": {"last": 0.5}}
    assert _gql(url, '{ voice(id: "nobody") { voiceId } }')["data"]["voice"] is None

    # a field above the caller's role is refused, and only that field
    denied = _gql(url, "{ polyphonicPatterns { patternId } voices { voiceId } }")
    assert denied["data"] is None or denied["data"].get("polyphonicPatterns") is None
    (error,) = denied["errors"]
    assert error["path"] == ["polyphonicPatterns"]
    assert error["extensions"] == {"code": "FORBIDDEN", "status": 403}
    assert error["message"] == "needs the analyst role or above; viewer-1 is a viewer"
    analyst = _gql(url, "{ polyphonicPatterns { patternId } }", Role.ANALYST)
    assert analyst == {"data": {"polyphonicPatterns": []}}

    # mutations: the same path as REST (record, audit), the same validation
    change = """mutation($v: String!, $p: ParametersInput!) {
        updateVoiceParameters(voiceId: $v, parameters: $p, rationale: "calm g1",
                              expectedDuration: 30) { changeId voiceId status expiresAt } }"""
    refused = _gql(url, change, Role.VIEWER, v="g1", p={"influenceWeight": 0.5})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    invalid = _gql(url, change, Role.OPERATOR, v="g1", p={"sensitivity": 3.0})
    assert invalid["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "status": 422,
        "field": "parameters.sensitivity",
    }
    done = _gql(url, change, Role.OPERATOR, v="g1", p={"influenceWeight": 0.5})
    assert "errors" not in done, done
    result = done["data"]["updateVoiceParameters"]
    assert (result["voiceId"], result["status"]) == ("g1", "accepted")
    topics = Topics.from_settings(settings)
    ((key, record),) = wait_for_records(settings, topics.parameters, 1)
    assert key == b"g1"
    assert (record["change_id"], record["influence_weight"], record["requested_by"]) == (
        result["changeId"],
        0.5,
        "operator-1",
    )
    assert record["expected_duration_minutes"] == 30
    wait_for(
        lambda: (
            _gql(url, "{ voices { voiceId parameters { influenceWeight } } }")["data"]["voices"][0][
                "parameters"
            ]["influenceWeight"]
            == 0.5
        ),
        30,
        "g1's new weight through the loader",
    )
    wait_for(
        lambda: (
            len(
                clickhouse.rows(
                    f"SELECT 1 FROM {db}.audit_log FINAL WHERE action = 'parameters.set'"
                )
            )
            == 1
        ),
        30,
        "the audit row",
    )
    audit = clickhouse.rows(
        f"SELECT principal, action, target, rationale FROM {db}.audit_log FINAL "
        f"WHERE action = 'parameters.set'"
    )
    assert audit == [
        {
            "principal": "operator-1",
            "action": "parameters.set",
            "target": "g1",
            "rationale": "calm g1",
        }
    ]

    orchestrate = """mutation($i: OrchestrationInput!) {
        triggerOrchestration(strategy: ADAPTIVE, input: $i) { orchestrationId status } }"""
    twice = _gql(
        url,
        orchestrate,
        Role.OPERATOR,
        i={"targetVoices": ["g1", "g1"], "duration": 5, "rationale": "x y"},
    )
    assert twice["errors"][0]["extensions"]["field"] == "target_voices"
    proposed = _gql(
        url,
        orchestrate,
        Role.OPERATOR,
        i={
            "targetVoices": ["g1", "g2"],
            "duration": 5,
            "rationale": "damp g1 and g2",
            "scale": 0.5,
        },
    )
    oid = proposed["data"]["triggerOrchestration"]["orchestrationId"]
    ((_, event),) = wait_for_records(settings, topics.orchestration, 1)
    assert (event["orchestration_id"], event["action"], event["actor"]) == (
        oid,
        "REQUEST",
        "operator-1",
    )
    assert event["voice_parameters"] == {
        "g1": {"influence_weight": 0.25, "sensitivity": 0.5},  # from its changed weight
        "g2": {"influence_weight": 0.5, "sensitivity": 0.5},
    }

    # pattern analysis on demand: the active model over the stored windows of a range
    analyse = """mutation($r: TimeRange!) { requestPatternAnalysis(timeRange: $r) {
        modelVersion emergentWindows patternCounts windows { windowStart pattern confidence } } }"""
    span = {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T08:00:20Z"}
    refused = _gql(url, analyse, Role.VIEWER, r=span)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    backwards = _gql(url, analyse, Role.ANALYST, r={"start": span["end"], "end": span["start"]})
    assert backwards["errors"][0]["extensions"]["field"] == "timeRange.start"
    too_long = _gql(url, analyse, Role.ANALYST, r={**span, "end": "2027-01-15T09:00:10Z"})
    assert too_long["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "status": 422,
        "field": "end",
    }
    report = _gql(url, analyse, Role.ANALYST, r=span)
    assert "errors" not in report, report
    found = report["data"]["requestPatternAnalysis"]
    assert found["modelVersion"] == ModelRegistry(settings.resolved_models_dir).active()
    assert [w["windowStart"] for w in found["windows"]] == [
        "2027-01-15T08:00:00+00:00",
        "2027-01-15T08:00:10+00:00",
    ]
    assert all(w["pattern"] in REGIMES and 0 < w["confidence"] <= 1 for w in found["windows"])
    assert sum(found["patternCounts"].values()) == 2

    # limits: too deep is refused before it runs
    hop = "interactions { sourceVoice { "
    deep = "{ collectiveDynamics { " + hop * 4 + "voiceId" + " } }" * 4 + " } }"  # depth 10
    assert "errors" not in _gql(url, "{ voices { interactions { targetVoice { voiceId } } } }")
    too_deep = _gql(url, deep)
    assert too_deep["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 8"

    # no credentials: the guard answers before GraphQL
    anonymous = httpx.post(f"{url}/graphql", json={"query": "{ voices { voiceId } }"})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"


def test_a_subscription_over_graphql_transport_ws(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False)
    service = service_factory(settings, worker=False)
    ws_url = service.url.replace("http://", "ws://") + "/graphql"
    with connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],
        additional_headers=api_client.auth(Role.VIEWER),
    ) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "connection_ack"}
        query = (
            'subscription { systemAlerts(severities: ["critical"]) '
            "{ alertId severity affected: subject recommendedActions } }"
        )
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        topic = Topics.from_settings(settings).alerts
        # subscribed once the process follows the topic (the subscription starts from now)
        wait_for(lambda: _tails(service.url, topic) == 1, 20, "the alerts tail")

        def alert(subject: str, severity: str) -> None:
            record = alert_record(
                "conflict", subject, T0, severity, "m", 0.9, 0.85, ["act"], "v1", T0
            )
            produce_avro(settings, topic, subject, ALERT, record)

        alert("a->b", "WARNING")
        alert("a->b", "CRITICAL")
        alert("c", "CRITICAL")
        got = [json.loads(ws.recv(timeout=20)) for _ in range(2)]
        assert sorted(
            (m["id"], m["type"], json.dumps(m["payload"], sort_keys=True)) for m in got
        ) == sorted(
            (
                "1",
                "next",
                json.dumps(
                    {
                        "data": {
                            "systemAlerts": {
                                "alertId": f"conflict:{subject}:{T0}",
                                "severity": "CRITICAL",
                                "affected": subject,
                                "recommendedActions": ["act"],
                            }
                        }
                    },
                    sort_keys=True,
                ),
            )
            for subject in ("a->b", "c")
        )
        ws.send(json.dumps({"id": "1", "type": "complete"}))


def _tails(url: str, topic: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "deltaomega_feed_tails" and sample.labels == {"topic": topic}:
                return sample.value
    return 0.0
