"""Drive :class:`VoiceDynamics` into Kafka, paced to the wall clock or as fast as possible."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from deltaomega.config import Settings
from deltaomega.errors import ServiceUnavailableError
from deltaomega.producer.control_listener import ControlListener
from deltaomega.producer.episodes import Scenario, write_episodes
from deltaomega.producer.simulator import SimulationConfig, VoiceDynamics
from deltaomega.producer.voice_producer import VoiceProducer

log = logging.getLogger(__name__)


@dataclass
class SimulationSummary:
    voice_events: int = 0
    interactions: int = 0
    episodes: int = 0
    ticks: int = 0
    delivered: int = 0
    failed: int = 0


@contextlib.contextmanager
def _stopped_after(listener: ControlListener | None) -> Iterator[None]:
    try:
        yield
    finally:
        if listener is not None:
            listener.stop()


def run_simulation(
    settings: Settings,
    config: SimulationConfig,
    duration: float | None,
    *,
    realtime: bool = True,
    speed: float = 1.0,
    batch_size: int = 1,
    tick_seconds: float = 0.1,
    start_ms: int | None = None,
    stop: threading.Event | None = None,
    progress_every: float = 5.0,
    labels: IO[str] | None = None,
    scenario: Scenario | None = None,
    control: bool = False,
) -> SimulationSummary:
    """Publish the simulation for ``duration`` simulated seconds (None: until ``stop``).

    ``realtime`` sleeps so event time tracks the wall clock (the live demo), ``speed``
    simulated seconds per wall-clock second (fast-forward); otherwise ticks run back to
    back and event times advance from ``start_ms`` (reproducible data).
    ``labels`` receives each episode (JSON Lines) as soon as it begins; ``scenario``
    replaces the seed's random episodes (e.g. :meth:`Scenario.fixed`).
    """
    if start_ms is None:
        start_ms = int(time.time() * 1000)
    dynamics = VoiceDynamics(config, start_ms, scenario)
    listener = None
    if control:  # operators' parameter changes reach the simulated voices
        listener = ControlListener(settings, dynamics.set_parameters, voices=dynamics.voice_ids)
        try:
            listener.start()
        except ServiceUnavailableError as exc:
            log.warning("simulating without operators' parameters: %s", exc)
            listener = None
    summary = SimulationSummary()
    ticks = None if duration is None else max(1, round(duration / tick_seconds))
    wall_start = time.monotonic()
    next_report = wall_start + progress_every
    with VoiceProducer(settings, batch_size=batch_size) as producer, _stopped_after(listener):
        while ticks is None or summary.ticks < ticks:
            if stop is not None and stop.is_set():
                break
            voice_events, interactions = dynamics.tick(tick_seconds)
            for event in voice_events:
                producer.send_voice_event(event)
            for interaction in interactions:
                producer.send_interaction(interaction)
            producer.flush_batches()
            if dynamics.scenario is not None:
                begun = dynamics.scenario.begun(dynamics.now_ms)[summary.episodes :]
                if labels is not None:
                    write_episodes(begun, labels)
                summary.episodes += len(begun)
            summary.ticks += 1
            summary.voice_events += len(voice_events)
            summary.interactions += len(interactions)
            now = time.monotonic()
            if now >= next_report:
                elapsed = now - wall_start
                log.info(
                    "simulated %d voice events and %d interactions in %.0fs (%.0f events/s)",
                    summary.voice_events,
                    summary.interactions,
                    elapsed,
                    (summary.voice_events + summary.interactions) / elapsed,
                )
                next_report = now + progress_every
            if realtime:
                lag = wall_start + summary.ticks * tick_seconds / speed - time.monotonic()
                if lag > 0:
                    if stop is not None:
                        stop.wait(lag)
                    else:
                        time.sleep(lag)
    summary.delivered = producer.stats.delivered
    summary.failed = producer.stats.failed
    return summary
