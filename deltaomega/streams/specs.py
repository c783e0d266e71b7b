"""The voice-state and interaction-state streams, as :class:`WindowStreamSpec` values."""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaomega.schemas.records import (
    INTERACTION_KINDS,
    INTERACTION_STATE,
    METRICS,
    STAT_NAMES,
    VOICE_STATE,
    InteractionEventColumns,
    VoiceEventColumns,
)
from deltaomega.streams.progress import Progress
from deltaomega.streams.window_agent import WindowStreamSpec
from deltaomega.streams.windows import ClosedWindows

_PAIR_SEP = "\x1e"


def _stat_fields(closed: ClosedWindows, row: int, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for j, metric in enumerate(names):
        for stat in STAT_NAMES:
            out[f"{metric}_{stat}"] = float(getattr(closed, stat)[row, j])
    return out


def _voice_rows(cols: VoiceEventColumns) -> tuple[list[str], np.ndarray, np.ndarray]:
    return cols.voice_id, cols.ts, cols.metrics


def _voice_states(closed: ClosedWindows) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for row, voice_id in enumerate(closed.keys):
        record: dict[str, Any] = {
            "window_start": int(closed.start[row]),
            "window_end": int(closed.end[row]),
            "voice_id": voice_id,
            "count": int(closed.count[row]),
        }
        record.update(_stat_fields(closed, row, METRICS))
        out.append((voice_id.encode(), record))
    return out


def _count_voices(progress: Progress, cols: VoiceEventColumns) -> None:
    progress.events += len(cols)
    progress.voices.update(cols.voice_id)


def _interaction_rows(cols: InteractionEventColumns) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = [
        f"{s}{_PAIR_SEP}{t}{_PAIR_SEP}{k}"
        for s, t, k in zip(cols.source, cols.target, cols.kind.tolist(), strict=True)
    ]
    return keys, cols.ts, cols.strength.reshape(-1, 1)


def _interaction_states(closed: ClosedWindows) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for row, key in enumerate(closed.keys):
        source, target, kind = key.split(_PAIR_SEP)
        record: dict[str, Any] = {
            "window_start": int(closed.start[row]),
            "window_end": int(closed.end[row]),
            "source": source,
            "target": target,
            "kind": INTERACTION_KINDS[int(kind)],
            "count": int(closed.count[row]),
        }
        record.update(_stat_fields(closed, row, ("strength",)))
        out.append((source.encode(), record))
    return out


def _count_interactions(progress: Progress, cols: InteractionEventColumns) -> None:
    progress.interactions += len(cols)


VOICE_SPEC = WindowStreamSpec(
    name="voice",
    state_schema=VOICE_STATE,
    decode=lambda codec, values: codec.decode_voice_events(values),
    rows=_voice_rows,
    states=_voice_states,
    insert_raw=lambda sink, cols, p, o: sink.insert_voice_events(cols, p, o),
    count_progress=_count_voices,
)

INTERACTION_SPEC = WindowStreamSpec(
    name="interaction",
    state_schema=INTERACTION_STATE,
    decode=lambda codec, values: codec.decode_interactions(values),
    rows=_interaction_rows,
    states=_interaction_states,
    insert_raw=lambda sink, cols, p, o: sink.insert_interaction_events(cols, p, o),
    count_progress=_count_interactions,
)
