"""A notification: what happened to an alert condition, rendered for each kind of channel."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

#: opened: the first alert of a condition; severity: it became more severe; reminder: still
#: open and unacknowledged; escalated: not acknowledged in time (to the next level);
#: acknowledged, resolved: its end of life (resolved: cleared or by a person); test: from
#: ``deltaomega alerts test``.
KINDS = ("opened", "severity", "reminder", "escalated", "acknowledged", "resolved", "test")
_ICONS = {"CRITICAL": "🔴", "WARNING": "🟠", "INFO": "🔵"}


@dataclass(frozen=True)
class Notification:
    notification_id: str
    kind: str
    #: the AlertCondition record as it is after the change
    condition: dict[str, Any]
    channels: tuple[str, ...]
    created_at: int
    #: the escalation level notified (kind "escalated")
    level: int = 0

    @property
    def severity(self) -> str:
        return str(self.condition["severity"])

    def headline(self) -> str:
        c = self.condition
        what = {
            "opened": "",
            "severity": " (now " + c["severity"] + ")",
            "reminder": " (still open)",
            "escalated": f" (escalated, level {self.level})",
            "acknowledged": f" (acknowledged by {c['acknowledged_by']})",
            "resolved": " (resolved)",
            "test": " (test)",
        }[self.kind]
        return f"[{c['severity']}] {c['rule']} on {c['subject']}{what}"

    def link(self, console_url: str) -> str:
        return f"{console_url.rstrip('/')}/alerts?condition={quote(self.condition['condition_id'])}"

    def payload(self, console_url: str) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {
            "notification_id": self.notification_id,
            "kind": self.kind,
            "level": self.level,
            "sent_at": _iso(self.created_at),
            "headline": self.headline(),
            "link": self.link(console_url),
            "condition": {k: _iso(v) if k in _TIMES else v for k, v in self.condition.items()},
        }

    def slack(self, console_url: str) -> dict[str, Any]:
        """A Slack incoming-webhook message in blocks, with the headline as its text."""
        c = self.condition
        actions = "\n".join(f"• {a}" for a in c["recommended_actions"]) or "—"
        return {
            "text": self.headline(),
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": f"{_ICONS.get(c['severity'], '')} {self.headline()}"[:150],
                    },
                },
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*Severity*\n{c['severity']}"},
                        {"type": "mrkdwn", "text": f"*Subject*\n{c['subject']}"},
                        {"type": "mrkdwn", "text": f"*Rule*\n{c['rule']}"},
                        {"type": "mrkdwn", "text": f"*State*\n{c['state']}"},
                    ],
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": c["message"][:3000]}},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*Recommended actions*\n{actions}"[:3000]},
                },
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open in the console"},
                            "url": self.link(console_url),
                        }
                    ],
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": f"{c['condition_id']} · {self.kind}"[:3000]}
                    ],
                },
            ],
        }

    def text(self, console_url: str) -> str:
        c = self.condition
        actions = "\n".join(f"  - {a}" for a in c["recommended_actions"]) or "  (none)"
        return (
            f"{self.headline()}\n\n{c['message']}\n\n"
            f"Severity: {c['severity']}\nSubject: {c['subject']}\nRule: {c['rule']}\n"
            f"State: {c['state']}\nSince: {_iso(c['opened_at'])}\n\n"
            f"Recommended actions:\n{actions}\n\n{self.link(console_url)}\n"
        )

    def html(self, console_url: str) -> str:
        c = self.condition
        e = html.escape
        actions = "".join(f"<li>{e(a)}</li>" for a in c["recommended_actions"])
        return (
            f"<h2>{e(self.headline())}</h2><p>{e(c['message'])}</p>"
            f"<table><tr><th align=left>Severity</th><td>{e(c['severity'])}</td></tr>"
            f"<tr><th align=left>Subject</th><td>{e(c['subject'])}</td></tr>"
            f"<tr><th align=left>Rule</th><td>{e(c['rule'])}</td></tr>"
            f"<tr><th align=left>State</th><td>{e(c['state'])}</td></tr></table>"
            f"<h3>Recommended actions</h3><ul>{actions}</ul>"
            f'<p><a href="{e(self.link(console_url))}">Open in the console</a></p>'
        )


def sample_notification(channel: str, now_ms: int) -> Notification:
    """What ``deltaomega alerts test`` sends: a made-up INFO condition, to one channel."""
    condition = {
        "condition_id": f"test:deltaomega@{now_ms}",
        "rule": "test",
        "subject": "deltaomega",
        "severity": "INFO",
        "state": "OPEN",
        "first_window": now_ms,
        "last_window": now_ms,
        "windows": 1,
        "alert_id": f"test:deltaomega:{now_ms}",
        "message": f"a test notification to {channel}: if you read this, the channel works",
        "value": 0.0,
        "threshold": 0.0,
        "recommended_actions": ["nothing: this is a test"],
        "opened_at": now_ms,
        "acknowledged_by": "",
        "resolved_by": "",
        "resolution": "",
        "silenced_by": "",
        "escalation_level": 0,
        "notifications": 1,
        "changed_at": now_ms,
        "version": 1,
    }
    return Notification(f"test-{now_ms}", "test", condition, (channel,), now_ms)


_TIMES = ("first_window", "last_window", "opened_at", "changed_at")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
