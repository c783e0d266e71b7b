"""Alert delivery end to end through the broker, to real receivers on loopback: a persisting
critical condition notifies each channel once (not once per window), a flaky receiver gets
it on the third attempt, a silent one holds up no other channel and is given up on after
its attempts, an unacknowledged condition escalates and an acknowledged one does not, a
silenced one is sent nowhere, and the resolution reaches every channel that heard of it.
Webhooks verify with the documented signature, PagerDuty events against its schema, and the
email arrives over STARTTLS with the recommended actions in both parts."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from confluent_kafka import Producer

from deltaomega.alerting import signature
from deltaomega.cli import main
from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.schemas import AvroCodec
from deltaomega.schemas.records import ALERT, PATTERN
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from deltaomega.topics import Topics
from tests import api_client
from tests.alert_tools import pattern_record
from tests.api_client import assert_invalid
from tests.conftest import RunningService, wait_for
from tests.receivers import HttpReceiver, MailReceiver, http_receiver, mail_receiver

W = 10_000
SECRET = "webhook-secret-0123456789"
ROUTING_KEY = "r" * 32
#: Long enough for c->d's acknowledgement to go round (notice → ClickHouse → API → control
#: plane) on a busy machine before c->d would escalate.
ESCALATE_AFTER_S = 25
#: PagerDuty Events API v2, as its documentation describes an event.
PAGERDUTY_EVENT = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 32, "maxLength": 32},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "maxLength": 1024},
                "source": {"type": "string"},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {"href": {"type": "string"}, "text": {"type": "string"}},
            },
        },
    },
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailReceiver]:
    yield from mail_receiver(tmp_path)


def routing_file(path: Path, http: str, mail: MailReceiver) -> Path:
    hook = {"type": "webhook", "secret": SECRET}
    channels = {
        "hook": {**hook, "url": f"{http}/hook"},
        "flaky": {**hook, "url": f"{http}/flaky"},
        "silent": {**hook, "url": f"{http}/silent", "timeout_seconds": 3},
        "leads": {**hook, "url": f"{http}/leads"},
        "chat": {"type": "slack", "url": f"{http}/slack"},
        "pager": {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{http}/pagerduty"},
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": mail.port,
            "starttls": True,
            "ca_file": str(mail.cert),
            "sender": "deltaomega@example.com",
            "to": ["oncall@example.com"],
        },
    }
    routing = {
        "channels": channels,
        "routes": {
            "CRITICAL": {
                "channels": ["hook", "flaky", "silent", "chat", "pager", "mail"],
                "escalation": [{"after_minutes": ESCALATE_AFTER_S / 60, "channels": ["leads"]}],
            },
            "WARNING": {"channels": ["mail", "chat"]},
            "INFO": {"channels": []},
        },
        "resolve_after_windows": 2,
        "console_url": "http://console.example/console",
    }
    path.write_text(json.dumps(routing))  # JSON is YAML
    return path


class Publisher:
    """Alerts and window ticks onto the broker as the worker puts them there (murmur2)."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics.from_settings(settings)
        self.codec = AvroCodec.from_settings(settings)
        self.producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
        )

    def alert(self, rule: str, subject: str, window: int, severity: str = "CRITICAL") -> None:
        now = int(time.time() * 1000)
        record = alert_record(
            rule,
            subject,
            window,
            severity,
            f"{rule} on {subject}",
            0.9,
            0.8,
            [f"separate {subject}", "review the coupling"],
            "v1",
            now,
        )
        value = self.codec.encode(ALERT, record)
        self.producer.produce(self.topics.alerts, value, subject.encode())
        assert self.producer.flush(10) == 0

    def tick(self, window: int) -> None:
        value = self.codec.encode(PATTERN, pattern_record(window))
        self.producer.produce(self.topics.patterns, value, b"system")
        assert self.producer.flush(10) == 0


def notices(requests: list[Any]) -> Counter[tuple[str, str]]:
    """(condition, kind) of each distinct webhook notification received."""
    seen = {r.headers["X-DeltaOmega-Delivery"]: r.json() for r in requests}
    return Counter((n["condition"]["subject"], n["kind"]) for n in seen.values())


