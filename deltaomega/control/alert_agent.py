"""Alert dispatch in the control plane: one agent over ``voice.alerts``, the people's actions
(``voice.alert-actions``) and its own checks, with each condition in a table (key
rule:subject) and the silences in another; decisions are
:class:`deltaomega.alerting.conditions.Conditions`'; the notifications go to the courier
(:mod:`deltaomega.alerting.courier`), a process of its own that delivers them.

Alerts, actions and checks of a condition share its subject as their key, so they meet in
one partition and one agent, in order. What time alone does (clearing, escalation,
reminders, a notice held by quiet hours) the timer finds and sends to that agent as a check,
as the parameters' expiry does: a table is written only from the agent of its partition.
Windows close when the pattern classifier has run on them: the newest on
``voice.patterns`` is the clock that clears a condition, ``alert_clear_after_seconds`` after
its record came: the tick's alerts go out ahead of that record but on other partitions, so
the record may be read while a few hundred of them still wait in the agent's queue, and a
condition whose alert is among them must not be resolved first (and opened again). The
wait also keeps a window's resolutions (about as many as its openings, at 1,000 voices)
from taking turns with those openings in the agent, the courier and the receivers. Like the
policies, the tables are whole in a control plane that runs as one instance.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Any

import faust

from deltaomega.alerting.conditions import RESOLVED, Condition, Conditions, Silence, status_record
from deltaomega.alerting.courier import Courier
from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.routing import Routing
from deltaomega.config import Settings
from deltaomega.control.channels import raw_topic
from deltaomega.control.records_out import changelogged_table, control_records
from deltaomega.errors import DecodeError
from deltaomega.metrics import ALERT_CONDITIONS_OPEN
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    ALERT_ACTION,
    ALERT_CONDITION,
    PATTERN,
)
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.streams.health import RULES as PIPELINE_RULES
from deltaomega.streams.health import clearing_window
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
#: The timer rebuilds its open conditions from the table every this many looks.
_REINDEX_LOOKS = 60
_ASK_AGAIN_SECONDS = 10.0
#: An alert older than this is history (a control plane reading the topic from its start).
STALE_MS = 5 * 60 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def install_alert_dispatch(
    app: faust.App, settings: Settings, codec: AvroCodec, audit: AuditTrail, routing: Routing
) -> None:
    topics = Topics.from_settings(settings)
    inputs = raw_topic(
        app, (topics.alerts, topics.alert_actions, topics.alert_checks), settings.partitions
    )
    patterns = raw_topic(app, topics.patterns, settings.partitions)
    outputs = control_records(app, settings)
    statuses = outputs.emit_to(topics.alert_status)
    # the timer's checks, a few hundred at once when a window's conditions clear: through
    # librdkafka too (an awaited Faust send each made the timer overrun its second), keyed
    # by subject with the same (murmur2) partitioner as the alerts, so each meets its
    # condition's partition
    checks = outputs.emit_to(topics.alert_checks)
    # written for (almost) every alert of a burst: its changelog through librdkafka
    conditions = changelogged_table(
        app, outputs, "alert-conditions", default=dict, partitions=settings.partitions
    )
    silences = app.Table("alert-silences", default=dict, partitions=settings.partitions)
    logic = Conditions(routing, settings.window_ms)
    clock: dict[str, int] = {}
    #: windows closed in the last alert_clear_after_seconds, and when their record came
    closing: deque[tuple[int, float]] = deque()
    asked: dict[str, float] = {}
    #: the conditions not resolved, as publish() wrote them to the table: the timer looks
    #: at these only (the table holds every condition that ever was, and a read of it goes
    #: through Faust's sensors: a tenth of the agent's time with a thousand open), and
    #: rebuilds them from the table now and then (after recovery at start, a rebalance)
    open_conditions: dict[str, Condition] = {}
    looks = [0]

    courier = Courier(settings, routing.channels, routing.console_url)
    courier.start()

    @app.on_before_shutdown.connect
    async def stop_courier(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await courier.stop()

    def cleared() -> int | None:
        """The newest window closed alert_clear_after_seconds ago or more."""
        since = time.monotonic() - settings.alert_clear_after_seconds
        while closing and closing[0][1] <= since:
            window, _ = closing.popleft()
            clock["newest"] = max(clock.get("newest", window), window)
        return clock.get("newest")

    def newest(condition: Condition, now: int) -> int | None:
        """The newest window that clears conditions: the models' ticks, or the wall
        clock's for the pipeline's own alerts (raised by the wall clock, and with no models
        to tick)."""
        if condition["rule"] in PIPELINE_RULES:
            return clearing_window(now, settings.window_ms)
        return cleared()

    def active_silences(now: int) -> list[Silence]:
        return [Silence.of(s) for s in silences.values() if s and s["until"] > now]

    async def publish(fp: str, condition: Condition, sent: list[Notification]) -> None:
        conditions[fp] = condition
        if condition["state"] == RESOLVED:
            open_conditions.pop(fp, None)
        else:
            open_conditions[fp] = condition
        statuses(fp.encode(), codec.encode(ALERT_CONDITION, status_record(condition)))
        for notification in sent:
            courier.submit(notification)

    async def on_action(action: dict[str, Any]) -> None:
        now = _now_ms()
        kind = action["action"]
        detail = ""
        if kind == "SILENCE":
            silences[action["silence_id"]] = action
        elif kind == "UNSILENCE":
            if silences[action["silence_id"]]:
                del silences[action["silence_id"]]
            else:
                detail = f"no silence {action['silence_id']}"
        else:
            rule, _, rest = action["condition_id"].partition(":")
            fp = f"{rule}:{rest.rpartition('@')[0]}"
            condition, sent, detail = logic.on_action(conditions[fp] or None, action, now)
            if condition is not None:
                await publish(fp, condition, sent)
        audit.record(
            f"alert.{kind.lower()}",
            Outcome.DENIED if detail else Outcome.OK,
            subject=action["actor"],
            method="token",
            target=action["condition_id"] or action["silence_id"],
            rationale=action["reason"],
            detail=detail,
        )
        if detail:
            log.info("alert action %s refused: %s", kind, detail)

    @app.agent(inputs)
    async def dispatch(stream: Any) -> None:
        async for event in stream.events():
            topic = event.message.topic
            if topic == topics.alert_checks:
                fp = event.value.decode()
                current = conditions[fp]
                if current:
                    now = _now_ms()
                    condition, sent = logic.on_check(
                        current, active_silences(now), newest(current, now), now
                    )
                    if condition is not None:
                        await publish(fp, condition, sent)
                asked.pop(fp, None)
                continue
            try:
                name, record = codec.decode(event.value)
            except DecodeError as exc:
                log.warning("skipping an unreadable record on %s: %s", topic, exc)
                continue
            if name == ALERT_ACTION:
                await on_action(record)
            elif name == ALERT:
                now = _now_ms()
                if record["produced_at"] < now - STALE_MS:
                    continue
                fp = f"{record['rule']}:{record['subject']}"
                condition, sent = logic.on_alert(
                    conditions[fp] or None, record, active_silences(now), now
                )
                if condition is not None:
                    await publish(fp, condition, sent)
            else:
                log.warning("skipping a %s on %s", name, topic)

    @app.agent(patterns)
    async def follow_windows(stream: Any) -> None:
        async for value in stream:
            try:
                name, record = codec.decode(value)
            except DecodeError:
                continue
            if name == PATTERN:
                closing.append((int(record["window_start"]), time.monotonic()))

    @app.timer(CHECK_SECONDS)  # type: ignore[untyped-decorator]
    async def look() -> None:
        now = _now_ms()
        cleared()  # (also when nothing is open: the windows closing wait in a queue)
        active = active_silences(now)
        open_by_severity: Counter[str] = Counter()
        if looks[0] % _REINDEX_LOOKS == 0:
            open_conditions.clear()
            open_conditions.update(
                (fp, c) for fp, c in conditions.items() if c and c["state"] != RESOLVED
            )
        looks[0] += 1
        for fp, condition in list(open_conditions.items()):
            open_by_severity[condition["severity"]] += 1
            if not logic.due(condition, active, newest(condition, now), now):
                continue
            if time.monotonic() - asked.get(fp, -_ASK_AGAIN_SECONDS) >= _ASK_AGAIN_SECONDS:
                asked[fp] = time.monotonic()
                checks(condition["subject"].encode(), fp.encode())
        for severity in ("INFO", "WARNING", "CRITICAL"):
            ALERT_CONDITIONS_OPEN.labels(severity).set(open_by_severity[severity])
