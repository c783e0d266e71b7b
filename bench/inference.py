"""Inference on this CPU: per model, rows/s and latency at batch 1 and at a tick's batch;
and a whole tick (features, four models, alert rules) at several system sizes.

    .venv/bin/python -m bench.inference [--voices 8 64 1000 10000] [--repeats 50]

Uses the active (by default the shipped) model version and onnxruntime's CPU provider
(CUDA first where present), one intra-op thread as the worker does.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench._common import emit
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.models.features import (
    Tick,
    conflict_graphs,
    pattern_input,
    predictor_input,
    system_vector,
    tick_from_states,
)
from deltaomega.models.registry import ModelRegistry
from deltaomega.models.runtime import ModelRuntime
from deltaomega.streams.ticks import HISTORY, ClosedWindow, TickRunner, synthetic_windows

WINDOW = 10_000


def synthetic_history(voices: int, seed: int) -> list[ClosedWindow]:
    """HISTORY windows of a random system (the one the model process warms up on)."""
    return synthetic_windows(voices, HISTORY, WINDOW, seed)


def as_ticks(windows: list[ClosedWindow]) -> list[Tick]:
    return [tick_from_states(w.start, list(w.voices.values()), w.interactions) for w in windows]


def timed(fn: Any, repeats: int) -> tuple[float, float]:
    """(median, p99) seconds over ``repeats`` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voices", type=int, nargs="+", default=[8, 64, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        runtime = ModelRuntime(
            ModelRegistry(settings.resolved_models_dir), settings.inference_threads
        )
        loaded = runtime.start()
        print(
            f"# inference: model version {loaded.name}, onnxruntime {ort.__version__}, "
            f"providers {runtime.providers}, {platform.processor() or platform.machine()}"
        )
        print("| model | voices | rows per call | median ms | p99 ms | rows/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for voices in args.voices:
            history = as_ticks(synthetic_history(voices, seed=voices))
            nodes, edges, mask, _, _ = conflict_graphs(history, settings.conflict_max_graph_voices)
            calls = {
                "voice_state_predictor": {"history": predictor_input(history)},
                "conflict_predictor": {"nodes": nodes, "edges": edges, "mask": mask},
                "emergence_detector": {"system": system_vector(history)[None]},
                "pattern_classifier": {"matrices": pattern_input(history)[None]},
            }
            for name, feeds in calls.items():
                if name == "conflict_predictor":
                    rows = int(mask.sum())
                    batch_one = {k: v[:1] for k, v in feeds.items()}
                    one_rows = int(mask[:1].sum())
                else:
                    rows = next(iter(feeds.values())).shape[0]
                    batch_one = {k: v[:1] for k, v in feeds.items()}
                    one_rows = 1
                for label, feed, count in (("1", batch_one, one_rows), ("tick", feeds, rows)):
                    if label == "1" and voices != args.voices[0]:
                        continue
                    median, p99 = timed(lambda f=feed, n=name: runtime.run(n, f), args.repeats)
                    shape = f"{count} ({label})"
                    print(
                        f"| {name} | {voices} | {shape} | {median * 1e3:.3f} | {p99 * 1e3:.3f} "
                        f"| {count / median:,.0f} |"
                    )
        print()
        print("| whole tick (features + 4 models + alerts) | voices | median ms | p99 ms |")
        print("| --- | --- | --- | --- |")
        for voices in args.voices:
            runner = TickRunner(settings, runtime)
            windows = synthetic_history(voices, seed=voices)
            for window in windows[:-1]:
                runner.run_tick(window)
            repeats = max(3, args.repeats // (1 if voices <= 64 else 10))
            tick = functools.partial(runner.run_tick, windows[-1])
            median, p99 = timed(tick, repeats)
            print(f"| run_tick | {voices} | {median * 1e3:.1f} | {p99 * 1e3:.1f} |")
            emit(bench="tick", voices=voices, median_ms=median * 1e3, p99_ms=p99 * 1e3)


if __name__ == "__main__":
    main()
