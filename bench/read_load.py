"""Ingestion under read load: the worker's rate draining a backlog alone, and again while
10 clients loop over the heaviest GET routes of the same process's API.

    .venv/bin/python -m bench.read_load [--events 600000] [--voices 1000] [--clients 10]

Each phase runs in a process of its own (the embedded ClickHouse hosts one path per
process): preload the events (single-event records, and one interaction per five events),
start `deltaomega run`'s app with the models off, and time from the first batch in hand
to the last raw row in ClickHouse. In the loaded phase the clients, processes of their
own, start before the worker and stop after it drained; their requests per second and
latencies are reported per route. Target: loaded ≥ 0.8 × unloaded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._read_client import client

if TYPE_CHECKING:
    from deltaomega.config import Settings

# The pipeline's modules are imported where they are used: the clients are spawned
# processes that import this module again, and must stay small and quick to start.

T0 = 1_800_000_000_000
STEP_MS = 500  # each voice's events 0.5 s apart: 600 events a voice span 30 windows


def routes(voices: int) -> list[str]:
    """The heaviest reads: lists, a voice's state with its history, the matrix, outputs."""
    voice = f"voice-{voices // 2:05d}"
    return [
        "/api/v1/voices",
        f"/api/v1/voices/{voice}/state?include_history=true",
        f"/api/v1/voices/{voice}/history",
        "/api/v1/interactions/matrix?window=1h",
        "/api/v1/interactions/conflicts?min_probability=0",
        "/api/v1/predictions",
        "/api/v1/alerts",
        "/api/v1/patterns",
        "/api/v1/emergence",
    ]


