"""The models in a process of their own, which also publishes what they produce.

A tick at 10,000 voices is about half a second of Python (features, output records, alert
rules) between many short numpy and onnxruntime calls that release the GIL. On a thread of
the worker's process each release handed the GIL to the busy consumers, and getting it back
took up to a switch interval: a 0.7 s tick took 6 s at 50,000 events/s. A spawned process
gives the tick an interpreter of its own; it encodes and sends its output records through
its own producer, so those are off the worker's event loop too, and reports back only
counts and timings, which the worker turns into its metrics.

The functions prefixed ``_`` run in the child; :class:`ModelProcess` is the worker's handle.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deltaomega.children import bind_to_parent, log_like_parent, logging_options
from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.metrics import MODEL_OUTPUTS, TICK_SECONDS, TICKS
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime, mark_serving, observe_call
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    PATTERN,
    PREDICTION,
    PREDICTION_SCORE,
)
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.ticks import ClosedWindow, TickRunner, warm_up_sizes, warm_up_ticks
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")


def output_topics(topics: Topics) -> dict[str, str]:
    """Model output schema → its topic."""
    return {
        PREDICTION: topics.predictions,
        CONFLICT_PREDICTION: topics.conflicts,
        EMERGENCE: topics.emergence,
        PATTERN: topics.patterns,
        ALERT: topics.alerts,
        PREDICTION_SCORE: topics.prediction_scores,
    }


@dataclass
class TickReport:
    """What a tick did, for the worker's metrics."""

    window_start: int
    seconds: float
    #: CPU time of the model process in the tick: below ``seconds`` when it had to wait
    #: for a core.
    cpu_seconds: float
    version: str
    #: output kind (the schema's last name) → records sent
    outputs: dict[str, int] = field(default_factory=dict)
    #: (model, seconds, rows) per batched call
    calls: list[tuple[str, float, int]] = field(default_factory=list)
    undelivered: str | None = None

    @property
    def model_seconds(self) -> float:
        return sum(seconds for _, seconds, _ in self.calls)


# ------------------------------------------------------------------ the child's side


@dataclass
class _Models:
    runner: TickRunner
    codec: AvroCodec
    outputs: BatchOutputs
    #: output schema → send to its topic
    emit: dict[str, Callable[..., None]]
    calls: list[tuple[str, float, int]]


_models: _Models | None = None


def _loaded() -> _Models:
    if _models is None:
        raise RuntimeError("the model process has not been started")
    return _models


def _start(settings: Settings, logging_options: tuple[int, bool]) -> str:
    """Load the active version (a ModelError goes back to the worker); its name."""
    global _models
    log_like_parent(logging_options)
    calls: list[tuple[str, float, int]] = []
    runtime = ModelRuntime(
        ModelRegistry(settings.resolved_models_dir),
        settings.inference_threads,
        observe=lambda model, seconds, rows: calls.append((model, seconds, rows)),
        warm_up=warm_up_sizes(settings),
    )
    loaded = runtime.start()
    warm_up_ticks(settings, runtime)
    calls.clear()
    outputs = BatchOutputs(settings, "models")
    _models = _Models(
        TickRunner(settings, runtime),
        AvroCodec.from_settings(settings),
        outputs,
        {
            schema: outputs.emit_to(topic)
            for schema, topic in output_topics(Topics.from_settings(settings)).items()
        },
        calls,
    )
    gc.freeze()  # what is loaded now stays: later collections need not look at it
    return loaded.name


def _restore(windows: Sequence[ClosedWindow]) -> int:
    models = _loaded()
    models.runner.restore(windows)
    return len(models.runner.history)


def _tick(window: ClosedWindow) -> TickReport:
    models = _loaded()
    models.calls.clear()
    started, cpu = time.perf_counter(), time.process_time()
    outputs = models.runner.run_tick(window)
    report = TickReport(
        window.start,
        time.perf_counter() - started,
        time.process_time() - cpu,
        models.runner.runtime.current.name,
    )
    records = outputs.records()
    for schema, key, record in records:
        models.emit[schema](key, models.codec.encode(schema, record, validate=False))
    for schema, count in Counter(schema for schema, _, _ in records).items():
        report.outputs[schema.rsplit(".", 1)[-1]] = count
    try:
        models.outputs.flush()
    except DeliveryError as exc:
        report.undelivered = str(exc)
    report.calls = list(models.calls)
    return report


def _refresh() -> str:
    models = _loaded()
    models.runner.runtime.refresh()
    return models.runner.runtime.current.name


def _close() -> None:
    if _models is not None:
        _models.outputs.close()


# ------------------------------------------------------------------ the worker's side


class ModelProcess:
    """One spawned process holding the models, the tick history and an output producer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor: ProcessPoolExecutor | None = None
        self.version: str | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the model process is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _serving(self, version: str) -> None:
        if version != self.version:
            mark_serving(self.version, version)
            self.version = version

    async def start(self) -> str:
        """Spawn the process and load the active version (raises ModelError if none fits)."""
        self.close()
        self._executor = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=bind_to_parent,
            initargs=(os.getpid(),),
        )
        version = await self._call(_start, self.settings, logging_options())
        self._serving(version)
        return version

    async def restore(self, windows: Sequence[ClosedWindow]) -> int:
        """Replay closed windows into the history; how many windows it now holds."""
        return await self._call(_restore, list(windows))

    async def tick(self, window: ClosedWindow) -> TickReport:
        report = await self._call(_tick, window)
        self._serving(report.version)
        for model, seconds, rows in report.calls:
            observe_call(model, seconds, rows)
        for kind, count in report.outputs.items():
            MODEL_OUTPUTS.labels(kind).inc(count)
        TICKS.inc()
        TICK_SECONDS.observe(report.seconds)
        log.info(
            "tick %d: %d voices, %d links, %.3f s (%.3f s of CPU, %.3f s in model calls), "
            "%d records",
            window.start,
            len(window.voices),
            len(window.interactions),
            report.seconds,
            report.cpu_seconds,
            report.model_seconds,
            sum(report.outputs.values()),
        )
        if report.undelivered is not None:
            log.error("tick %d: outputs not delivered: %s", window.start, report.undelivered)
        return report

    async def refresh(self) -> None:
        """Swap in a newly activated version, if there is one."""
        self._serving(await self._call(_refresh))

    async def stop(self) -> None:
        """Flush the producer and let the process end."""
        if self._executor is not None:
            try:
                await self._call(_close)
            except BrokenProcessPool:
                log.warning("the model process was gone before it could flush")
            finally:
                self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
