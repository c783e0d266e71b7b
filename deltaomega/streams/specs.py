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
    dictionary_codes,
)
from deltaomega.streams.progress import Progress
from deltaomega.streams.window_agent import WindowRows, WindowStreamSpec
from deltaomega.streams.windows import ClosedWindows

_PAIR_SEP = "\x1e"


def _stat_fields(closed: ClosedWindows, row: int, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for j, metric in enumerate(names):
        for stat in STAT_NAMES:
            out[f"{metric}_{stat}"] = float(getattr(closed, stat)[row, j])
    return out


def _voice_rows(cols: VoiceEventColumns) -> WindowRows:
    codes, names = dictionary_codes(cols.voice_id)
    return WindowRows(codes, names, cols.ts, cols.metrics)


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


def _count_voices(progress: Progress, rows: WindowRows) -> None:
    progress.events += len(rows.ts)
    progress.voices.update(rows.names)


def _interaction_rows(cols: InteractionEventColumns) -> WindowRows:
    source, sources = dictionary_codes(cols.source)
    target, targets = dictionary_codes(cols.target)
    kinds = len(INTERACTION_KINDS)
    pair = (source * len(targets) + target) * kinds + cols.kind
    distinct, codes = np.unique(pair, return_inverse=True)
    names = [
        f"{sources[p // kinds // len(targets)]}{_PAIR_SEP}{targets[p // kinds % len(targets)]}"
        f"{_PAIR_SEP}{p % kinds}"
        for p in distinct.tolist()
    ]
    return WindowRows(codes.astype(np.int64, copy=False), names, cols.ts, cols.strength[:, None])


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


def _count_interactions(progress: Progress, rows: WindowRows) -> None:
    progress.interactions += len(rows.ts)


VOICE_SPEC = WindowStreamSpec(
    name="voice",
    state_schema=VOICE_STATE,
    decode=lambda codec, values: codec.decode_voice_events(values),
    rows=_voice_rows,
    states=_voice_states,
    insert_raw=lambda sink, cols, p, o, token: sink.insert_voice_events(cols, p, o, token),
    count_progress=_count_voices,
)

INTERACTION_SPEC = WindowStreamSpec(
    name="interaction",
    state_schema=INTERACTION_STATE,
    decode=lambda codec, values: codec.decode_interactions(values),
    rows=_interaction_rows,
    states=_interaction_states,
    insert_raw=lambda sink, cols, p, o, token: sink.insert_interaction_events(cols, p, o, token),
    count_progress=_count_interactions,
)