def preload(settings: Settings, events: int, voices: int) -> None:
    from deltaomega.producer import VoiceProducer
    from deltaomega.schemas.records import INTERACTION_KINDS

    with VoiceProducer(settings) as producer:
        for n in range(events):
            voice = n % voices
            ts = T0 + (n // voices) * STEP_MS
            producer.send_voice_event(
                {
                    "event_id": f"e{n}",
                    "voice_id": f"voice-{voice:05d}",
                    "ts": ts,
                    "temperature": 1.0,
                    "activation": (n % 100) / 100,
                    "stress": 0.3,
                    "influence": 0.4,
                    "context": {},
                }
            )
            if n % 5 == 0:
                producer.send_interaction(
                    {
                        "event_id": f"i{n}",
                        "ts": ts,
                        "source": f"voice-{voice:05d}",
                        "target": f"voice-{(voice * 7 + 1) % voices:05d}",
                        "kind": INTERACTION_KINDS[n % len(INTERACTION_KINDS)],
                        "strength": 0.5,
                        "context": {},
                    }
                )


def phase(loaded: bool, events: int, voices: int, clients: int, port: int) -> dict[str, Any]:
    import uvicorn

    from bench._common import drop_topics_at_exit, local_broker
    from deltaomega.config import Settings
    from deltaomega.logs import configure_logging
    from deltaomega.service import build_app
    from deltaomega.sinks.clickhouse import connect
    from deltaomega.topics import ensure_topics

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=local_broker(),
            topic_prefix=f"reads{tag}.",
            app_id=f"reads-{tag}",
            data_dir=Path(tmp),
            clickhouse_database=f"reads_{tag}",
            models_enabled=False,
            api_port=port,
        )
        drop_topics_at_exit(settings)
        ensure_topics(settings)
        preload(settings, events, voices)
        spawn = multiprocessing.get_context("spawn")
        stop, out, ready = spawn.Event(), spawn.Queue(), spawn.Semaphore(0)
        base = f"http://127.0.0.1:{port}"
        readers = [
            spawn.Process(target=client, args=(base, routes(voices), ready, stop, out))
            for _ in range(clients if loaded else 0)
        ]
        for reader in readers:
            reader.start()
        for _ in readers:  # every client loops before the worker starts
            ready.acquire(timeout=60)
        clickhouse = connect(settings)
        app = build_app(settings, clickhouse)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        threading.Thread(target=server.run, daemon=True).start()
        pipeline_started = time.perf_counter()
        db = settings.clickhouse_database
        progress = app.state.context.worker.consumers[0].agent.progress
        while True:
            try:
                rows = clickhouse.call(
                    lambda c: c.query(f"SELECT count() FROM {db}.voice_events").result_rows[0][0]
                )
            except Exception:  # noqa: BLE001 - the table may not exist yet
                rows = 0
            if rows >= events:
                break
            if time.perf_counter() - pipeline_started > 600:
                raise TimeoutError("the backlog did not drain in 10 minutes")
            time.sleep(0.05)
        drained = time.perf_counter()
        stop.set()
        answered: list[tuple[str, float]] = []
        # Failures before the first batch (reads while the tables are being made) apart.
        first_batch = time.time() - (time.perf_counter() - progress.first_batch_at)
        errors: dict[str, int] = {}
        for _ in readers:
            got, failed = out.get(timeout=60)
            answered += got
            for at, kind in failed:
                key = ("during ingestion: " if at >= first_batch else "during setup: ") + kind
                errors[key] = errors.get(key, 0) + 1
        for reader in readers:
            reader.join(10)
        server.should_exit = True
        # From the first batch in hand, as bench.worker_throughput counts.
        seconds = drained - progress.first_batch_at
        by_route: dict[str, list[float]] = {}
        for path, took in answered:
            by_route.setdefault(path, []).append(took)
        return {
            "loaded": loaded,
            "events": events,
            "seconds": seconds,
            "events_per_s": events / seconds,
            "requests": len(answered),
            "request_errors": errors,
            "requests_per_s": len(answered) / (drained - pipeline_started),
            "routes": {
                path: {
                    "n": len(times),
                    "p50_ms": 1000 * statistics.median(times),
                    "p99_ms": 1000 * sorted(times)[int(0.99 * (len(times) - 1))],
                }
                for path, times in by_route.items()
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--voices", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--phase", choices=["loaded", "unloaded"], default=None)
    args = parser.parse_args()
    if args.phase is not None:
        result = phase(args.phase == "loaded", args.events, args.voices, args.clients, 8766)
        print("PHASE " + json.dumps(result), flush=True)
        return
    results = {}
    for name in ("unloaded", "loaded"):
        command = [sys.executable, "-m", "bench.read_load", "--phase", name]
        command += ["--events", str(args.events), "--voices", str(args.voices)]
        command += ["--clients", str(args.clients)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
        line = next(x for x in done.stdout.splitlines() if x.startswith("PHASE "))
        results[name] = json.loads(line.removeprefix("PHASE "))
        r = results[name]
        print(
            f"{name:>8}: {r['events_per_s']:,.0f} events/s ({r['events']:,} events in "
            f"{r['seconds']:.2f} s); {r['requests']:,} reads ({r['requests_per_s']:.0f}/s, "
            f"{sum(r['request_errors'].values())} failed"
            + "".join(f"; {kind}: {n}" for kind, n in sorted(r["request_errors"].items()))
            + ")",
            flush=True,
        )
        for path, figures in sorted(r["routes"].items()):
            print(
                f"          {path}: {figures['n']} reads, p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms"
            )

    ratio = results["loaded"]["events_per_s"] / results["unloaded"]["events_per_s"]
    print(f"ingestion under {args.clients} reading clients: {ratio:.2f} of unloaded (target ≥ 0.8)")
    from bench._common import emit

    emit(
        bench="read_load",
        events=args.events,
        clients=args.clients,
        unloaded_events_per_s=results["unloaded"]["events_per_s"],
        loaded_events_per_s=results["loaded"]["events_per_s"],
        ratio=ratio,
        reads_per_s=results["loaded"]["requests_per_s"],
    )


if __name__ == "__main__":
    main()
