"""Alert conditions decided without Kafka: grouping, severity changes, clearing, escalation,
reminders, silences, quiet hours, people's actions; the routing file's checks; the webhook
signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltaomega.alerting import signature
from deltaomega.alerting.conditions import Conditions, Silence, parse_condition_id
from deltaomega.alerting.routing import EXAMPLE, Routing, load_routing
from deltaomega.errors import ConfigurationError

W = 10_000
T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
MINUTE = 60_000
HOOK = {"type": "webhook", "url": "http://127.0.0.1:1/h", "secret": "s" * 16}
ROUTING = Routing.model_validate(
    {
        "channels": {
            "hook": HOOK,
            "chat": {"type": "slack", "url": "http://127.0.0.1:1/s"},
            "leads": {**HOOK, "url": "http://127.0.0.1:1/leads"},
        },
        "routes": {
            "CRITICAL": {
                "channels": ["hook", "chat"],
                "escalation": [
                    {"after_minutes": 5, "channels": ["leads"]},
                    {"after_minutes": 15, "channels": ["chat"]},
                ],
            },
            "WARNING": {"channels": ["chat"]},
            "INFO": {"channels": []},
        },
        "reminder_minutes": 30,
        "resolve_after_windows": 3,
    }
)


def alert(window: int, severity: str = "CRITICAL", subject: str = "a->b") -> dict[str, Any]:
    return {
        "alert_id": f"conflict:{subject}:{window}",
        "window_start": window,
        "rule": "conflict",
        "severity": severity,
        "subject": subject,
        "message": "conflict likely",
        "value": 0.9,
        "threshold": 0.8,
        "recommended_actions": ["lower the coupling"],
    }


def kinds(sent: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(n.kind, n.channels) for n in sent]


def test_a_persisting_condition_notifies_once_then_resolves_when_it_clears() -> None:
    logic = Conditions(ROUTING, W)
    opened, sent = logic.on_alert(None, alert(T0), [], T0 + W)
    assert opened is not None
    assert opened["condition_id"] == f"conflict:a->b@{T0}"
    assert kinds(sent) == [("opened", ("hook", "chat"))]
    assert sent[0].condition["state"] == "OPEN" and sent[0].condition["notifications"] == 1
    condition = opened
    for i in range(1, 6):  # five more windows of the same condition: no notification
        updated, sent = logic.on_alert(condition, alert(T0 + i * W), [], T0 + (i + 1) * W)
        assert updated is not None and sent == []
        condition = updated
    assert (condition["windows"], condition["last_window"], condition["version"]) == (
        6,
        T0 + 5 * W,
        6,
    )
    # a replay of a counted window changes nothing
    assert logic.on_alert(condition, alert(T0 + 3 * W), [], T0 + 7 * W) == (None, [])
    # two windows without it: still open; the third closes it, and both channels hear of it
    assert logic.on_check(condition, [], T0 + 7 * W, T0 + 8 * W) == (None, [])
    resolved, sent = logic.on_check(condition, [], T0 + 8 * W, T0 + 9 * W)
    assert resolved is not None
    assert (resolved["state"], resolved["resolved_by"], resolved["resolution"]) == (
        "RESOLVED",
        "system",
        "cleared",
    )
    assert kinds(sent) == [("resolved", ("chat", "hook"))]
    # it fires again: a new condition, notified again
    again, sent = logic.on_alert(resolved, alert(T0 + 9 * W), [], T0 + 10 * W)
    assert again is not None and again["condition_id"] == f"conflict:a->b@{T0 + 9 * W}"
    assert kinds(sent) == [("opened", ("hook", "chat"))]


def test_becoming_more_severe_notifies_the_new_route_and_less_severe_does_not() -> None:
    logic = Conditions(ROUTING, W)
    warning, sent = logic.on_alert(None, alert(T0, "WARNING"), [], T0)
    assert warning is not None and kinds(sent) == [("opened", ("chat",))]
    critical, sent = logic.on_alert(warning, alert(T0 + W, "CRITICAL"), [], T0 + W)
    assert critical is not None and kinds(sent) == [("severity", ("hook", "chat"))]
    assert critical["severity"] == "CRITICAL"
    calmer, sent = logic.on_alert(critical, alert(T0 + 2 * W, "WARNING"), [], T0 + 2 * W)
    assert calmer is not None and sent == [] and calmer["severity"] == "CRITICAL"


def test_unacknowledged_critical_escalates_level_by_level_and_acknowledged_does_not() -> None:
    logic = Conditions(ROUTING, W)
    opened, _ = logic.on_alert(None, alert(T0), [], T0)
    assert opened is not None
    assert logic.on_check(opened, [], None, T0 + 5 * MINUTE - 1) == (None, [])
    first, sent = logic.on_check(opened, [], None, T0 + 5 * MINUTE)
    assert first is not None and kinds(sent) == [("escalated", ("leads",))]
    assert (sent[0].level, first["escalation_level"]) == (1, 1)
    assert logic.on_check(first, [], None, T0 + 10 * MINUTE) == (None, [])
    second, sent = logic.on_check(first, [], None, T0 + 15 * MINUTE)
    assert second is not None and kinds(sent) == [("escalated", ("chat",))]
    # no level left: the reminder comes 30 minutes after the last notification
    assert logic.on_check(second, [], None, T0 + 44 * MINUTE) == (None, [])
    reminded, sent = logic.on_check(second, [], None, T0 + 45 * MINUTE)
    assert reminded is not None and kinds(sent) == [("reminder", ("hook", "chat"))]

    acknowledged, sent, refused = logic.on_action(
        opened,
        {"action": "ACKNOWLEDGE", "condition_id": opened["condition_id"], "actor": "op-1"},
        T0 + MINUTE,
    )
    assert refused == "" and acknowledged is not None
    assert (acknowledged["state"], acknowledged["acknowledged_by"]) == ("ACKNOWLEDGED", "op-1")
    assert kinds(sent) == [("acknowledged", ("chat", "hook"))]
    assert logic.on_check(acknowledged, [], None, T0 + 60 * MINUTE) == (None, [])


def test_people_s_actions_and_their_refusals() -> None:
    logic = Conditions(ROUTING, W)
    opened, _ = logic.on_alert(None, alert(T0), [], T0)
    assert opened is not None
    cid = opened["condition_id"]
    resolve = {"action": "RESOLVE", "condition_id": cid, "actor": "op-2"}
    resolved, sent, refused = logic.on_action(opened, resolve, T0 + MINUTE)
    assert refused == "" and resolved is not None
    assert (resolved["state"], resolved["resolution"]) == ("RESOLVED", "manual")
    assert kinds(sent) == [("resolved", ("chat", "hook"))]
    assert logic.on_action(resolved, resolve, T0 + MINUTE)[2] == f"{cid} is resolved already"
    stale = {**resolve, "condition_id": "conflict:a->b@1"}
    assert logic.on_action(opened, stale, T0)[2].startswith("no condition conflict:a->b@1")
    assert parse_condition_id(cid) == ("conflict", "a->b", T0)
    with pytest.raises(ValueError, match="rule:subject@first_window"):
        parse_condition_id("conflict-a->b")


def test_a_silence_holds_every_notification_and_lifting_it_lets_the_notice_out() -> None:
    logic = Conditions(ROUTING, W)
    hush = Silence("s1", "conflict", "a->*", None, T0 + 10 * MINUTE, "maintenance", "op-1")
    other = Silence("s2", "emergence", None, None, T0 + 10 * MINUTE, "x", "op-1")
    opened, sent = logic.on_alert(None, alert(T0), [hush, other], T0)
    assert opened is not None and sent == [] and opened["silenced_by"] == "s1"
    assert logic.on_check(opened, [hush], None, T0 + 6 * MINUTE) == (None, [])
    # the silence ends while it is still open: the first notice goes out then
    lifted, sent = logic.on_check(opened, [hush], None, T0 + 10 * MINUTE)
    assert lifted is not None and lifted["silenced_by"] == ""
    assert kinds(sent) == [("opened", ("hook", "chat"))]
    # silenced through its whole life: resolving it tells no one
    quiet, _ = logic.on_alert(None, alert(T0, subject="a->c"), [hush], T0)
    assert quiet is not None
    resolved, sent = logic.on_check(quiet, [hush], T0 + 3 * W, T0 + MINUTE)
    assert resolved is not None and resolved["state"] == "RESOLVED" and sent == []


def test_quiet_hours_hold_warnings_until_they_end_but_never_critical() -> None:
    routing = ROUTING.model_copy(
        update={
            "quiet_hours": Routing.model_validate(
                {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC"}}
            ).quiet_hours
        }
    )
    logic = Conditions(routing, W)
    night = T0 - 3 * 3_600_000  # 05:00 UTC
    held, sent = logic.on_alert(None, alert(night, "WARNING"), [], night)
    assert held is not None and sent == []
    critical, sent = logic.on_alert(None, alert(night, "CRITICAL", "x->y"), [], night)
    assert kinds(sent) == [("opened", ("hook", "chat"))]
    assert logic.on_check(held, [], None, T0 - 3_600_000 - 1) == (None, [])  # 06:59:59.999
    morning, sent = logic.on_check(held, [], None, T0 - 3_600_000)  # 07:00
    assert morning is not None and kinds(sent) == [("opened", ("chat",))]


def test_routing_files_are_checked_with_errors_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_routing(None).channels_for("CRITICAL") == []
    for name in ("WEBHOOK_SECRET", "SLACK_WEBHOOK_URL", "SMTP_PASSWORD", "PAGERDUTY_ROUTING_KEY"):
        monkeypatch.setenv(
            f"DELTAOMEGA_{name}", "x" * 32 if name != "SLACK_WEBHOOK_URL" else "https://s"
        )
    example = load_routing(EXAMPLE)
    assert example.channels_for("CRITICAL") == sorted(example.channels)
    assert example.channels_for("WARNING") == ["oncall-email", "team-slack"]
    assert example.channels_for("INFO") == []
    assert [level.channels for level in example.escalation("CRITICAL")] == [["leads-email"]]

    def refused(text: str) -> str:
        path = tmp_path / "routing.yaml"
        path.write_text(text)
        with pytest.raises(ConfigurationError) as caught:
            load_routing(path)
        return str(caught.value).removeprefix(f"alert routing file {path}: ")

    assert refused("routes: {WARNING: {channels: [nowhere]}}") == (
        "routes.WARNING.channels: no channel named 'nowhere'"
    )
    monkeypatch.delenv("DELTAOMEGA_WEBHOOK_SECRET")
    assert refused(
        "channels: {h: {type: webhook, url: 'http://x', secret: '${DELTAOMEGA_WEBHOOK_SECRET}'}}"
    ) == ("channels.h.secret: the environment has no DELTAOMEGA_WEBHOOK_SECRET")
    assert refused("channels: {h: {type: webhook, url: 'http://x', secret: short}}").startswith(
        "channels.h.webhook.secret: Value error, the signing secret needs 16 characters"
    )
    assert refused("channels: {h: {type: fax}}").startswith("channels.h: Input tag 'fax'")
    assert refused(
        "routes: {CRITICAL: {escalation: [{after_minutes: 0, channels: []}]}}"
    ).startswith("routes.CRITICAL.escalation.0.after_minutes")
    assert refused(
        "quiet_hours: {start: '22:00', end: '07:00', timezone: Mars/Olympus}"
    ).startswith("quiet_hours.timezone: Value error, unknown time zone 'Mars/Olympus'")
    assert refused("channels: [").startswith("not YAML")


def test_webhook_signature_verifies_and_refuses_tampering_and_replays() -> None:
    body = b'{"kind":"opened"}'
    header = signature.sign("k" * 16, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=")
    assert signature.verify("k" * 16, header, body, now=1_800_000_100)
    assert not signature.verify("k" * 16, header, body + b" ", now=1_800_000_100)
    assert not signature.verify("x" * 16, header, body, now=1_800_000_100)
    assert not signature.verify("k" * 16, header, body, now=1_800_000_301)  # a replay
    assert not signature.verify("k" * 16, "v1=abc", body, now=1_800_000_000)


@settings(max_examples=400, deadline=None)
@given(
    severity=st.sampled_from(["INFO", "WARNING", "CRITICAL"]),
    acknowledged=st.booleans(),
    resolved=st.booleans(),
    notified=st.booleans(),
    silenced=st.sampled_from(["", "s1", "gone"]),
    level=st.integers(0, 2),
    quiet=st.booleans(),
    minutes_since=st.integers(0, 40),
    minutes_since_notice=st.integers(0, 40),
    windows_since=st.integers(-1, 4),
    silence_until=st.integers(-5, 5),
)
def test_due_says_exactly_when_a_check_would_change_the_condition(
    severity: str,
    acknowledged: bool,
    resolved: bool,
    notified: bool,
    silenced: str,
    level: int,
    quiet: bool,
    minutes_since: int,
    minutes_since_notice: int,
    windows_since: int,
    silence_until: int,
) -> None:
    routing = ROUTING
    if quiet:
        routing = ROUTING.model_copy(
            update={
                "quiet_hours": Routing.model_validate(
                    {"quiet_hours": {"start": "00:00", "end": "23:59", "timezone": "UTC"}}
                ).quiet_hours
            }
        )
    logic = Conditions(routing, W)
    opened, _ = logic.on_alert(None, alert(T0, severity), [], T0)
    assert opened is not None
    now = T0 + 60 * MINUTE
    condition = dict(opened)
    condition.update(
        state="RESOLVED" if resolved else "ACKNOWLEDGED" if acknowledged else "OPEN",
        notified=notified,
        silenced_by=silenced,
        escalation_level=level,
        severity_since=now - minutes_since * MINUTE,
        last_notified_at=now - minutes_since_notice * MINUTE,
    )
    silences = [
        Silence("s1", None, "a->b", None, now + silence_until * MINUTE, "maintenance", "op")
    ]
    newest = None if windows_since < 0 else T0 + windows_since * W
    changed, _ = logic.on_check(condition, silences, newest, now)
    assert logic.due(condition, silences, newest, now) == (changed is not None)
