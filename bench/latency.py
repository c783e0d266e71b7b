"""Latency at a steady produce rate: window close → state on the SSE feed, and event → raw
row in ClickHouse, p50 / p99; with the worker's peak RSS.

    .venv/bin/python -m bench.latency [--rate 10000] [--seconds 60] [--voices 64]
    .venv/bin/python -m bench.latency --seconds 300      # the soak: RSS at minute 1 vs the end
    .venv/bin/python -m bench.latency --rate 50000 --voices 10000 --interactions 5000

Runs the worker and the API in this process (as `deltaomega run` does) against the local
broker. Events carry the wall clock as their event time, so a window [s, e) closes when
the first event at e + grace arrives; the close → SSE latency is the time the state is
read off the feed minus e + grace. Event → row is ClickHouse's ``ingested_at`` minus the
event time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from bench._common import (
    batch_seconds,
    bench_event,
    drop_topics_at_exit,
    emit,
    local_broker,
    percentile,
)
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.metrics import TICK_SECONDS
from deltaomega.producer import VoiceProducer
from deltaomega.schemas.records import INTERACTION_KINDS
from deltaomega.service import build_app
from deltaomega.sinks.clickhouse import connect

LINKS_PER_VOICE = 3


def produce(settings: Settings, rate: int, seconds: float, voices: int, interactions: int) -> int:
    """Single-event records at ``rate``/s, in 10 ms steps, event time = wall clock; and
    ``interactions``/s over a fixed graph of LINKS_PER_VOICE random links per voice."""
    step = 0.01
    per_step = max(1, round(rate * step))
    links_per_step = round(interactions * step)
    rng = np.random.default_rng(0)
    source = np.repeat(np.arange(voices), LINKS_PER_VOICE)
    target = (source + rng.integers(1, voices, len(source))) % voices
    kind = rng.integers(0, len(INTERACTION_KINDS), len(source))
    sent = steps = links = 0
    with VoiceProducer(settings) as producer:
        begin = time.monotonic()
        while time.monotonic() - begin < seconds:
            now_ms = int(time.time() * 1000)
            for _ in range(per_step):
                producer.send_voice_event(bench_event(sent, voices, now_ms))
                sent += 1
            for _ in range(links_per_step):
                i = links % len(source)
                producer.send_interaction(
                    {
                        "event_id": f"l-{links}",
                        "ts": now_ms,
                        "source": f"voice-{source[i]:05d}",
                        "target": f"voice-{target[i]:05d}",
                        "kind": INTERACTION_KINDS[kind[i]],
                        "strength": 0.2 + 0.7 * (links % 7) / 6,
                        "context": {},
                    }
                )
                links += 1
            steps += 1
            lag = begin + steps * step - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    return sent


def read_sse(url: str, grace_ms: int, connected: Any, stop: Any, out: Any) -> None:
    """In a process of its own (a client's parsing must not take the worker's GIL): the
    close → SSE latency of every state, put on ``out`` once ``stop`` is set."""
    latencies: list[float] = []
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=30.0)) as response:
            connected.set()
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data:"):
                    state = json.loads(line[5:])
                    end = state["window_end"].replace("Z", "+00:00")
                    closes = datetime.fromisoformat(end).timestamp() + grace_ms / 1000
                    latencies.append(time.time() - closes)
    finally:
        out.put(latencies)


def rss_mib(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def spawned_children() -> list[int]:
    """This process's spawned child processes (the worker's model process, once started)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
    return pids


def sample_rss(
    stop: threading.Event, models: list[int], out: list[tuple[float, float, float]]
) -> None:
    """(seconds, worker RSS, model process RSS) every second."""
    begin = time.monotonic()
    while not stop.wait(1.0):
        model_rss = sum(rss_mib(pid) for pid in models)
        out.append((time.monotonic() - begin, rss_mib(), model_rss))


def tick_summary() -> tuple[int, float, float]:
    """(ticks run, mean seconds, the histogram bound all of them stayed under)."""
    samples = [s for metric in TICK_SECONDS.collect() for s in metric.samples]
    count = next((int(s.value) for s in samples if s.name.endswith("_count")), 0)
    total = next((s.value for s in samples if s.name.endswith("_sum")), 0.0)
    bounds = [
        float(s.labels["le"])
        for s in samples
        if s.name.endswith("_bucket") and int(s.value) == count
    ]
    return count, total / max(1, count), min(bounds, default=math.inf)


