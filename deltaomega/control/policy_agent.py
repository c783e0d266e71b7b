"""The Faust agent that applies the policies (deltaomega.control.policies) to ``voice.alerts``.

It reads two tables across partitions: its own quiet periods (a pair's alerts a->b and
b->a may come from two partitions) and the targets' parameters now (``voice-parameters``).
Both are whole in a control plane that runs as one instance (its work is low-volume; with
more, each would see only the voices of its own partitions).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import faust

from deltaomega.config import Settings
from deltaomega.control.channels import decoded, raw_topic
from deltaomega.control.orchestration import SYSTEM, orchestration_event
from deltaomega.control.parameters import DEFAULTS
from deltaomega.control.policies import Policy
from deltaomega.control.strategies import planned
from deltaomega.metrics import POLICY_PROPOSALS
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT, ORCHESTRATION_EVENT
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

#: An alert older than this is history (a control plane reading the topic from its start),
#: not a condition to act on now.
STALE_MS = 5 * 60 * 1000


def install_policies(
    app: faust.App,
    settings: Settings,
    codec: AvroCodec,
    audit: AuditTrail,
    voices: Any,
    events: Any,
    policies: Sequence[Policy],
) -> None:
    if not policies:
        return
    alerts = raw_topic(app, Topics.from_settings(settings).alerts, settings.partitions)
    #: "<policy>|<target voices>" → the last proposal: orchestration id, alert id, quiet until
    proposals = app.Table("policy-proposals", default=dict, partitions=settings.partitions)

    async def propose(policy: Policy, alert: dict[str, Any], targets: list[str]) -> str:
        plan = policy.propose
        given = plan.parameters.model_dump(exclude_none=True)
        options = plan.strategy_parameters.model_dump(exclude_none=True)
        current = {v: (voices[v] or {}).get("parameters", DEFAULTS) for v in targets}
        oid = uuid.uuid4().hex
        requester = f"policy:{policy.name}"
        request = orchestration_event(
            oid,
            "REQUEST",
            requester,
            SYSTEM,
            f"policy {policy.name} on alert {alert['alert_id']}: {alert['message']}",
            strategy=plan.strategy.value,
            target_voices=targets,
            duration_seconds=plan.duration_minutes * 60,
            voice_parameters={
                v: planned(plan.strategy, current[v], given, options) for v in targets
            },
            strategy_parameters=options,
        )
        key = oid.encode()
        await events.send(key=key, value=codec.encode(ORCHESTRATION_EVENT, request))
        audit.record(
            "policy.propose",
            Outcome.OK,
            subject=requester,
            method=SYSTEM,
            target=oid,
            rationale=request["rationale"],
            after=request,
        )
        if policy.automatic:
            approve = orchestration_event(
                oid, "APPROVE", SYSTEM, SYSTEM, f"policy {policy.name} is automatic"
            )
            await events.send(key=key, value=codec.encode(ORCHESTRATION_EVENT, approve))
        return oid

    @app.agent(alerts)
    async def apply_policies(stream: Any) -> None:
        async for _key, alert in decoded(stream, codec, ALERT):
            now = int(time.time() * 1000)
            stale = alert["produced_at"] < now - STALE_MS
            for policy in policies:
                if not policy.matches(alert):
                    continue
                if stale:
                    POLICY_PROPOSALS.labels(policy.name, "stale").inc()
                    continue
                targets = policy.target_voices(alert["subject"])
                if not targets:
                    POLICY_PROPOSALS.labels(policy.name, "no_target").inc()
                    continue
                # a->b and b->a are one pair: one proposal
                slot = f"{policy.name}|{','.join(sorted(targets))}"
                last = proposals[slot]
                if last and now < last["quiet_until"]:
                    POLICY_PROPOSALS.labels(policy.name, "quiet").inc()
                    continue
                oid = await propose(policy, alert, targets)
                proposals[slot] = {
                    "orchestration_id": oid,
                    "alert_id": alert["alert_id"],
                    "quiet_until": now + policy.quiet_ms(settings.orchestration_approval_seconds),
                }
                POLICY_PROPOSALS.labels(policy.name, "proposed").inc()
                log.info(
                    "policy %s proposed orchestration %s (%s on %s)%s",
                    policy.name,
                    oid,
                    policy.propose.strategy.value,
                    ", ".join(targets),
                    ", approved at once (automatic)" if policy.automatic else "",
                )
