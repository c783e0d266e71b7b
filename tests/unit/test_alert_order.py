"""A tick's alerts in the order the control plane takes them: news first."""

from __future__ import annotations

from typing import Any

from deltaomega.models.alerts import alert_record, news_first


def alert(rule: str, subject: str, severity: str) -> dict[str, Any]:
    return alert_record(rule, subject, 0, severity, "m", 1.0, 0.5, [], "v1", 0)


def keys(alerts: list[dict[str, Any]]) -> list[str]:
    return [f"{a['rule']}:{a['subject']}:{a['severity'][0]}" for a in alerts]


def test_news_goes_first_most_severe_first_and_each_group_keeps_its_order() -> None:
    before = {
        ("stress_trend", "v1"): "WARNING",
        ("stress_trend", "v2"): "WARNING",
        ("conflict", "v1|v2"): "CRITICAL",
        ("interval_breach", "v3"): "INFO",
    }
    tick = [
        alert("stress_trend", "v1", "WARNING"),  # the same: bookkeeping
        alert("interval_breach", "v4", "INFO"),  # new
        alert("conflict", "v1|v2", "WARNING"),  # less severe: bookkeeping
        alert("stress_trend", "v2", "CRITICAL"),  # more severe: news
        alert("interval_breach", "v3", "INFO"),  # the same
        alert("stress_trend", "v5", "WARNING"),  # new
        alert("emergence", "system", "CRITICAL"),  # new
        alert("stress_trend", "v6", "WARNING"),  # new
    ]
    ordered, now = news_first(tick, before)
    assert keys(ordered) == [
        "stress_trend:v2:C",
        "emergence:system:C",
        "stress_trend:v5:W",
        "stress_trend:v6:W",
        "interval_breach:v4:I",
        "stress_trend:v1:W",
        "conflict:v1|v2:W",
        "interval_breach:v3:I",
    ]
    assert sorted(ordered, key=id) == sorted(tick, key=id)  # nothing lost or copied
    assert now == {(a["rule"], a["subject"]): a["severity"] for a in tick}
    # The next tick: what fired now is no longer news.
    again, _ = news_first([alert("interval_breach", "v7", "INFO"), *tick[:2]], now)
    assert keys(again) == ["interval_breach:v7:I", "stress_trend:v1:W", "interval_breach:v4:I"]


def test_a_first_tick_has_only_news_in_severity_order() -> None:
    tick = [alert("a", "x", "INFO"), alert("b", "y", "CRITICAL"), alert("c", "z", "WARNING")]
    ordered, _ = news_first(tick, {})
    assert keys(ordered) == ["b:y:C", "c:z:W", "a:x:I"]
    assert news_first([], {}) == ([], {})