def test_notifications_reach_every_channel_once_escalate_and_resolve(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    receiver: HttpReceiver,
    mailbox: MailReceiver,
    tmp_path: Path,
) -> None:
    routing = routing_file(tmp_path / "routing.yaml", receiver.url, mailbox)
    settings = settings_factory(
        models_enabled=False,
        alert_routing_file=routing,
        alert_delivery_attempts=3,
        alert_delivery_backoff_seconds=0.2,
    )
    service = service_factory(settings, control=True)
    url = service.url
    publish = Publisher(settings)
    w0 = (int(time.time() * 1000) - 120_000) // W * W

    def conditions(**params: Any) -> list[dict[str, Any]]:
        response = api_client.get(f"{url}/api/v1/alerts/conditions", params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["conditions"])

    def by_subject(subject: str) -> dict[str, Any]:
        (found,) = [c for c in conditions() if c["subject"] == subject]
        return found

    # c->d opens first and is acknowledged at once: it must never escalate.
    publish.alert("conflict", "c->d", w0)
    wait_for(lambda: len(receiver.on("/hook")) == 1, 30, "c->d's notice")
    noticed = time.monotonic()
    wait_for(lambda: len(conditions()) == 1, 30, "c->d in ClickHouse")
    listed = by_subject("c->d")
    cd = listed["condition_id"]
    assert cd == f"conflict:c->d@{w0}"
    # times are stored as times (milliseconds), not read as seconds
    assert [
        int(datetime.fromisoformat(listed[k]).timestamp() * 1000)
        for k in ("first_window", "last_window")
    ] == [w0, w0]
    assert abs(datetime.fromisoformat(listed["opened_at"]).timestamp() - time.time()) < 60
    ack = api_client.post(
        f"{url}/api/v1/alerts/conditions/{cd}/acknowledge",
        json={"reason": "on it"},
        headers=api_client.auth(Role.OPERATOR, subject="op-1"),
    )
    assert ack.status_code == 202, ack.text
    # (otherwise an escalation of c->d below would be the machine's slowness, not a bug)
    assert time.monotonic() - noticed < ESCALATE_AFTER_S - 5, "c->d acknowledged too late"
    viewer = api_client.post(
        f"{url}/api/v1/alerts/conditions/{cd}/acknowledge",
        json={},
        headers=api_client.auth(Role.VIEWER),
    )
    assert viewer.status_code == 403
    wait_for(lambda: by_subject("c->d")["state"] == "ACKNOWLEDGED", 30, "the acknowledgement")
    again = api_client.post(
        f"{url}/api/v1/alerts/conditions/{cd}/acknowledge",
        json={},
        headers=api_client.auth(Role.OPERATOR),
    )
    assert again.status_code == 409

    # a->b persists for five windows: one notice per channel, not five.
    for i in range(5):
        publish.alert("conflict", "a->b", w0 + i * W)
    # a silence first, then the condition it covers
    silence = api_client.post(
        f"{url}/api/v1/alerts/silences",
        json={"rule": "emergence", "duration_minutes": 30, "reason": "known drill"},
        headers=api_client.auth(Role.OPERATOR),
    )
    assert silence.status_code == 202, silence.text
    sid = silence.json()["target"]
    wait_for(
        lambda: (
            [
                s["silence_id"]
                for s in api_client.get(f"{url}/api/v1/alerts/silences").json()["silences"]
            ]
            == [sid]
        ),
        30,
        "the silence",
    )
    publish.alert("emergence", "system", w0 + 4 * W)

    # the escalation of a->b comes after c->d's would have: c->d had none
    wait_for(lambda: len(receiver.on("/leads")) == 1, ESCALATE_AFTER_S + 30, "a->b's escalation")
    assert notices(receiver.on("/leads")) == Counter({("a->b", "escalated"): 1})
    wait_for(lambda: by_subject("a->b")["escalation_level"] == 1, 30, "a->b escalated")
    assert by_subject("c->d")["escalation_level"] == 0
    quiet = by_subject("system")
    assert (quiet["silenced_by"], quiet["notifications"]) == (sid, 0)
    assert quiet["windows"] == 1
    persisting = by_subject("a->b")
    assert (persisting["windows"], persisting["state"]) == (5, "OPEN")

    # two windows without them: every condition resolves, and says so where it was heard
    for i in range(5, 7):
        publish.tick(w0 + i * W)
    wait_for(
        lambda: {c["state"] for c in conditions()} == {"RESOLVED"} and len(conditions()) == 3,
        30,
        "all three resolved",
    )
    opened_and_resolved = Counter(
        {
            ("c->d", "opened"): 1,
            ("a->b", "opened"): 1,
            ("c->d", "resolved"): 1,
            ("a->b", "resolved"): 1,
        }
    )
    for path in ("/hook", "/flaky"):
        wait_for(lambda p=path: notices(receiver.on(p)) == opened_and_resolved, 30, path)
    # (each channel's delivery is a task of its own: /leads may hear after /flaky's retries)
    escalated_and_resolved = Counter({("a->b", "escalated"): 1, ("a->b", "resolved"): 1})
    wait_for(lambda: notices(receiver.on("/leads")) == escalated_and_resolved, 30, "/leads")

    # the flaky receiver: each notification on its third attempt (and none a fourth time)
    def flaky() -> list[int]:
        tries = Counter(r.headers["X-DeltaOmega-Delivery"] for r in receiver.on("/flaky"))
        return sorted(tries.values())

    wait_for(lambda: flaky() == [3, 3, 3, 3], 30, "flaky's third attempts")
    for request in receiver.on("/hook") + receiver.on("/flaky") + receiver.on("/leads"):
        header = request.headers[signature.HEADER]
        assert signature.verify(SECRET, header, request.body, now=time.time())
        assert not signature.verify(SECRET, header, request.body + b" ", now=time.time())

    # Slack: blocks with severity, subject, message, actions and a console link
    wait_for(lambda: len(receiver.on("/slack")) >= 4, 30, "four Slack messages")
    slack = [r.json() for r in receiver.on("/slack")]
    assert Counter(s["text"] for s in slack) == Counter(
        {
            "[CRITICAL] conflict on c->d": 1,
            "[CRITICAL] conflict on a->b": 1,
            "[CRITICAL] conflict on c->d (resolved)": 1,
            "[CRITICAL] conflict on a->b (resolved)": 1,
        }
    )
    first = next(s for s in slack if s["text"] == "[CRITICAL] conflict on a->b")
    blocks = {b["type"]: b for b in first["blocks"]}
    assert (
        "*Recommended actions*\n• separate a->b\n• review the coupling"
        == first["blocks"][3]["text"]["text"]
    )
    assert blocks["actions"]["elements"][0]["url"] == (
        f"http://console.example/console/alerts?condition=conflict%3Aa-%3Eb%40{w0}"
    )

    # PagerDuty: trigger, acknowledge, resolve on one dedup key per condition, all valid
    wait_for(lambda: len(receiver.on("/pagerduty")) >= 5, 30, "five PagerDuty events")
    events = [r.json() for r in receiver.on("/pagerduty")]
    validator = jsonschema_rs.validator_for(PAGERDUTY_EVENT)
    for event in events:
        validator.validate(event)
    assert Counter((e["dedup_key"], e["event_action"]) for e in events) == Counter(
        {
            (cd, "trigger"): 1,
            (cd, "acknowledge"): 1,
            (cd, "resolve"): 1,
            (f"conflict:a->b@{w0}", "trigger"): 1,
            (f"conflict:a->b@{w0}", "resolve"): 1,
        }
    )
    trigger = next(e for e in events if e["event_action"] == "trigger")
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["routing_key"] == ROUTING_KEY

    # email over STARTTLS, a text and an HTML part, both with the recommended actions
    wait_for(lambda: len(mailbox.messages) == 4, 30, "four emails")
    assert mailbox.tls == [True] * 4
    subjects = Counter(m["Subject"] for m in mailbox.messages)
    assert subjects == Counter(s["text"] for s in slack)
    mail = next(m for m in mailbox.messages if m["Subject"] == "[CRITICAL] conflict on a->b")
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert "  - separate a->b\n  - review the coupling" in text.get_content().replace("\r\n", "\n")
    assert "<li>separate a-&gt;b</li><li>review the coupling</li>" in html.get_content()
    assert mail["To"] == "oncall@example.com"

    # every attempt recorded: flaky 503, 503, 200; silent three unanswered, then given up
    db = settings.clickhouse_database
    ab = f"conflict:a->b@{w0}"

    def attempts(channel: str) -> list[tuple[str, int, str, int | None]]:
        rows = clickhouse.rows(
            f"SELECT kind, attempt, outcome, status_code FROM {db}.alert_deliveries FINAL "
            "WHERE condition_id = {c:String} AND channel = {ch:String} ORDER BY kind, attempt",
            c=ab,
            ch=channel,
        )
        return [(r["kind"], r["attempt"], r["outcome"], r["status_code"]) for r in rows]

    wait_for(lambda: len(attempts("silent")) == 6, 60, "the silent channel given up on")
    # The silent one held up nothing: in the log of c->d's deliveries (one partition, in
    # order), every other channel had delivered its notice, flaky's third attempt included,
    # before the silent channel's first attempt had even ended.
    log = clickhouse.rows(
        f"SELECT channel, outcome FROM {db}.alert_deliveries FINAL "
        "WHERE condition_id = {c:String} AND kind = 'opened' ORDER BY kafka_offset",
        c=cd,
    )
    first_silent = log.index({"channel": "silent", "outcome": "RETRYING"})
    delivered = {r["channel"] for r in log[:first_silent] if r["outcome"] == "DELIVERED"}
    assert delivered == {"hook", "flaky", "chat", "pager", "mail"}
    assert attempts("flaky") == [
        (kind, attempt, outcome, status)
        for kind in ("opened", "resolved")
        for attempt, outcome, status in (
            (1, "RETRYING", 503),
            (2, "RETRYING", 503),
            (3, "DELIVERED", 200),
        )
    ]
    assert attempts("silent") == [
        (kind, attempt, outcome, None)
        for kind in ("opened", "resolved")
        for attempt, outcome in ((1, "RETRYING"), (2, "RETRYING"), (3, "FAILED"))
    ]
    assert attempts("pager") == [("opened", 1, "DELIVERED", 202), ("resolved", 1, "DELIVERED", 202)]
    deliveries = api_client.get(f"{url}/api/v1/alerts/conditions/{ab}/deliveries").json()
    silent = [d for d in deliveries["deliveries"] if d["channel"] == "silent"]
    assert {d["error"] for d in silent} == {"no answer within 3 s"}

    # every change of every condition is on the feed, in order per condition
    total = sum(c["version"] for c in conditions())
    start = ",".join(f"{p}:-1" for p in range(settings.partitions))
    feed = api_client.read_events(
        f"{url}/api/v1/stream/alert-conditions", total, params={"cursor": start}
    )
    changes = [json.loads(e["data"]) for e in feed]
    assert {e["event"] for e in feed} == {"alert-condition"}
    of_cd = [(c["state"], c["version"]) for c in changes if c["subject"] == "c->d"]
    assert [state for state, _ in of_cd] == ["OPEN", "ACKNOWLEDGED", "RESOLVED"]
    assert [v for _, v in of_cd] == [1, 2, 3]
    of_ab = [c for c in changes if c["subject"] == "a->b"]
    assert [c["version"] for c in of_ab] == list(range(1, len(of_ab) + 1))
    assert of_ab[-1]["state"] == "RESOLVED" and of_ab[-1]["resolution"] == "cleared"

    # the people's actions are audited
    wait_for(
        lambda: (
            {
                r["action"]
                for r in clickhouse.rows(
                    f"SELECT action FROM {db}.audit_log FINAL WHERE action LIKE 'alert.%'"
                )
            }
            == {
                "alert.acknowledge.request",
                "alert.acknowledge",
                "alert.silence.request",
                "alert.silence",
            }
        ),
        30,
        "the audit rows",
    )


