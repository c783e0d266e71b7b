"""Alert delivery latency: from a tick's alerts leaving the worker to the notification at a
webhook receiver, p50 / p99, through the broker, the control plane's dispatch agent and
its courier process.

    .venv/bin/python -m bench.alert_latency [--voices 1000] [--ticks 6] [--alerting 100]

Runs the control plane (the Faust app of `deltaomega run`) in this process against the local
broker, with one signed webhook channel to an HTTP receiver on loopback. Each tick, 10 s
apart as windows close, the alerts of ``--alerting`` of the ``--voices`` voices are
produced at once, each a new condition (a stress_trend alert of a voice not alerting
before), so each is one notification; each alert's value is its production time, and the
receiver stamps its arrival. Reported: p50/p99 of arrival − production over every
notification, how many arrived, and who used the CPU meanwhile (this process is the
control plane; the courier is its spawned child). The tick itself (window close →
alerts produced) is the model process's: ``bench.inference`` and ``bench.latency`` measure
it; the end-to-end figure is the sum.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench._common import CpuMeter, drop_topics_at_exit, emit, local_broker, percentile
from deltaomega.alerting.routing import Routing
from deltaomega.config import Settings
from deltaomega.control.app import control_app
from deltaomega.control.runner import ControlPlane
from deltaomega.logs import configure_logging
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT
from deltaomega.security.audit import AuditTrail
from deltaomega.topics import Topics, ensure_topics

TICK_SECONDS = 10.0


def _serve(port: int, log: str) -> None:
    """The receiver, in a process of its own (it must not share the dispatcher's GIL):
    each arrival as a line, its time first."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrived = time.time()
            with open(log, "a") as out:
                out.write(f"{arrived} {body.decode()}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class Receiver:
    def __init__(self, log: Path) -> None:
        self.log = log
        log.touch()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = multiprocessing.Process(
            target=_serve, args=(self.port, str(log)), daemon=True
        )
        self.process.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def arrivals(self) -> list[tuple[float, dict[str, Any]]]:
        out = []
        for line in self.log.read_text().splitlines():
            arrived, _, body = line.partition(" ")
            out.append((float(arrived), json.loads(body)))
        return out

    def count(self) -> int:
        return len(self.log.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voices", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--alerting", type=int, default=100, help="voices alerting per tick")
    args = parser.parse_args()
    configure_logging("WARNING")
    tag = f"alat{uuid.uuid4().hex[:8]}"
    receiver = Receiver(Path(tempfile.mkdtemp(prefix="alert-receiver-")) / "arrivals.log")
    settings = Settings(
        kafka_bootstrap=local_broker(),
        topic_prefix=f"{tag}.",
        app_id=tag,
        data_dir=Path(tempfile.mkdtemp(prefix="alert-latency-")),
    )
    drop_topics_at_exit(settings)
    ensure_topics(settings)
    routing = Routing.model_validate(
        {
            "channels": {
                "hook": {
                    "type": "webhook",
                    "url": receiver.url,
                    "secret": "bench-secret-0123456789",
                }
            },
            "routes": {"CRITICAL": {"channels": ["hook"]}, "WARNING": {"channels": ["hook"]}},
        }
    )
    codec = AvroCodec.from_settings(settings)
    plane = ControlPlane(
        lambda: control_app(settings, codec, AuditTrail(settings, codec), (), routing)
    )
    plane.start()
    deadline = time.monotonic() + 60
    while plane.state != "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(5)  # the agents' partitions assigned
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    topic = Topics.from_settings(settings).alerts
    sent = 0
    tick_started: list[float] = []
    meter = CpuMeter()
    meter.start()
    for tick in range(args.ticks):
        window = int(time.time() * 1000) // 10_000 * 10_000
        tick_started.append(time.time())
        for n in range(args.alerting):
            voice = f"voice-{(tick * args.alerting + n) % args.voices:05d}-{tick}"
            now = int(time.time() * 1000)
            # the alert's value carries its production time to the receiver
            record = alert_record(
                "stress_trend", voice, window, "WARNING", "bench", now / 1000, 0.7, ["a"], "v1", now
            )
            producer.produce(topic, codec.encode(ALERT, record), voice.encode())
        producer.flush(10)
        sent += args.alerting
        time.sleep(TICK_SECONDS)
    deadline = time.monotonic() + 60
    while receiver.count() < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    cpu = meter.stop(top=4)
    plane.stop()
    receiver.process.terminate()
    arrivals = receiver.arrivals()
    delays = sorted(
        arrived - _produced(payload) for arrived, payload in arrivals if payload["kind"] == "opened"
    )
    p50, p99 = _percentiles(delays)
    # where the time goes: the dispatch agent's intake (produced → the condition opened)
    # and delivery (opened → arrived)
    firsts = [(a, _opened(p), _produced(p)) for a, p in arrivals if p["kind"] == "opened"]
    to_open = [opened - produced for _, opened, produced in firsts]
    to_arrive = [arrived - opened for arrived, opened, _ in firsts]
    print(
        f"{len(delays)} of {sent} notifications arrived; produced → webhook p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms, max {max(delays, default=0) * 1000:.0f} ms "
        f"({args.alerting} of {args.voices} voices alerting per tick, {args.ticks} ticks)\n"
        "  of which produced → condition opened p50 %.0f / p99 %.0f ms, "
        "opened → arrived p50 %.0f / p99 %.0f ms\n%s"
        % (*_percentiles(to_open), *_percentiles(to_arrive), cpu)
    )
    emit(
        bench="alert_latency",
        voices=args.voices,
        alerting_per_tick=args.alerting,
        notifications=len(delays),
        sent=sent,
        p50_ms=round(p50, 1),
        p99_ms=round(p99, 1),
        max_ms=round(max(delays, default=0) * 1000, 1),
    )


def _percentiles(values: list[float]) -> tuple[float, float]:
    """p50 (the median) and p99 of seconds, in ms."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values) * 1000, percentile(values, 0.99) * 1000


def _opened(payload: dict[str, Any]) -> float:
    return datetime.fromisoformat(payload["condition"]["opened_at"]).timestamp()


def _produced(payload: dict[str, Any]) -> float:
    """The alert's production time, which the bench puts in its value."""
    return float(payload["condition"]["value"])


if __name__ == "__main__":
    main()
