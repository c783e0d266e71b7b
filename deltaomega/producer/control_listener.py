"""The voices' side of the control path: parameter changes and commands, delivered to a
callback.

On start it reads the compacted ``voice.parameters`` topic from its beginning, so a voice
starts from the parameters it is meant to have (each voice's latest state, as changes have
left it), then follows both topics live; ``voice.commands`` is read from its end (a command
is for now, not for a voice that starts later). A consumer without a group: every
listener sees every record.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from deltaomega.config import Settings
from deltaomega.control.parameters import DEFAULTS, applied
from deltaomega.errors import DecodeError
from deltaomega.kafka_clients import client_config, unavailable, watermarks
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import PARAMETER_CHANGE, VOICE_COMMAND
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

#: (voice id, its parameters now: sensitivity, activation_threshold, influence_weight,
#: context_modifiers)
OnParameters = Callable[[str, dict[str, Any]], None]
#: a VoiceCommand record
OnCommand = Callable[[dict[str, Any]], None]

_POLL_SECONDS = 0.2
_TIMEOUT_SECONDS = 10.0


class ControlListener:
    def __init__(
        self,
        settings: Settings,
        on_parameters: OnParameters,
        on_command: OnCommand | None = None,
        voices: Collection[str] | None = None,
        codec: AvroCodec | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.on_parameters = on_parameters
        self.on_command = on_command
        self.voices = set(voices) if voices is not None else None
        self.codec = codec or AvroCodec.from_settings(settings)
        #: each voice's parameters as the changes so far leave them
        self.parameters: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._ends: dict[int, int] = {}

    def start(self) -> None:
        """Assign the topics (KafkaUnavailableError if no broker answers) and follow them."""
        consumer = Consumer(
            {
                **client_config(self.settings, f"{self.settings.app_id}-control-listener"),
                "group.id": f"{self.settings.app_id}-control-listener-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(timeout=_TIMEOUT_SECONDS).topics
            parameters = sorted(metadata[self.topics.parameters].partitions)
            commands = sorted(metadata[self.topics.commands].partitions)
            # (topics made a moment ago, as by `deltaomega run --simulate`, have no
            # leader for a moment: that is waited out, not taken for Kafka being away)
            for p in parameters:
                _, high = watermarks(
                    consumer, TopicPartition(self.topics.parameters, p), _TIMEOUT_SECONDS
                )
                if high > 0:
                    self._ends[p] = high
            # commands from the end as it is now: any sent after start() returns arrive
            command_starts = [
                watermarks(consumer, TopicPartition(self.topics.commands, p), _TIMEOUT_SECONDS)[1]
                for p in commands
            ]
        except (KafkaException, KeyError) as exc:
            consumer.close()
            raise unavailable(self.settings, exc) from exc
        consumer.assign(
            [TopicPartition(self.topics.parameters, p, OFFSET_BEGINNING) for p in parameters]
            + [
                TopicPartition(self.topics.commands, p, start)
                for p, start in zip(commands, command_starts, strict=True)
            ]
        )
        self._consumer = consumer
        if not self._ends:
            self._caught_up.set()
        self._thread = threading.Thread(target=self._follow, name="control-listener", daemon=True)
        self._thread.start()

    def wait_caught_up(self, timeout: float) -> bool:
        """True once the parameters that were on the topic at start have been delivered."""
        return self._caught_up.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> ControlListener:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while not self._stop.is_set():
                message = consumer.poll(_POLL_SECONDS)
                if message is None or message.error() is not None:
                    continue
                try:
                    self._deliver(message.topic() or "", message.value())
                except DecodeError as exc:
                    log.warning("skipping a control record that does not decode: %s", exc)
                except Exception:  # noqa: BLE001 - the callback's failure must not stop us
                    log.exception("a control callback failed")
                if message.topic() == self.topics.parameters:
                    partition, offset = message.partition() or 0, message.offset() or 0
                    if offset + 1 >= self._ends.get(partition, 0):
                        self._ends.pop(partition, None)
                    if not self._ends:
                        self._caught_up.set()
        finally:
            consumer.close()

    def _deliver(self, topic: str, value: bytes | None) -> None:
        if value is None:
            return
        name, record = self.codec.decode(value)
        voice = record["voice_id"]
        if self.voices is not None and voice not in self.voices:
            return
        if topic == self.topics.parameters and name == PARAMETER_CHANGE:
            now = applied(self.parameters.get(voice, DEFAULTS), record)
            self.parameters[voice] = now
            self.on_parameters(voice, now)
        elif topic == self.topics.commands and name == VOICE_COMMAND and self.on_command:
            self.on_command(record)
