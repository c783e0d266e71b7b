"""The orchestration state machine, as a Faust agent over ``voice.orchestration`` with each
orchestration's state in a table:

    PROPOSED → APPROVED → ACTIVE → COMPLETED | ROLLED_BACK
    PROPOSED → REJECTED | EXPIRED

Approval takes an operator other than the requester; an admin's emergency request starts
at once. Starting publishes, for each target voice, a parameter change for the duration
(change id ``<orchestration>:<voice>``, so the parameters' own expiry restores the values
from before when it completes) and a START command on ``voice.commands``; a rollback asks
the parameter agent to revert those changes now, and STOP commands follow either end. A
refused event changes nothing and says why in the status. Every state change goes to
``voice.orchestration-status`` (sunk into ClickHouse) and the audit log.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import faust

from deltaomega.config import Settings
from deltaomega.control.channels import decoded, raw_topic
from deltaomega.control.decisions import NEEDS, refusal
from deltaomega.control.strategies import Strategy
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ORCHESTRATION_EVENT,
    ORCHESTRATION_STATUS,
    PARAMETER_CHANGE,
    VOICE_COMMAND,
)
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
_ASK_AGAIN_SECONDS = 10.0
#: the principal of the control plane's own actions (reverts, expiry)
SYSTEM = "system"
#: state → the events that move it on
_OPEN = ("PROPOSED", "ACTIVE")


def change_id(orchestration_id: str, voice: str) -> str:
    return f"{orchestration_id}:{voice}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def orchestration_event(
    oid: str, action: str, actor: str, role: str, rationale: str, **fields: Any
) -> dict[str, Any]:
    """An OrchestrationEvent record; ``fields`` are the request's (strategy, target_voices,
    duration_seconds, voice_parameters, strategy_parameters)."""
    return {
        "event_id": uuid.uuid4().hex,
        "orchestration_id": oid,
        "action": action,
        "strategy": fields.get("strategy", ""),
        "target_voices": fields.get("target_voices", []),
        "duration_seconds": fields.get("duration_seconds", 0),
        "voice_parameters": fields.get("voice_parameters", {}),
        "strategy_parameters": fields.get("strategy_parameters", {}),
        "rationale": rationale,
        "actor": actor,
        "actor_role": role,
        "at": _now_ms(),
    }


def install_orchestration(
    app: faust.App,
    settings: Settings,
    codec: AvroCodec,
    audit: AuditTrail,
    changes: Any,
    expiries: Any,
) -> Any:
    """Installs the agent and its timer; returns the topic of orchestration events."""
    topics = Topics.from_settings(settings)
    events = raw_topic(app, topics.orchestration, settings.partitions)
    statuses = raw_topic(app, topics.orchestration_status, settings.partitions)
    commands = raw_topic(app, topics.commands, settings.partitions)
    table = app.Table("orchestrations", default=dict, partitions=settings.partitions)
    approval_ms = int(settings.orchestration_approval_seconds * 1000)
    asked: dict[str, float] = {}

    async def publish(state: dict[str, Any], actor: str, role: str, action: str) -> None:
        """The state as a status record, and its audit row (DENIED when the event was
        refused)."""
        status = {k: state[k] for k in _STATUS_FIELDS} | {
            "voice_parameters": json.dumps(state["voice_parameters"], sort_keys=True),
            "changed_at": _now_ms(),
        }
        key = state["orchestration_id"].encode()
        await statuses.send(key=key, value=codec.encode(ORCHESTRATION_STATUS, status))
        refused = bool(state.get("refused"))
        audit.record(
            # the transition (the API's rows record who asked for it)
            "orchestration.refused" if refused else f"orchestration.{state['state'].lower()}",
            Outcome.DENIED if refused else Outcome.OK,
            subject=actor,
            method="system" if role == SYSTEM else "token",
            target=state["orchestration_id"],
            rationale=state["last_rationale"],
            detail=state["detail"],
            after={"state": state["state"], "event": action, "role": role},
        )

    async def command(state: dict[str, Any], kind: str) -> None:
        for voice in state["target_voices"]:
            record = {
                "command_id": uuid.uuid4().hex,
                "voice_id": voice,
                "orchestration_id": state["orchestration_id"],
                "command": kind,
                "strategy": state["strategy"],
                "parameters": state["voice_parameters"].get(voice, {}),
                "issued_at": _now_ms(),
                "ends_at": state["ends_at"] if kind == "START" else None,
            }
            await commands.send(key=voice.encode(), value=codec.encode(VOICE_COMMAND, record))

    async def activate(state: dict[str, Any]) -> None:
        now = _now_ms()
        state["state"] = "ACTIVE"
        state["ends_at"] = now + state["duration_seconds"] * 1000
        for voice in state["target_voices"]:
            values = state["voice_parameters"].get(voice, {})
            change = {
                "change_id": change_id(state["orchestration_id"], voice),
                "voice_id": voice,
                "sensitivity": values.get("sensitivity"),
                "activation_threshold": values.get("activation_threshold"),
                "influence_weight": values.get("influence_weight"),
                "context_modifiers": {},
                "rationale": f"{state['strategy']} orchestration {state['orchestration_id']}",
                "expected_duration_minutes": None,
                "monitoring_enabled": True,
                "requested_by": f"orchestration:{state['orchestration_id']}",
                "requested_at": now,
                "expires_at": state["ends_at"],
                "reverts": None,
            }
            await changes.send(key=voice.encode(), value=codec.encode(PARAMETER_CHANGE, change))
        await command(state, "START")

    @app.agent(events)
    async def run_orchestrations(stream: Any) -> None:
        async for _key, event in decoded(stream, codec, ORCHESTRATION_EVENT):
            oid = event["orchestration_id"]
            state = dict(table[oid] or {})
            action = event["action"]
            actor, role = event["actor"], event["actor_role"]
            if action == "REQUEST":
                if state:
                    continue  # a replayed request
                state = _proposed(event)
                if event["strategy"] == Strategy.EMERGENCY and role == "admin":
                    state["decided_by"] = actor
                    state["detail"] = "an admin's emergency orchestration starts at once"
                    await activate(state)
                step = "request"
            elif not state:
                continue  # a decision on an orchestration this table never saw
            else:
                state["last_rationale"] = event["rationale"]
                state["detail"] = ""
                state["refused"] = False
                step = action.lower()
                current = state["state"]
                requester = state["requested_by"]
                why = refusal(action, current, requester, actor) if action in NEEDS else None
                if why is not None:
                    refuse(state, why)
                elif action == "APPROVE":
                    state["decided_by"] = actor
                    state["state"] = "APPROVED"
                    await publish_version(state, actor, role, "approve")
                    await activate(state)
                    step = "start"
                elif action == "REJECT":
                    state["decided_by"] = actor
                    state["state"] = "REJECTED"
                elif action == "ROLLBACK":
                    state["decided_by"] = actor
                    state["state"] = "ROLLED_BACK"
                    for voice in state["target_voices"]:
                        await expiries.send(
                            key=voice.encode(), value=change_id(oid, voice).encode()
                        )
                    await command(state, "STOP")
                elif action == "EXPIRE":
                    now = _now_ms()
                    if current == "ACTIVE" and now >= state["ends_at"]:
                        state["state"] = "COMPLETED"
                        await command(state, "STOP")
                    elif current == "PROPOSED" and now >= state["requested_at"] + approval_ms:
                        state["state"] = "EXPIRED"
                        state["detail"] = "not approved in time"
                    else:
                        continue
            await publish_version(state, actor, role, step)
            table[oid] = state

    async def publish_version(state: dict[str, Any], actor: str, role: str, step: str) -> None:
        state["version"] = state.get("version", 0) + 1
        await publish(state, actor, role, step)

    @app.timer(CHECK_SECONDS)  # type: ignore[untyped-decorator]
    async def check_orchestrations() -> None:
        now = _now_ms()
        for oid, state in list(table.items()):
            due = (state["state"] == "ACTIVE" and now >= state["ends_at"]) or (
                state["state"] == "PROPOSED" and now >= state["requested_at"] + approval_ms
            )
            if not due:
                asked.pop(oid, None)
                continue
            if time.monotonic() - asked.get(oid, -_ASK_AGAIN_SECONDS) >= _ASK_AGAIN_SECONDS:
                asked[oid] = time.monotonic()
                expire = orchestration_event(
                    oid,
                    "EXPIRE",
                    SYSTEM,
                    SYSTEM,
                    "its time is up",
                    strategy=state["strategy"],
                    target_voices=state["target_voices"],
                    duration_seconds=state["duration_seconds"],
                )
                await events.send(key=oid.encode(), value=codec.encode(ORCHESTRATION_EVENT, expire))

    return events


_STATUS_FIELDS = (
    "orchestration_id",
    "state",
    "strategy",
    "target_voices",
    "duration_seconds",
    "rationale",
    "requested_by",
    "decided_by",
    "detail",
    "requested_at",
    "ends_at",
    "version",
)


def refuse(state: dict[str, Any], why: str) -> None:
    """The event changes nothing; the status and the audit row say why."""
    state["detail"] = why
    state["refused"] = True


def _proposed(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "orchestration_id": event["orchestration_id"],
        "state": "PROPOSED",
        "strategy": event["strategy"],
        "target_voices": list(event["target_voices"]),
        "duration_seconds": event["duration_seconds"],
        "voice_parameters": {v: dict(p) for v, p in event["voice_parameters"].items()},
        "rationale": event["rationale"],
        "last_rationale": event["rationale"],
        "requested_by": event["actor"],
        "decided_by": "",
        "detail": "",
        "refused": False,
        "requested_at": event["at"],
        "ends_at": None,
        "version": 0,
    }
