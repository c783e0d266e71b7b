"""Pattern classification and emergence detection over a chosen range, on demand.

The worker runs the models once per window as it closes; an analyst looking back at a range
(one the worker ran an older model on, or one replayed since) asks the active model version
here, on the states stored for that range. Each window's history is the stored windows
before it, as in the worker, so a range the worker ran on the same version gives the same
answers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deltaomega.config import Settings
from deltaomega.errors import ModelError, ServiceUnavailableError, ValidationError
from deltaomega.models.features import Tick, tick_from_states
from deltaomega.threads import in_thread

if TYPE_CHECKING:
    from deltaomega.api.deps import ApiContext
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import LoadedVersion, ModelRuntime
from deltaomega.streams.ticks import HISTORY, classify_pattern, detect_emergence

#: Windows of stored history read before the range, so its first window is seen as the
#: worker saw it.
LEAD_WINDOWS = HISTORY - 1
#: Windows one analysis may cover (an hour of 10-second windows), and the stored states it
#: may read: a thousand voices over the whole range.
MAX_ANALYSIS_WINDOWS = 360
MAX_ANALYSIS_ROWS = 2_000_000


@dataclass(frozen=True)
class WindowAnalysis:
    pattern: dict[str, Any]
    emergence: dict[str, Any]


@dataclass(frozen=True)
class RangeAnalysis:
    model_version: str
    windows: list[WindowAnalysis]

    def pattern_counts(self) -> dict[str, int]:
        return dict(Counter(w.pattern["pattern"] for w in self.windows).most_common())

    def changes(self) -> list[tuple[int, str, str]]:
        """(window start, pattern before, pattern from then on) at each change of class."""
        out = []
        for before, after in zip(self.windows, self.windows[1:], strict=False):
            if before.pattern["pattern"] != after.pattern["pattern"]:
                out.append(
                    (
                        after.pattern["window_start"],
                        before.pattern["pattern"],
                        after.pattern["pattern"],
                    )
                )
        return out


class PatternAnalyzer:
    """The active model version, loaded in this process on first use and reloaded when the
    registry's active version changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: ModelRuntime | None = None
        self._lock = threading.Lock()

    def _models(self) -> tuple[ModelRuntime, LoadedVersion]:
        with self._lock:
            if self._runtime is None:
                runtime = ModelRuntime(ModelRegistry(self.settings.resolved_models_dir))
                runtime.start()
                self._runtime = runtime
            else:
                self._runtime.refresh()
            return self._runtime, self._runtime.current

    def analyse(
        self,
        voice_states: Sequence[dict[str, Any]],
        interaction_states: Sequence[dict[str, Any]],
        report_from: int,
    ) -> RangeAnalysis:
        """Blocking (run it in a thread): the models on every stored window, reporting those
        starting at ``report_from`` or later; raises ModelError when no version loads."""
        runtime, models = self._models()
        window_ms = self.settings.window_ms
        windows: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for state in voice_states:
            start = int(state["window_start"]) // window_ms * window_ms
            windows.setdefault(start, ([], []))[0].append(state)
        for link in interaction_states:
            start = int(link["window_start"]) // window_ms * window_ms
            windows.setdefault(start, ([], []))[1].append(link)
        history: deque[Tick] = deque(maxlen=HISTORY)
        now_ms = int(time.time() * 1000)
        threshold = self.settings.alert_emergence_threshold
        out = []
        for start in sorted(windows):
            voices, links = windows[start]
            history.append(tick_from_states(start, voices, links))
            if start < report_from:
                continue
            seen = list(history)
            out.append(
                WindowAnalysis(
                    classify_pattern(runtime, models, seen, now_ms),
                    detect_emergence(runtime, models, seen, threshold, now_ms),
                )
            )
        return RangeAnalysis(models.name, out)


async def analyse_range(ctx: ApiContext, start: int, end: int) -> RangeAnalysis:
    """Every window starting in [start, end) (REST and GraphQL share it); a range too long
    for one request is a ValidationError, a model version that does not load a 503."""
    window_ms = ctx.settings.window_ms
    if start >= end:
        raise ValidationError("start", "must be earlier than 'end'")
    if end - start > MAX_ANALYSIS_WINDOWS * window_ms:
        raise ValidationError("end", f"the range may span at most {MAX_ANALYSIS_WINDOWS} windows")
    first = -(-start // window_ms) * window_ms
    voices, links = await ctx.queries.window_states(
        first - LEAD_WINDOWS * window_ms, end, MAX_ANALYSIS_ROWS
    )
    if len(voices) >= MAX_ANALYSIS_ROWS or len(links) >= MAX_ANALYSIS_ROWS:
        raise ValidationError(
            "end", f"the range holds more than {MAX_ANALYSIS_ROWS} states; choose a shorter one"
        )
    try:
        return await in_thread(ctx.patterns.analyse, voices, links, first)
    except ModelError as exc:
        raise ServiceUnavailableError("models", str(exc), retry_after=30) from exc
