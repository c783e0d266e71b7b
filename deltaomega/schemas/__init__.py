"""The Avro contract (bundled .avsc files), the codec and the typed records."""

from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    INTERACTION_EVENT,
    INTERACTION_KINDS,
    INTERACTION_STATE,
    METRICS,
    VOICE_EVENT,
    VOICE_EVENT_BATCH,
    VOICE_STATE,
    InteractionEvent,
    VoiceEvent,
)

__all__ = [
    "INTERACTION_EVENT",
    "INTERACTION_KINDS",
    "INTERACTION_STATE",
    "METRICS",
    "VOICE_EVENT",
    "VOICE_EVENT_BATCH",
    "VOICE_STATE",
    "AvroCodec",
    "InteractionEvent",
    "VoiceEvent",
]
