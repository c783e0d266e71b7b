"""Alert rules over one tick's model outputs. Thresholds are settings (``DELTAOMEGA_ALERT_*``).

* ``conflict``: a pair's conflict probability is at least ``alert_conflict_warning``;
  CRITICAL from ``alert_conflict_critical``.
* ``emergence``: the emergence probability is at least ``alert_emergence_threshold``;
  CRITICAL from ``alert_emergence_critical``.
* ``stress_trend``: a voice's predicted stress is at least ``alert_stress_level`` and at
  least ``alert_stress_rise`` above its current window; CRITICAL when the lower end of
  the interval is over the level too.
* ``interval_breach``: a window mean landed ``alert_breach_sigmas`` predicted standard
  deviations or more from the prediction made for it (outside the published interval,
  and then some); WARNING when ``alert_breach_warning_metrics`` metrics did, else INFO.

An alert's id is ``rule:subject:window_start``: a replayed tick repeats its ids and the
ReplacingMergeTree table keeps one row each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deltaomega.alerting.routing import SEVERITY_RANK
from deltaomega.config import Settings
from deltaomega.schemas.records import METRICS


@dataclass(frozen=True)
class AlertRules:
    conflict_warning: float
    conflict_critical: float
    emergence_threshold: float
    emergence_critical: float
    stress_level: float
    stress_rise: float
    breach_warning_metrics: int
    breach_sigmas: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        return cls(
            settings.alert_conflict_warning,
            settings.alert_conflict_critical,
            settings.alert_emergence_threshold,
            settings.alert_emergence_critical,
            settings.alert_stress_level,
            settings.alert_stress_rise,
            settings.alert_breach_warning_metrics,
            settings.alert_breach_sigmas,
        )


def alert_record(
    rule: str,
    subject: str,
    window_start: int,
    severity: str,
    message: str,
    value: float,
    threshold: float,
    actions: Sequence[str],
    version: str,
    now_ms: int,
) -> dict[str, Any]:
    """One Alert record; its id is deterministic, so a replayed tick collapses in ClickHouse."""
    return {
        "alert_id": f"{rule}:{subject}:{window_start}",
        "window_start": window_start,
        "rule": rule,
        "severity": severity,
        "subject": subject,
        "message": message,
        "value": float(value),
        "threshold": float(threshold),
        "recommended_actions": list(actions),
        "model_version": version,
        "produced_at": now_ms,
    }


def conflict_alerts(
    rules: AlertRules, conflicts: Sequence[dict[str, Any]], version: str, now_ms: int
) -> list[dict[str, Any]]:
    out = []
    for c in conflicts:
        p = c["probability"]
        if p < rules.conflict_warning:
            continue
        critical = p >= rules.conflict_critical
        subject = f"{c['source']}->{c['target']}"
        out.append(
            alert_record(
                "conflict",
                subject,
                c["window_start"],
                "CRITICAL" if critical else "WARNING",
                f"conflict between {c['source']} and {c['target']} likely within "
                f"{c['horizon_windows']} windows (p={p:.2f})",
                p,
                rules.conflict_critical if critical else rules.conflict_warning,
                [
                    f"lower the coupling from {c['source']} to {c['target']}",
                    "trigger a mediation orchestration for the pair",
                    f"review {c['target']}'s stress budget",
                ],
                version,
                now_ms,
            )
        )
    return out


def emergence_alerts(
    rules: AlertRules, emergence: dict[str, Any], version: str, now_ms: int
) -> list[dict[str, Any]]:
    p = emergence["probability"]
    if p < rules.emergence_threshold:
        return []
    critical = p >= rules.emergence_critical
    return [
        alert_record(
            "emergence",
            "system",
            emergence["window_start"],
            "CRITICAL" if critical else "WARNING",
            f"emergent behaviour detected ({emergence['type']}, p={p:.2f})",
            p,
            rules.emergence_critical if critical else rules.emergence_threshold,
            [
                "snapshot the voice parameters for comparison",
                "review coupling changes of the last windows",
                "hold automatic orchestration until reviewed",
            ],
            version,
            now_ms,
        )
    ]


def stress_alerts(
    rules: AlertRules,
    predictions: Sequence[dict[str, Any]],
    current_stress: dict[str, float],
    version: str,
    now_ms: int,
) -> list[dict[str, Any]]:
    out = []
    for p in predictions:
        voice = p["voice_id"]
        predicted = p["stress_pred"]
        rise = predicted - current_stress.get(voice, predicted)
        if predicted < rules.stress_level or rise < rules.stress_rise:
            continue
        critical = p["stress_low"] >= rules.stress_level
        out.append(
            alert_record(
                "stress_trend",
                voice,
                p["window_start"],
                "CRITICAL" if critical else "WARNING",
                f"{voice}'s stress is heading to {predicted:.2f} (+{rise:.2f})",
                predicted,
                rules.stress_level,
                [
                    f"lower {voice}'s load or temperature",
                    f"reduce antagonistic links into {voice}",
                ],
                version,
                now_ms,
            )
        )
    return out


def breach_alerts(
    rules: AlertRules,
    previous: dict[str, dict[str, Any]],
    observed: dict[str, dict[str, float]],
    window_start: int,
    version: str,
    now_ms: int,
) -> list[dict[str, Any]]:
    """Compare each voice's observed window means with the interval predicted for them."""
    out = []
    for voice, means in observed.items():
        prediction = previous.get(voice)
        if prediction is None or prediction["target_window_start"] != window_start:
            continue
        sigmas = {
            m: abs(means[m] - prediction[f"{m}_pred"]) / max(prediction[f"{m}_std"], 1e-9)
            for m in METRICS
        }
        breached = [m for m in METRICS if sigmas[m] >= rules.breach_sigmas]
        if not breached:
            continue
        worst = max(sigmas[m] for m in breached)
        warning = len(breached) >= rules.breach_warning_metrics
        out.append(
            alert_record(
                "interval_breach",
                voice,
                window_start,
                "WARNING" if warning else "INFO",
                f"{voice}: {', '.join(breached)} outside the predicted interval "
                f"(up to {worst:.1f} standard deviations)",
                worst,
                rules.breach_sigmas,
                [f"inspect {voice}'s recent events", "check the voice for a regime change"],
                version,
                now_ms,
            )
        )
    return out


AlertKey = tuple[str, str]


def news_first(
    alerts: list[dict[str, Any]], before: dict[AlertKey, str]
) -> tuple[list[dict[str, Any]], dict[AlertKey, str]]:
    """The alerts in the order the control plane should take them, and this window's
    (rule, subject) → severity for the next call.

    An alert whose (rule, subject) did not fire in the window before, or fires more
    severely than it did, is news: it opens a condition or raises one, so someone is
    notified; the others only count another window of a condition someone has heard of.
    In a tick's burst of hundreds, news goes first (most severe first), so the control
    plane reaches the notifications before the bookkeeping. The order within each group
    is kept."""
    now = {(a["rule"], a["subject"]): a["severity"] for a in alerts}

    def urgency(alert: dict[str, Any]) -> tuple[int, int]:
        rank = SEVERITY_RANK[alert["severity"]]
        was = before.get((alert["rule"], alert["subject"]))
        news = was is None or rank > SEVERITY_RANK[was]
        return (0 if news else 1, -rank)

    return sorted(alerts, key=urgency), now
