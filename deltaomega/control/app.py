"""The control plane's Faust app: parameter changes kept per voice in a changelog-backed
table, a timer that reverts a change when its expected duration ends, and the
orchestration state machine (deltaomega.control.orchestration), the policies that turn
alerts into proposed orchestrations (deltaomega.control.policy_agent) and alert dispatch
(deltaomega.control.alert_agent).

Expiry runs through the agent rather than the timer itself: a Faust table may only be
written from an agent (its changelog partition is the event's), so the timer sends an
``expire`` record for each voice whose change has run out, and the agent that owns the
voice's partition publishes the revert and records that it did, once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import faust

from deltaomega.alerting.routing import Routing
from deltaomega.config import Settings
from deltaomega.control.alert_agent import install_alert_dispatch
from deltaomega.control.channels import decoded, raw_topic
from deltaomega.control.orchestration import SYSTEM, install_orchestration
from deltaomega.control.parameters import DEFAULTS, applied, undoing
from deltaomega.control.policies import Policy
from deltaomega.control.policy_agent import install_policies
from deltaomega.kafka_clients import faust_credentials
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import PARAMETER_CHANGE
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

EXPIRY_CHECK_SECONDS = 1.0
_ASK_AGAIN_SECONDS = 10.0


def control_app(
    settings: Settings,
    codec: AvroCodec,
    audit: AuditTrail,
    policies: Sequence[Policy] = (),
    routing: Routing | None = None,
) -> faust.App:
    topics = Topics.from_settings(settings)
    datadir = (settings.data_dir / "control").resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}-control",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        # a crashed instance's partitions move on as soon as the worker's would
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=settings.consumer_session_timeout_seconds / 5,
        # a tick's burst of alerts: a few records per request, not one
        producer_linger_ms=5,
        web_enabled=False,
        # the app is one part of a process that has its own logging and signals
        loghandlers=[],
    )
    changes = raw_topic(app, topics.parameters, settings.partitions)
    expiries = raw_topic(app, topics.parameter_expiry, settings.partitions)
    #: voice id → {"parameters": effective values, "pending": the change to revert or None}
    voices = app.Table("voice-parameters", default=dict, partitions=settings.partitions)
    #: voice → when its expiry was last sent to the agent (sent again if nothing came of it)
    asked: dict[str, float] = {}

    @app.agent(changes)
    async def apply_changes(stream: Any) -> None:
        async for _key, change in decoded(stream, codec, PARAMETER_CHANGE):
            voice = change["voice_id"]
            state = voices[voice] or {"parameters": DEFAULTS, "pending": None}
            before = state["parameters"]
            pending = state["pending"]
            if change["reverts"] is not None:
                if pending is not None and pending["change_id"] == change["reverts"]:
                    pending = None
            elif change["expires_at"] is not None:
                pending = {
                    "change_id": change["change_id"],
                    "expires_at": change["expires_at"],
                    "restore": undoing(before, change),
                    "reverting": False,
                }
            else:
                pending = None  # a lasting change ends any pending one
            voices[voice] = {"parameters": applied(before, change), "pending": pending}

    @app.agent(expiries)
    async def expire(stream: Any) -> None:
        async for key, value in stream.items():
            voice = key.decode()
            state = voices[voice]
            pending = state.get("pending") if state else None
            # an empty value: revert if the change has run out; a change id: revert that
            # change now (an orchestration rolled back)
            if not pending or pending["reverting"]:
                continue
            forced = bool(value) and pending["change_id"] == value.decode()
            if pending["expires_at"] > _now_ms() and not forced:
                continue
            revert = {
                "change_id": uuid.uuid4().hex,
                "voice_id": voice,
                "sensitivity": pending["restore"].get("sensitivity"),
                "activation_threshold": pending["restore"].get("activation_threshold"),
                "influence_weight": pending["restore"].get("influence_weight"),
                "context_modifiers": pending["restore"]["context_modifiers"],
                "rationale": (
                    f"change {pending['change_id']} rolled back"
                    if forced
                    else f"the expected duration of change {pending['change_id']} ended"
                ),
                "expected_duration_minutes": None,
                "monitoring_enabled": True,
                "requested_by": SYSTEM,
                "requested_at": _now_ms(),
                "expires_at": None,
                "reverts": pending["change_id"],
            }
            await changes.send(key=key, value=codec.encode(PARAMETER_CHANGE, revert))
            voices[voice] = {**state, "pending": {**pending, "reverting": True}}
            audit.record(
                "parameters.revert",
                Outcome.OK,
                subject=SYSTEM,
                method="system",
                target=voice,
                rationale=revert["rationale"],
                before=state["parameters"],
                after=revert,
            )
            log.info("reverted change %s of voice %s", pending["change_id"], voice)

    events = install_orchestration(app, settings, codec, audit, changes, expiries)
    install_policies(app, settings, codec, audit, voices, events, policies)
    install_alert_dispatch(app, settings, codec, audit, routing or Routing())

    @app.timer(EXPIRY_CHECK_SECONDS)  # type: ignore[untyped-decorator]
    async def check_expiry() -> None:
        now = _now_ms()
        for voice, state in list(voices.items()):
            pending = state.get("pending")
            if not pending or pending["reverting"] or pending["expires_at"] > now:
                asked.pop(voice, None)
                continue
            if time.monotonic() - asked.get(voice, -_ASK_AGAIN_SECONDS) >= _ASK_AGAIN_SECONDS:
                asked[voice] = time.monotonic()
                await expiries.send(key=voice.encode(), value=b"")

    return app


def _now_ms() -> int:
    return int(time.time() * 1000)