def stage_seconds() -> str:
    """Seconds the window consumers spent per stage (their batches, summed)."""
    sums, _ = batch_seconds()
    return ", ".join(f"{stream} {stage} {value:.1f}" for (stream, stage), value in sums.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--voices", type=int, default=64)
    parser.add_argument(
        "--interactions", type=int, default=0, help="interaction events/s besides --rate"
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    logging.getLogger("deltaomega.streams.model_process").setLevel(logging.INFO)  # tick lines
    # The embedded ClickHouse may still be merging parts in there as the directory goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=local_broker(),
            topic_prefix=f"latency{tag}.",
            app_id=f"latency-{tag}",
            data_dir=Path(tmp),
            grace_seconds=1.0,
            inference_warm_up_voices=args.voices,
        )
        drop_topics_at_exit(settings)
        clickhouse = connect(settings)
        app = build_app(settings, clickhouse)
        port = 8765
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        models: list[int] = []
        for _ in range(150):  # the model process, before the reader's and the producer's
            models = spawned_children()
            if models:
                break
            time.sleep(0.2)
        spawn = multiprocessing.get_context("spawn")
        connected, stop_reading, latencies_out = spawn.Event(), spawn.Event(), spawn.Queue()
        reader = spawn.Process(
            target=read_sse,
            args=(
                f"{base}/api/v1/stream/voice-states",
                settings.grace_ms,
                connected,
                stop_reading,
                latencies_out,
            ),
        )
        reader.start()
        connected.wait(60)
        time.sleep(1.0)
        stop = threading.Event()
        rss: list[tuple[float, float, float]] = []
        sampler = threading.Thread(target=sample_rss, args=(stop, models, rss), daemon=True)
        sampler.start()
        # The producer runs in its own process, as producers do, so it does not share
        # the worker's interpreter.
        with spawn.Pool(1) as pool:
            sent = pool.apply(
                produce, (settings, args.rate, args.seconds, args.voices, args.interactions)
            )
        time.sleep(5.0)
        stop.set()
        stop_reading.set()
        latencies: list[float] = latencies_out.get(timeout=60)
        reader.join(timeout=30)
        db = settings.clickhouse_database
        result = clickhouse.call(
            lambda c: c.query(
                "SELECT count(), quantiles(0.5, 0.99)(dateDiff('millisecond', ts, ingested_at)) "
                f"FROM {db}.voice_events"
            )
        )
        rows, (row_p50, row_p99) = result.result_rows[0]
        closed = clickhouse.call(
            lambda c: c.query(
                "SELECT count(), quantiles(0.5, 0.99)(dateDiff('millisecond', window_end, "
                f"ingested_at) - {settings.grace_ms}) FROM {db}.voice_states"
            )
        )
        states, (state_p50, state_p99) = closed.result_rows[0]
        server.should_exit = True
        thread.join(timeout=30)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ticks, tick_mean, tick_bound = tick_summary()
    print(
        f"# latency at {args.rate:,} events/s for {args.seconds:.0f}s, {args.voices} voices, "
        f"{args.interactions:,} interactions/s"
    )
    print("| measure | p50 | p99 | samples |")
    print("| --- | --- | --- | --- |")
    if latencies:
        print(
            f"| window close → SSE (ms) | {statistics.median(latencies) * 1e3:.0f} "
            f"| {percentile(latencies, 0.99) * 1e3:.0f} | {len(latencies)} |"
        )
    print(f"| event → ClickHouse row (ms) | {row_p50:.0f} | {row_p99:.0f} | {rows} of {sent} |")
    print(f"| window close → state row (ms) | {state_p50:.0f} | {state_p99:.0f} | {states} |")
    model_peak = max((m for _, _, m in rss), default=float("nan"))
    print(f"| peak RSS of the process (MiB) | {peak_mb:.0f} | | |")
    print(f"| peak RSS of the model process (MiB) | {model_peak:.0f} | | |")
    print(f"| inference tick (s): mean, all under | {tick_mean:.3f} | ≤ {tick_bound} | {ticks} |")
    print(f"\nworker batch seconds by stage: {stage_seconds()}")
    emit(
        bench="latency",
        rate=args.rate,
        seconds=args.seconds,
        sse_p50_ms=statistics.median(latencies) * 1e3 if latencies else None,
        sse_p99_ms=percentile(latencies, 0.99) * 1e3 if latencies else None,
        row_p50_ms=float(row_p50),
        row_p99_ms=float(row_p99),
        state_row_p50_ms=float(state_p50),
        state_row_p99_ms=float(state_p99),
        rows=int(rows),
        sent=sent,
        peak_rss_mib=peak_mb,
        model_process_peak_rss_mib=model_peak,
        voices=args.voices,
        interactions=args.interactions,
        ticks=ticks,
        tick_mean_s=tick_mean,
        tick_max_bound_s=tick_bound,
    )
    at_minute = [(w, m) for t, w, m in rss if t >= 60.0]
    if at_minute and args.seconds >= 120:
        (first, model_first), (_, last, model_last) = at_minute[0], rss[-1]
        for label, a, b in (("", first, last), (" of the model process", model_first, model_last)):
            print(
                f"| RSS{label} at minute 1 → end (MiB) | {a:.0f} → {b:.0f} "
                f"| {100 * (b - a) / a:+.1f} % | |"
            )
        emit(
            bench="soak",
            rss_minute_1_mib=first,
            rss_end_mib=last,
            model_rss_minute_1_mib=model_first,
            model_rss_end_mib=model_last,
        )


if __name__ == "__main__":
    main()
