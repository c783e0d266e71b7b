"""Topic names and their creation: one place, so producers, streams and the API agree."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from deltaomega.config import Settings
from deltaomega.errors import ConfigurationError
from deltaomega.kafka_clients import UNREACHABLE, admin_client, unavailable
from deltaomega.outages import outage

log = logging.getLogger(__name__)

# Outputs are kept a week, like the broker default.
_RETENTION_MS = str(7 * 24 * 3600 * 1000)
# Changelogs keep the latest value per key forever; short segments let compaction keep
# up, so a restore without the local checkpoint reads little more than the open windows.
_CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(3600 * 1000),
}


@dataclass(frozen=True)
class Topics:
    voice_events: str
    interactions: str
    deadletter: str
    voice_states: str
    interaction_states: str
    predictions: str
    conflicts: str
    emergence: str
    patterns: str
    alerts: str
    #: how each closed window's predictions did (deltaomega/streams/scoring.py)
    prediction_scores: str
    #: compacted, key voice id: each voice's latest parameter change
    parameters: str
    #: the control plane's own: voices whose parameter change has run out, to revert
    parameter_expiry: str
    #: orchestration requests and decisions, key orchestration id (the state machine's input)
    orchestration: str
    #: each orchestration's state after every change, key orchestration id (sunk to ClickHouse)
    orchestration_status: str
    #: what active orchestrations ask voices to do, key voice id
    commands: str
    voice_windows_changelog: str
    interaction_windows_changelog: str
    #: one partition, no records: its consumer group makes one worker the inference leader
    inference_lease: str
    #: one compacted partition: the API keys (hashes only) every API process follows
    api_keys: str
    #: one partition, in order: every write, approval, automatic action and refusal
    audit: str
    #: acknowledgements, resolutions and silences of alert conditions (sunk to ClickHouse)
    alert_actions: str
    #: each alert condition after every change, key rule:subject (sunk to ClickHouse)
    alert_status: str
    #: every attempt to deliver a notification (sunk to ClickHouse)
    alert_deliveries: str
    #: the control plane's own: conditions due a look (reminder, escalation, clearing)
    alert_checks: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(
            voice_events=f"{p}voice.events",
            interactions=f"{p}voice.interactions",
            deadletter=f"{p}voice.deadletter",
            voice_states=f"{p}voice.states",
            interaction_states=f"{p}voice.interaction-states",
            predictions=f"{p}voice.predictions",
            conflicts=f"{p}voice.conflicts",
            emergence=f"{p}voice.emergence",
            patterns=f"{p}voice.patterns",
            alerts=f"{p}voice.alerts",
            prediction_scores=f"{p}voice.prediction-scores",
            parameters=f"{p}voice.parameters",
            parameter_expiry=f"{p}{settings.app_id}.parameter-expiry",
            orchestration=f"{p}voice.orchestration",
            orchestration_status=f"{p}voice.orchestration-status",
            commands=f"{p}voice.commands",
            voice_windows_changelog=f"{p}{settings.app_id}.voice-windows.changelog",
            interaction_windows_changelog=f"{p}{settings.app_id}.interaction-windows.changelog",
            inference_lease=f"{p}{settings.app_id}.inference-lease",
            api_keys=f"{p}{settings.app_id}.api-keys",
            audit=f"{p}{settings.app_id}.audit",
            alert_actions=f"{p}voice.alert-actions",
            alert_status=f"{p}voice.alert-status",
            alert_deliveries=f"{p}voice.alert-deliveries",
            alert_checks=f"{p}{settings.app_id}.alert-checks",
        )

    def all(self) -> list[str]:
        return [
            self.voice_events,
            self.interactions,
            self.deadletter,
            self.voice_states,
            self.interaction_states,
            self.predictions,
            self.conflicts,
            self.emergence,
            self.patterns,
            self.alerts,
            self.prediction_scores,
            self.parameters,
            self.parameter_expiry,
            self.orchestration,
            self.orchestration_status,
            self.commands,
            *self.changelogs(),
            self.inference_lease,
            self.api_keys,
            self.audit,
            self.alert_actions,
            self.alert_status,
            self.alert_deliveries,
            self.alert_checks,
        ]

    def changelogs(self) -> list[str]:
        return [self.voice_windows_changelog, self.interaction_windows_changelog]

    def partitions(self, name: str, settings: Settings) -> int:
        """How many partitions ``name`` has: the lease, keys and audit topics one, every
        other the setting."""
        one = (self.inference_lease, self.api_keys, self.audit)
        return 1 if name in one else settings.partitions

    def config(self, name: str) -> dict[str, str]:
        """Changelogs and keys are compacted (the latest value per key, for ever); the rest
        are kept a week."""
        if name in self.changelogs():
            return _CHANGELOG_CONFIG
        if name in (self.api_keys, self.parameters):
            return {"cleanup.policy": "compact"}
        return {"retention.ms": _RETENTION_MS}


def ensure_topics(settings: Settings, timeout: float = 10.0) -> Topics:
    """Create missing topics with the configured partition count; check existing ones match.

    A window changelog's partition *p* holds the open windows of source partition *p*, so
    a mismatch here is an error rather than something to discover during recovery. No
    broker answering within ``timeout`` is a :class:`KafkaUnavailableError`.
    """
    topics = Topics.from_settings(settings)
    admin = admin_client(settings)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise unavailable(settings, exc) from exc
    outage("kafka").recovered()
    missing = [name for name in topics.all() if name not in existing]
    for name in topics.all():
        wanted = topics.partitions(name, settings)
        if name in existing and len(existing[name].partitions) != wanted:
            raise ConfigurationError(
                f"topic {name} has {len(existing[name].partitions)} partitions, "
                f"settings say {wanted}"
            )
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=topics.partitions(name, settings),
                    replication_factor=settings.replication_factor,
                    config=topics.config(name),
                )
                for name in missing
            ],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except TimeoutError as exc:
                raise unavailable(settings, exc) from exc
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if error.code() in UNREACHABLE or error.retriable():
                    raise unavailable(settings, exc) from exc
                raise ConfigurationError(f"could not create topic {name}: {error.str()}") from exc
            log.info("created topic %s (%d partitions)", name, topics.partitions(name, settings))
    return topics
