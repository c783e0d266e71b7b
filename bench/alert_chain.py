"""Window close → notification at a webhook receiver, the whole chain, at N simulated voices.

    .venv/bin/python -m bench.alert_chain [--voices 1000] [--rate 2000] [--seconds 150]
        [--control process|embedded] [--voices-from ahead|live]

Runs the worker with its model process and the API in this process against the local
broker, the control plane as deployed (`deltaomega control`, a process of its own; or
with ``--control embedded`` in this one, as `deltaomega run` does), the simulator
(episodes on) in a process of its own, and a webhook receiver in another. The voices are
simulated ahead (``--voices-from ahead``, the default: the whole run is simulated before
the measurement starts, then its events are published as the wall clock reaches their
tick, so the machine's CPU goes to the pipeline, as with voices that run elsewhere) or
live (the simulator's dynamics share the machine with the pipeline). The routing sends
WARNING and CRITICAL
conditions to the receiver. Event time is the wall clock, so a window [s, e) closes at
e + grace; the latency of a condition's first notice is its arrival minus the close of the
window that opened it. Reported: p50/p99 over every first notice, and how many.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from confluent_kafka import Consumer, TopicPartition

from bench._common import BurstMeter, CpuMeter, drop_topics_at_exit, emit, local_broker
from bench.alert_latency import Receiver
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.producer import SimulationConfig, VoiceProducer, run_simulation
from deltaomega.producer.simulator import VoiceDynamics
from deltaomega.schemas.codec import AvroCodec
from deltaomega.service import build_app
from deltaomega.sinks.clickhouse import connect
from deltaomega.topics import Topics

_TICK_SECONDS = 0.1


def _config(voices: int, rate: float) -> SimulationConfig:
    return SimulationConfig(voices=voices, rate=rate, interaction_rate=rate / 5, seed=11)


def simulate(settings: Settings, voices: int, rate: float, seconds: float, ready: Any) -> None:
    configure_logging("WARNING")
    ready.set()
    run_simulation(settings, _config(voices, rate), seconds, realtime=True)


def replay(settings: Settings, voices: int, rate: float, seconds: float, ready: Any) -> None:
    """The simulation computed first, then published tick by tick as the wall clock reaches
    each tick's end, its event times moved to the wall clock (a whole number of windows, so
    the windows hold the same events)."""
    configure_logging("WARNING")
    start_ms = 1_800_000_000_000
    dynamics = VoiceDynamics(_config(voices, rate), start_ms)
    ticks = [dynamics.tick(_TICK_SECONDS) for _ in range(round(seconds / _TICK_SECONDS))]
    ready.set()
    window = settings.window_ms
    offset = (int(time.time() * 1000) - start_ms) // window * window + window
    began = (start_ms + offset) / 1000
    with VoiceProducer(settings) as producer:
        for n, (events, interactions) in enumerate(ticks):
            time.sleep(max(0.0, began + (n + 1) * _TICK_SECONDS - time.time()))
            for event in events:
                event.ts += offset
                producer.send_voice_event(event)
            for interaction in interactions:
                interaction.ts += offset
                producer.send_interaction(interaction)
            producer.flush_batches()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voices", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--control", choices=["process", "embedded"], default="process")
    parser.add_argument("--voices-from", choices=["ahead", "live"], default="ahead")
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        receiver = Receiver(Path(tmp) / "arrivals.log")
        routing = Path(tmp) / "routing.yaml"
        routing.write_text(
            "channels:\n"
            f"  hook: {{type: webhook, url: '{receiver.url}', secret: bench-secret-0123456789}}\n"
            "routes:\n"
            "  CRITICAL: {channels: [hook]}\n"
            "  WARNING: {channels: [hook]}\n"
        )
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=local_broker(),
            topic_prefix=f"chain{tag}.",
            app_id=f"chain-{tag}",
            data_dir=Path(tmp) / "data",
            grace_seconds=1.0,
            inference_warm_up_voices=args.voices,
            alert_routing_file=routing,
            rate_limits=False,
        )
        drop_topics_at_exit(settings)
        plane = None
        if args.control == "process":
            env = {
                **os.environ,
                "DELTAOMEGA_ENV": "development",
                "DELTAOMEGA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "DELTAOMEGA_TOPIC_PREFIX": settings.topic_prefix,
                "DELTAOMEGA_APP_ID": settings.app_id,
                "DELTAOMEGA_DATA_DIR": str(Path(tmp) / "control"),
                "DELTAOMEGA_ALERT_ROUTING_FILE": str(routing),
                "DELTAOMEGA_API_PORT": "8767",
                "DELTAOMEGA_LOG_LEVEL": "WARNING",
            }
            plane = subprocess.Popen(  # noqa: S603 - our own command
                [str(Path(sys.executable).with_name("deltaomega")), "control"], env=env
            )
        app = build_app(settings, connect(settings), control=args.control == "embedded")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8766, log_config=None))
        threading.Thread(target=server.run, daemon=True).start()
        for _ in range(600):
            try:
                if httpx.get("http://127.0.0.1:8766/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        time.sleep(15 if plane is not None else 5)  # the control plane's agents assigned
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Event()
        simulator = spawn.Process(
            target=replay if args.voices_from == "ahead" else simulate,
            args=(settings, args.voices, args.rate, args.seconds, ready),
        )
        simulator.start()
        ready.wait()
        meter = CpuMeter()
        meter.start()
        bursts = BurstMeter()
        bursts.start()
        time.sleep(args.seconds)  # (while the simulator runs; its CPU is counted)
        cpu = meter.stop()
        simulator.join()
        time.sleep(15)  # the last windows close, tick and notify
        bursts.stop()
        labels = {
            os.getpid(): "worker + API (this process)",
            receiver.process.pid: "receiver",
            simulator.pid or 0: "simulator",
        }
        if plane is not None:
            labels[plane.pid] = "control plane"
        server.should_exit = True
        if plane is not None:
            plane.terminate()
            plane.wait(30)
        time.sleep(3)
        receiver.process.terminate()
        window_ms, grace_ms = settings.window_ms, settings.grace_ms
        opened = [(a, p) for a, p in _with_ms(receiver.arrivals()) if p["kind"] == "opened"]
        delays = sorted(
            arrived - (payload["condition"]["first_window_ms"] + window_ms + grace_ms) / 1000
            for arrived, payload in opened
        )
        # where the time goes: close → the control plane opening the condition (the tick,
        # the alerts topic, the dispatch agent's queue), and opening → arrival (delivery)
        to_open = sorted(
            (p["condition"]["opened_at_ms"] - p["condition"]["first_window_ms"]) / 1000
            - (window_ms + grace_ms) / 1000
            for _, p in opened
        )
        to_arrive = sorted(a - p["condition"]["opened_at_ms"] / 1000 for a, p in opened)
        alerts = {}
        for at, a in _read(settings, Topics.from_settings(settings).alerts):
            alerts[a["alert_id"]] = a | {"appended": at}
        ticked = sorted(
            (a["produced_at"] - a["window_start"] - window_ms - grace_ms) / 1000
            for a in alerts.values()
        )
        closes = _closes(settings)
        # from the worker's close: to the tick that raised the alert, and on to the opening
        to_tick = sorted(
            alerts[p["condition"]["alert_id"]]["produced_at"] / 1000
            - closes[p["condition"]["first_window_ms"]]
            for _, p in opened
            if p["condition"]["first_window_ms"] in closes
        )
        tick_to_open = sorted(
            (p["condition"]["opened_at_ms"] - alerts[p["condition"]["alert_id"]]["produced_at"])
            / 1000
            for _, p in opened
        )
        tick_to_topic = sorted(a["appended"] - a["produced_at"] / 1000 for a in alerts.values())
        after_close = sorted(
            arrived - closes[p["condition"]["first_window_ms"]]
            for arrived, p in opened
            if p["condition"]["first_window_ms"] in closes
        )
    if not delays:
        print("no notifications: no alert fired")
        return
    # per window: its tick's alerts, the conditions it opened, the slowest first notice
    windows: dict[int, list[float]] = {}
    for arrived, p in opened:
        first = p["condition"]["first_window_ms"]
        if first in closes:
            windows.setdefault(first, []).append(arrived - closes[first])
    per_tick = Counter(int(a["window_start"]) for a in alerts.values())
    by_window = "\n".join(
        f"    window {n}: {per_tick.get(start, 0)} alerts, {len(lags)} opened, "
        f"from the worker's close p50 {_p(sorted(lags), 0.5):.0f} ms, max {max(lags) * 1000:.0f} ms"
        for n, (start, lags) in enumerate(sorted(windows.items()))
    )
    p50, p99 = _p(delays, 0.5), _p(delays, 0.99)
    print(
        f"{len(delays)} first notices; window close → webhook p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms ({args.voices} voices, {args.rate:.0f} events/s, "
        f"control plane: {args.control}, voices simulated {args.voices_from})\n"
        f"  close → condition opened: p50 {_p(to_open, 0.5):.0f} ms, p99 {_p(to_open, 0.99):.0f} ms"
        f"\n  opened → webhook: p50 {_p(to_arrive, 0.5):.0f} ms, "
        f"p99 {_p(to_arrive, 0.99):.0f} ms\n"
        f"  close → alert produced by the tick ({len(ticked)} alerts): p50 "
        f"{_p(ticked, 0.5):.0f} ms, p99 {_p(ticked, 0.99):.0f} ms\n"
        f"  the worker closing the window (its first state out) → webhook: p50 "
        f"{_p(after_close, 0.5):.0f} ms, p99 {_p(after_close, 0.99):.0f} ms\n"
        f"    of which close → tick: p50 {_p(to_tick, 0.5):.0f} ms, "
        f"p99 {_p(to_tick, 0.99):.0f} ms; tick → condition opened: p50 "
        f"{_p(tick_to_open, 0.5):.0f} ms, p99 {_p(tick_to_open, 0.99):.0f} ms (the tick's "
        f"start → the alert in its topic: p50 {_p(tick_to_topic, 0.5):.0f} ms, "
        f"p99 {_p(tick_to_topic, 0.99):.0f} ms)\n  per window:\n{by_window}\n{cpu}\n"
        f"{bursts.report(sorted(closes.values()), labels)}"
    )
    emit(
        bench="alert_chain",
        voices=args.voices,
        rate=args.rate,
        control=args.control,
        voices_from=args.voices_from,
        notices=len(delays),
        p50_ms=round(p50, 1),
        p99_ms=round(p99, 1),
        max_ms=round(delays[-1] * 1000, 1),
        closed_p50_ms=round(_p(after_close, 0.5), 1),
        closed_p99_ms=round(_p(after_close, 0.99), 1),
    )


def _read(settings: Settings, topic: str) -> list[tuple[float, dict[str, Any]]]:
    """(produce time in s, record) of every record of ``topic``."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench"})
    codec = AvroCodec()
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[float, dict[str, Any]]] = []
        while len(out) < sum(ends.values()):
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    _, record = codec.decode(message.value())  # type: ignore[arg-type]
                    out.append((message.timestamp()[1] / 1000, record))
        return out
    finally:
        consumer.close()


def _closes(settings: Settings) -> dict[int, float]:
    """Window start → when the worker closed it: its first voice state's produce time (the
    simulator's event time can fall behind the wall clock when it shares the cores)."""
    closes: dict[int, float] = {}
    for at, state in _read(settings, Topics.from_settings(settings).voice_states):
        start = int(state["window_start"])
        closes[start] = min(at, closes.get(start, at))
    return closes


def _p(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted seconds, in ms."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _with_ms(arrivals: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    """first_window as epoch ms (the payload carries ISO-8601)."""
    out = []
    for arrived, payload in arrivals:
        condition = payload["condition"]
        for name in ("first_window", "opened_at"):
            at = datetime.fromisoformat(condition[name])
            condition[f"{name}_ms"] = int(at.timestamp() * 1000)
        out.append((arrived, payload))
    return out


if __name__ == "__main__":
    main()
