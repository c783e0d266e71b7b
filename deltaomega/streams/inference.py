"""When to run a tick: closed-window states in, one tick per window to the model process.

The state sinks hand every VoiceState and InteractionState they consume to
:meth:`InferenceEngine.add_states`, which only files them under their window and returns.
A tick (one closed window of the whole system) runs when the window is complete: at
once when every partition of both state topics has delivered a newer window (states of
one partition come in window order), otherwise — a partition with nothing newer to say,
or none at all — for a live window ``inference_settle_seconds`` after its last state
arrived (``_DRAINED_QUIET_SECONDS`` when the state feed has read every partition up to
the end the broker reports and every partition has delivered some window before: a
worker publishes a partition's window at once, so a partition quiet that long with
nothing left in its topic has delivered it), but while a
partition that delivered the window before has not delivered this one (its consumer is
behind: at 10,000 voices the voice states may come seconds after the
interaction states; a worker died and another is restoring its partitions' windows), up to
the catch-up time after its first: ``_CATCH_UP_SECONDS`` plus the consumer session timeout,
as a dead worker's partitions say nothing until the group has noticed it is gone; and for
an old window (replay, where partitions race each other) ``_CATCH_UP_SECONDS`` after its
first state.
Ticks run in window order in the model process (:mod:`deltaomega.streams.model_process`),
so consumption never waits on a model, and the models never wait on consumption. States
that arrive after their tick ran are counted (``deltaomega_late_states_total``) and
otherwise ignored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from deltaomega.config import Settings
from deltaomega.errors import ModelError
from deltaomega.metrics import LATE_STATES, MODEL_PROCESS_RESTARTS
from deltaomega.schemas.records import INTERACTION_STATE, VOICE_STATE
from deltaomega.streams.model_process import ModelProcess
from deltaomega.streams.state_feed import Recent as RecentStates
from deltaomega.streams.ticks import HISTORY, ClosedWindow
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

_CATCH_UP_SECONDS = 15.0
#: A live window's wait after its last state while the feed has read the topics to their end.
_DRAINED_QUIET_SECONDS = 0.2
#: Pause before a dead model process is replaced (it may have died for want of memory).
RESPAWN_SECONDS = 2.0

#: → (newest window the models ran on, or None; voice states and interaction states of the
#: windows from HISTORY − 1 windows before it on; newest window per (state schema,
#: partition)), read back at start (:meth:`deltaomega.streams.state_feed.StateFeed.recent`).
Recent = Callable[[int], RecentStates]


@dataclass
class _Pending:
    first_seen: float
    last_seen: float
    voices: dict[str, dict[str, Any]] = field(default_factory=dict)
    interactions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def closed(self, start: int) -> ClosedWindow:
        return ClosedWindow(start, self.voices, list(self.interactions.values()))


class InferenceEngine:
    def __init__(
        self,
        settings: Settings,
        recent: Recent | None = None,
        models: ModelProcess | None = None,
        on_tick: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.recent = recent
        #: called after each tick whose outputs were delivered (records where to resume)
        self.on_tick = on_tick
        self.models = models or ModelProcess(settings)
        self.window_ms = settings.window_ms
        self.catch_up = _CATCH_UP_SECONDS + settings.consumer_session_timeout_seconds
        self._pending: dict[int, _Pending] = {}
        #: Newest window seen per (state schema, partition).
        self._newest: dict[tuple[str, int], int] = {}
        self._sources = [
            (schema, p)
            for schema in (VOICE_STATE, INTERACTION_STATE)
            for p in range(settings.partitions)
        ]
        #: Newest window handed to the model process, and newest whose tick is over.
        self._done_until = self._ran_until = -1
        self._wake = asyncio.Event()
        self._drained = False
        self.disabled = False

    # ------------------------------------------------------------ input side (event loop)

    def add_states(
        self, schema: str, records: Sequence[dict[str, Any]], partitions: Sequence[int]
    ) -> None:
        if self.disabled:
            return
        now = time.monotonic()
        late = 0
        for record, partition in zip(records, partitions, strict=True):
            start = int(record["window_start"]) // self.window_ms * self.window_ms
            source = (schema, partition)
            self._newest[source] = max(self._newest.get(source, -1), start)
            if start <= self._done_until:
                late += 1
                continue
            pending = self._pending.get(start)
            if pending is None:
                pending = self._pending[start] = _Pending(now, now)
            pending.last_seen = now
            _file(pending, schema, record)
        if late:
            LATE_STATES.inc(late)
        if records:
            self._wake.set()

    def drained(self, drained: bool) -> None:
        """The state feed has (or has not) read every partition to its end."""
        if drained and not self._drained:
            self._wake.set()
        self._drained = drained

    def _ready(self, now: float) -> tuple[list[int], float | None]:
        """Windows ready to run now (in order), and seconds until the next one may be."""
        ready: list[int] = []
        settle = self.settings.inference_settle_seconds
        for start in sorted(self._pending):
            newest = [self._newest.get(source, -1) for source in self._sources]
            if all(n > start for n in newest):
                ready.append(start)
                continue
            pending = self._pending[start]
            live = time.time() * 1000 - (start + self.window_ms) < 3 * self.window_ms
            if not live:
                limit, waited = max(settle, _CATCH_UP_SECONDS), now - pending.first_seen
            elif behind := [
                source
                for source, n in zip(self._sources, newest, strict=True)
                if n == start - self.window_ms
            ]:
                # A partition that delivered the window before but not this one yet is
                # behind (a busy consumer, a worker restoring a dead one's windows): its
                # states are on their way.
                limit, waited = self.catch_up, now - pending.first_seen
                if waited >= limit:
                    log.warning(
                        "tick %d runs without %s: no states from them after %.0f s",
                        start,
                        ", ".join(f"{schema}[{p}]" for schema, p in behind),
                        waited,
                    )
            else:
                # Read to the end is a sign only from partitions heard from before: one
                # that has said nothing yet may have a worker that is still starting.
                heard = -1 not in newest
                quiet = min(settle, _DRAINED_QUIET_SECONDS) if self._drained and heard else settle
                limit, waited = quiet, now - pending.last_seen
            if waited >= limit:
                ready.append(start)
            else:
                return ready, limit - waited
        return ready, None

    def restore(
        self,
        last: int | None,
        voice_states: Sequence[dict[str, Any]],
        interaction_states: Sequence[dict[str, Any]],
        newest: Mapping[tuple[str, int], int] | None = None,
    ) -> list[ClosedWindow]:
        """The history up to the last completed tick, in order; later stored windows still
        run.

        Windows at or before ``last`` are history (and states redelivered for them are
        late); windows after it had their states stored but their tick never ran before
        the worker stopped, so they are filed as pending; with no completed tick (``last``
        None) every window read is still to run. After a model process died,
        windows whose ticks ran in it are history as well, even if their outputs are not
        stored yet, and the window it died on is left to the retry, which has its states.
        ``newest`` (how far each state partition had got) tells a partition that is behind
        from one that has nothing to say: after a worker died, its partitions' states stop
        until another worker restores their windows, and a tick must wait for them.
        """
        for source, window in (newest or {}).items():
            self._newest[source] = max(self._newest.get(source, -1), window)
        last = max(-1 if last is None else last, self._ran_until)
        now = time.monotonic()
        windows: dict[int, _Pending] = {}
        stored = ((VOICE_STATE, voice_states), (INTERACTION_STATE, interaction_states))
        for schema, records in stored:
            for record in records:
                start = int(record["window_start"]) // self.window_ms * self.window_ms
                _file(windows.setdefault(start, _Pending(now, now)), schema, record)
        # States that arrived while the models loaded: those of finished ticks are late,
        # the rest join what storage holds for their window.
        for start in [s for s in self._pending if s <= last]:
            del self._pending[start]
        history = []
        for start in sorted(windows):
            pending = windows[start]
            if start <= last:
                history.append(pending.closed(start))
            elif start <= self._done_until:
                continue
            elif start in self._pending:
                arrived = self._pending[start]
                arrived.voices = pending.voices | arrived.voices
                arrived.interactions = pending.interactions | arrived.interactions
            else:
                self._pending[start] = pending
        self._done_until = max(self._done_until, last)
        log.info(
            "restored %d windows of history up to %d; %d stored windows still to run",
            len(history),
            last,
            len(self._pending),
        )
        return history

    def status(self) -> dict[str, str]:
        """Readiness of inference: models serving, starting, or off (which is no failure:
        the stream goes on without them)."""
        if self.disabled:
            return {"inference": "ok (off: no usable model version)"}
        if self.models.version is None:
            return {"inference": "starting the model process"}
        return {"inference": "ok"}

    # ------------------------------------------------------------ the loop

    async def _start_models(self) -> bool:
        """Start the model process and give it its history; False turns inference off."""
        try:
            await self.models.start()
        except (ModelError, BrokenProcessPool) as exc:
            # The stream itself must go on: states and raw events do not need the models.
            log.error("inference is off, no usable model version: %s", exc)
            self.models.close()
            self.disabled = True
            self._pending.clear()
            return False
        if self.recent is not None:
            delay = 0.5
            while True:
                # Without knowing where the last tick left off, the models would run the
                # wrong windows: wait for the state topics rather than guess.
                try:
                    last, voices, links, newest = await in_thread(self.recent, HISTORY)
                    break
                except Exception as exc:  # noqa: BLE001 - Kafka away, a timeout: retried
                    log.warning("could not read the last ticks back (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            await self.models.restore(self.restore(last, voices, links, newest))
        return True

    async def _replace_models(self, when: str) -> bool:
        log.error("the model process died %s; starting another", when)
        MODEL_PROCESS_RESTARTS.inc()
        await asyncio.sleep(RESPAWN_SECONDS)
        return await self._start_models()

    async def _tick(self, window: ClosedWindow) -> bool:
        """One tick, retried once in a new process if the process dies on it; False when
        inference had to be turned off."""
        for attempt in (1, 2):
            try:
                report = await self.models.tick(window)
                if self.on_tick is not None and report.undelivered is None:
                    await self.on_tick(window.start)
                return True
            except BrokenProcessPool:
                # Killed (out of memory, say): a new one rebuilds its history from storage
                # and from the windows that ran, and runs this one again.
                if not await self._replace_models(f"in tick {window.start} (attempt {attempt})"):
                    return False
            except Exception:  # noqa: BLE001 - one bad tick must not stop inference
                log.exception("tick %d failed", window.start)
                return True
        log.error("tick %d skipped: the model process died on it twice", window.start)
        return True

    async def run(self) -> None:
        """Run ticks until cancelled."""
        if not await self._start_models():
            return
        next_poll = time.monotonic() + self.settings.models_poll_seconds
        try:
            while True:
                # Cleared before looking, not after: states that come while a tick or a
                # refresh is awaited below set it again, and the wait ends at once. (Cleared
                # after, such a window waited for the next registry poll, 2 s by default.)
                self._wake.clear()
                looked = time.monotonic()
                ready, wait = self._ready(looked)
                for start in ready:
                    window = self._pending.pop(start).closed(start)
                    self._done_until = start
                    if not await self._tick(window):
                        return
                    self._ran_until = start
                now = time.monotonic()
                if now >= next_poll:
                    try:
                        await self.models.refresh()
                    except BrokenProcessPool:
                        if not await self._replace_models("between ticks"):
                            return
                    except Exception:  # noqa: BLE001 - e.g. a hand-edited active.json
                        log.exception("could not check the model registry")
                    next_poll = now + self.settings.models_poll_seconds
                # a deadline: the ticks and the refresh above took some of the wait
                due = looked + wait if wait is not None else math.inf
                timeout = min(due, next_poll) - time.monotonic()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, timeout))
                except TimeoutError:
                    pass
        finally:
            await asyncio.shield(self.models.stop())


def _file(pending: _Pending, schema: str, record: dict[str, Any]) -> None:
    if schema == INTERACTION_STATE:
        key = (str(record["source"]), str(record["target"]), str(record["kind"]))
        pending.interactions[key] = record
    else:
        pending.voices[str(record["voice_id"])] = record
