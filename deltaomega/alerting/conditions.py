"""Alert conditions: the decisions of alert dispatch, apart from Kafka and Faust.

A condition is one (rule, subject). Its first alert opens it and notifies; while it keeps
firing it is one condition (a reminder after ``reminder_minutes`` while nobody has
acknowledged it, a notification when it becomes more severe, escalation levels while it
stays unacknowledged); when it has not fired for ``resolve_after_windows`` closed windows it
resolves and the channels that heard of it hear of that. A silence holds its notifications;
quiet hours hold those of the severities they name until they end.

Each function takes the condition as it is (a plain dict, as the control plane's table
keeps it) and returns the new one, or None when nothing changed, and the notifications
to send.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass
from typing import Any

from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.routing import SEVERITY_RANK, Routing

OPEN, ACKNOWLEDGED, RESOLVED = "OPEN", "ACKNOWLEDGED", "RESOLVED"
#: the principal of what the control plane does on its own
SYSTEM = "system"
#: AlertCondition's fields (the rest of a condition is the dispatcher's bookkeeping)
STATUS_FIELDS = (
    "condition_id",
    "rule",
    "subject",
    "severity",
    "state",
    "first_window",
    "last_window",
    "windows",
    "alert_id",
    "message",
    "value",
    "threshold",
    "recommended_actions",
    "opened_at",
    "acknowledged_by",
    "resolved_by",
    "resolution",
    "silenced_by",
    "escalation_level",
    "notifications",
    "changed_at",
    "version",
)
Condition = dict[str, Any]
Outcome = tuple[Condition | None, list[Notification]]


def fingerprint(rule: str, subject: str) -> str:
    return f"{rule}:{subject}"


def condition_id(rule: str, subject: str, first_window: int) -> str:
    return f"{fingerprint(rule, subject)}@{first_window}"


def parse_condition_id(text: str) -> tuple[str, str, int]:
    """(rule, subject, first window) of ``rule:subject@first_window``; ValueError if not one."""
    head, at, window = text.rpartition("@")
    rule, colon, subject = head.partition(":")
    if not (at and colon and rule and subject and window.isdigit()):
        raise ValueError("not rule:subject@first_window")
    return rule, subject, int(window)


def status_record(condition: Condition) -> dict[str, Any]:
    return {k: condition[k] for k in STATUS_FIELDS}


@dataclass(frozen=True)
class Silence:
    silence_id: str
    rule: str | None
    subject: str | None
    severity: str | None
    until: int
    reason: str
    actor: str

    def matches(self, condition: Condition, now_ms: int) -> bool:
        return (
            now_ms < self.until
            and (self.rule is None or self.rule == condition["rule"])
            and (self.subject is None or fnmatch.fnmatchcase(condition["subject"], self.subject))
            and (self.severity is None or self.severity == condition["severity"])
        )

    @classmethod
    def of(cls, action: dict[str, Any]) -> Silence:
        return cls(
            action["silence_id"],
            action["rule"],
            action["subject"],
            action["severity"],
            int(action["until"]),
            action["reason"],
            action["actor"],
        )


def _silenced_by(condition: Condition, silences: list[Silence], now_ms: int) -> str:
    return next((s.silence_id for s in silences if s.matches(condition, now_ms)), "")


class Conditions:
    def __init__(self, routing: Routing, window_ms: int) -> None:
        self.routing = routing
        self.window_ms = window_ms

    # ------------------------------------------------------------------ notifications

    def _notify(
        self, condition: Condition, kind: str, channels: list[str], now_ms: int, level: int = 0
    ) -> list[Notification]:
        if not channels:
            condition["last_notified_at"] = now_ms  # console only: nothing to send, but seen
            return []
        condition["notifications"] += 1
        condition["last_notified_at"] = now_ms
        condition["notified_channels"] = sorted({*condition["notified_channels"], *channels})
        return [
            Notification(
                uuid.uuid4().hex,
                kind,
                status_record(condition),
                tuple(channels),
                now_ms,
                level,
            )
        ]

    def _first_notice(self, condition: Condition, now_ms: int) -> list[Notification]:
        """'opened' unless silenced or held by quiet hours (then it waits for a check)."""
        if condition["silenced_by"] or self.routing.held(condition["severity"], now_ms):
            return []
        condition["notified"] = True
        return self._notify(
            condition, "opened", self.routing.channels_for(condition["severity"]), now_ms
        )

    @staticmethod
    def _changed(condition: Condition, now_ms: int) -> None:
        condition["changed_at"] = now_ms
        condition["version"] += 1

    # ------------------------------------------------------------------ events

    def on_alert(
        self, current: Condition | None, alert: dict[str, Any], silences: list[Silence], now_ms: int
    ) -> Outcome:
        window = int(alert["window_start"])
        if current is not None and window <= current["last_window"]:
            return None, []  # a replayed or late alert of a window already counted
        if current is None or current["state"] == RESOLVED:
            condition: Condition = {
                "condition_id": condition_id(alert["rule"], alert["subject"], window),
                "rule": alert["rule"],
                "subject": alert["subject"],
                "severity": alert["severity"],
                "state": OPEN,
                "first_window": window,
                "last_window": window,
                "windows": 1,
                "alert_id": alert["alert_id"],
                "message": alert["message"],
                "value": float(alert["value"]),
                "threshold": float(alert["threshold"]),
                "recommended_actions": list(alert["recommended_actions"]),
                "opened_at": now_ms,
                "acknowledged_by": "",
                "resolved_by": "",
                "resolution": "",
                "silenced_by": "",
                "escalation_level": 0,
                "notifications": 0,
                "changed_at": now_ms,
                "version": 1,
                "notified": False,
                "notified_channels": [],
                "last_notified_at": 0,
                "severity_since": now_ms,
            }
            condition["silenced_by"] = _silenced_by(condition, silences, now_ms)
            return condition, self._first_notice(condition, now_ms)
        condition = dict(current)
        condition.update(
            last_window=window,
            windows=current["windows"] + 1,
            alert_id=alert["alert_id"],
            message=alert["message"],
            value=float(alert["value"]),
            threshold=float(alert["threshold"]),
            recommended_actions=list(alert["recommended_actions"]),
        )
        self._changed(condition, now_ms)
        if SEVERITY_RANK[alert["severity"]] <= SEVERITY_RANK[current["severity"]]:
            return condition, []
        # More severe: it needs attention again, at the new severity's route.
        condition.update(
            severity=alert["severity"],
            state=OPEN,
            acknowledged_by="",
            escalation_level=0,
            severity_since=now_ms,
        )
        condition["silenced_by"] = _silenced_by(condition, silences, now_ms)
        if not condition["notified"]:
            return condition, self._first_notice(condition, now_ms)
        if condition["silenced_by"] or self.routing.held(condition["severity"], now_ms):
            return condition, []
        channels = self.routing.channels_for(condition["severity"])
        return condition, self._notify(condition, "severity", channels, now_ms)

    def due(
        self,
        condition: Condition,
        silences: list[Silence],
        newest_window: int | None,
        now_ms: int,
    ) -> bool:
        """Whether :meth:`on_check` would change ``condition`` now: the same tests, without
        copying it or making notifications (the timer asks this of every open condition
        every second)."""
        if condition["state"] == RESOLVED:
            return False
        if _silenced_by(condition, silences, now_ms) != condition["silenced_by"]:
            return True
        quiet = self.routing.resolve_after_windows * self.window_ms
        if newest_window is not None and newest_window - condition["last_window"] >= quiet:
            return True
        severity = condition["severity"]
        if condition["silenced_by"] or self.routing.held(severity, now_ms):
            return False
        if not condition["notified"]:
            return bool(self.routing.channels_for(severity))
        if condition["state"] != OPEN:
            return False
        levels = self.routing.escalation(severity)
        level = condition["escalation_level"]
        if level < len(levels):
            if now_ms - condition["severity_since"] >= levels[level].after_minutes * 60_000:
                return bool(levels[level].channels)  # a level with no channel sends nothing
        # a reminder to no channel (console only) changes nothing
        return bool(self.routing.channels_for(severity)) and bool(
            now_ms - condition["last_notified_at"] >= self.routing.reminder_minutes * 60_000
        )

    def on_check(
        self,
        current: Condition,
        silences: list[Silence],
        newest_window: int | None,
        now_ms: int,
    ) -> Outcome:
        """What time alone does: clearing, a held notice, escalation, reminders."""
        if current["state"] == RESOLVED:
            return None, []
        condition = dict(current)
        changed = False
        silenced_by = _silenced_by(condition, silences, now_ms)
        if silenced_by != condition["silenced_by"]:
            condition["silenced_by"] = silenced_by
            changed = True
        quiet = self.routing.resolve_after_windows * self.window_ms
        if newest_window is not None and newest_window - condition["last_window"] >= quiet:
            condition.update(state=RESOLVED, resolved_by=SYSTEM, resolution="cleared")
            self._changed(condition, now_ms)
            return condition, self._resolution(condition, now_ms)
        sent: list[Notification] = []
        severity = condition["severity"]
        if silenced_by or self.routing.held(severity, now_ms):
            pass
        elif not condition["notified"]:
            sent = self._first_notice(condition, now_ms)
        elif condition["state"] == OPEN:
            levels = self.routing.escalation(severity)
            level = condition["escalation_level"]
            since = condition["severity_since"]
            reminder_ms = self.routing.reminder_minutes * 60_000
            if level < len(levels) and now_ms - since >= levels[level].after_minutes * 60_000:
                condition["escalation_level"] = level + 1
                sent = self._notify(
                    condition, "escalated", list(levels[level].channels), now_ms, level + 1
                )
            elif now_ms - condition["last_notified_at"] >= reminder_ms:
                sent = self._notify(
                    condition, "reminder", self.routing.channels_for(severity), now_ms
                )
        if sent or changed:
            self._changed(condition, now_ms)
            return condition, sent
        return None, []

    def _resolution(self, condition: Condition, now_ms: int) -> list[Notification]:
        """To the channels that heard of it (none if it was never notified)."""
        if not condition["notified"] or condition["silenced_by"]:
            return []
        return self._notify(condition, "resolved", list(condition["notified_channels"]), now_ms)

    def on_action(
        self, current: Condition | None, action: dict[str, Any], now_ms: int
    ) -> tuple[Condition | None, list[Notification], str]:
        """ACKNOWLEDGE or RESOLVE by a person: (new condition, notifications, '') or
        (None, [], why it was refused)."""
        wanted = action["condition_id"]
        if current is None or current["condition_id"] != wanted:
            return None, [], f"no condition {wanted} (it may have resolved and reopened)"
        if current["state"] == RESOLVED:
            return None, [], f"{wanted} is resolved already"
        condition = dict(current)
        if action["action"] == "ACKNOWLEDGE":
            if current["state"] == ACKNOWLEDGED:
                return None, [], f"{wanted} is acknowledged already"
            condition.update(state=ACKNOWLEDGED, acknowledged_by=action["actor"])
            self._changed(condition, now_ms)
            sent: list[Notification] = []
            if condition["notified"] and not condition["silenced_by"]:
                sent = self._notify(
                    condition, "acknowledged", list(condition["notified_channels"]), now_ms
                )
            return condition, sent, ""
        condition.update(state=RESOLVED, resolved_by=action["actor"], resolution="manual")
        self._changed(condition, now_ms)
        return condition, self._resolution(condition, now_ms), ""