def test_alerts_test_sends_one_signed_notification_and_fails_clearly(
    receiver: HttpReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = MailReceiver(1, tmp_path / "none.crt")
    path = routing_file(tmp_path / "routing.yaml", receiver.url, mail)
    assert main(["alerts", "test", "--file", str(path), "--channel", "hook"]) == 0
    assert capsys.readouterr().out == "hook: delivered (status 200)\n"
    (request,) = receiver.on("/hook")
    assert request.json()["kind"] == "test"
    assert signature.verify(SECRET, request.headers[signature.HEADER], request.body, time.time())
    assert main(["alerts", "test", "--file", str(path), "--channel", "nowhere"]) == 1
    assert "no channel 'nowhere'" in capsys.readouterr().err
    assert main(["alerts", "test", "--file", str(path), "--channel", "mail"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deltaomega: error: mail: not delivered: ") and err.count("\n") == 1


def test_a_pipeline_alert_goes_through_the_same_routing_and_clears_by_the_clock(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        json.dumps(
            {
                "channels": {"chat": {"type": "slack", "url": f"{receiver.url}/slack"}},
                "routes": {"CRITICAL": {"channels": ["chat"]}, "WARNING": {"channels": ["chat"]}},
                "resolve_after_windows": 2,
            }
        )
    )
    settings = settings_factory(
        models_enabled=False, alert_routing_file=routing, window_seconds=2, grace_seconds=1
    )
    service_factory(settings, control=True)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(Topics.from_settings(settings).voice_events, b"not avro", b"v1")
    assert producer.flush(10) == 0
    # every record of the window dead-lettered: a critical error rate, raised by the worker
    # on voice.alerts, one notice, and its resolution once two windows pass without it
    wait_for(lambda: len(receiver.on("/slack")) == 2, 60, "the notice and its resolution")
    texts = [r.json()["text"] for r in receiver.on("/slack")]
    assert texts == [
        "[CRITICAL] pipeline_error_rate on pipeline",
        "[CRITICAL] pipeline_error_rate on pipeline (resolved)",
    ]
    message = receiver.on("/slack")[0].json()["blocks"][2]["text"]["text"]
    assert message == "1 of 1 records dead-lettered in the last window (100.0%)"


def test_lifecycle_requests_are_checked_before_anything_is_sent(
    settings: Settings, service_factory: Callable[..., RunningService]
) -> None:
    url = service_factory(settings, worker=False).url
    operator = api_client.auth(Role.OPERATOR)

    def post(path: str, body: dict[str, Any], headers: dict[str, str] = operator) -> Any:
        return api_client.post(f"{url}/api/v1/alerts{path}", json=body, headers=headers)

    soon = "2030-01-01T00:00:00Z"
    for body, field in (
        ({"rule": "conflict", "reason": "drill"}, "until"),
        ({"rule": "conflict", "reason": "drill", "until": soon, "duration_minutes": 5}, "until"),
        ({"rule": "conflict", "reason": "drill", "until": "2020-01-01T00:00:00Z"}, "until"),
        ({"rule": "conflict", "reason": "drill", "until": soon}, "until"),  # over 30 days
        ({"reason": "drill", "duration_minutes": 5}, "rule"),
        ({"severity": "URGENT", "reason": "drill", "duration_minutes": 5}, "severity"),
        ({"rule": "conflict", "reason": "x", "duration_minutes": 5}, "reason"),
        ({"rule": "conflict", "reason": "drill", "duration_minutes": 0}, "duration_minutes"),
    ):
        assert_invalid(post("/silences", body), field)
    viewer = post(
        "/silences",
        {"rule": "c", "reason": "drill", "duration_minutes": 5},
        api_client.auth(Role.VIEWER),
    )
    assert viewer.status_code == 403
    assert_invalid(post("/conditions/nope/acknowledge", {}), "condition_id")
    missing = post("/conditions/conflict:x->y@5/acknowledge", {})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert_invalid(post("/conditions/conflict:x->y@5/resolve", {}), "reason")
    gone = httpx.delete(f"{url}/api/v1/alerts/silences/{'0' * 32}", headers=operator)
    assert gone.status_code == 404
    listed = api_client.get(f"{url}/api/v1/alerts/conditions", params={"state": "CLOSED"})
    assert_invalid(listed, "state")
