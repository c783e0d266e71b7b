"""What the benchmarks share: arguments, the local broker, preloading voice events."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import threading
import time
from pathlib import Path

from deltaomega import localkafka
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.metrics import BATCH_SECONDS
from deltaomega.producer import VoiceProducer

T0 = 1_800_000_000_000


def batch_seconds() -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], int]]:
    """The window consumers' seconds and batch counts, by (stream, stage), summed."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    for metric in BATCH_SECONDS.collect():
        for sample in metric.samples:
            key = (sample.labels["stream"], sample.labels["stage"])
            if sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = int(sample.value)
    return sums, counts


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` (the value at rank q·n, nearest below)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def emit(**result: object) -> None:
    """One machine-readable result line; `bench.report` collects them into one table."""
    print("RESULT " + json.dumps(result), flush=True)


def parse_arguments(default_events: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=default_events)
    parser.add_argument("--voices", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="events per Kafka record")
    args = parser.parse_args()
    configure_logging("WARNING")
    return args


def local_broker() -> str:
    """Start (or reuse) the local broker of this checkout; its bootstrap address."""
    broker = Settings(data_dir=Path(".deltaomega"))
    localkafka.start(broker)
    return localkafka.status(broker).bootstrap


def bench_event(n: int, voices: int, ts: int | None = None) -> dict[str, object]:
    """The n-th benchmark event: voices in turn, 10 ms apart per voice from T0 by default."""
    return {
        "event_id": f"b-{n}",
        "voice_id": f"voice-{n % voices:05d}",
        "ts": T0 + n // voices * 10 if ts is None else ts,
        "temperature": 1.0,
        "activation": (n % 100) / 100,
        "stress": 0.3,
        "influence": 0.4,
        "context": {},
    }


def preload(settings: Settings, events: int, voices: int, batch: int) -> float:
    started = time.perf_counter()
    with VoiceProducer(settings, batch_size=batch) as producer:
        for n in range(events):
            producer.send_voice_event(bench_event(n, voices))
    return time.perf_counter() - started


def _processes() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _stat(entry: Path) -> tuple[int, int]:
    """(CPU clock ticks so far, user + system; parent pid) of a /proc/<pid> entry."""
    fields = (entry / "stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12]), int(fields[1])


def _command(entry: Path, width: int) -> str:
    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    return command.decode(errors="replace").strip()[:width]


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """CPU clock ticks (user + system) so far of every process, with a short name."""
    out: dict[int, tuple[int, str]] = {}
    for entry in _processes():
        try:
            out[int(entry.name)] = (_stat(entry)[0], _command(entry, 90))
        except OSError:
            continue
    return out


class BurstMeter:
    """The processes' CPU in the seconds after each window's close, when a tick's alerts
    are taken in and delivered: who the control plane shares the cores with then (an
    average over a run hides it). Samples every process's CPU ticks in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.names: dict[int, str] = {}
        self.parents: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst-meter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            ticks: dict[int, int] = {}
            for entry in _processes():
                pid = int(entry.name)
                try:
                    ticks[pid], self.parents[pid] = _stat(entry)
                    if pid not in self.names:
                        self.names[pid] = _command(entry, 60)
                except OSError:
                    continue
            self.samples.append((time.time(), ticks))

    def report(self, closes: list[float], labels: dict[int, str], span: float = 3.0) -> str:
        """Cores each process used in [close, close + span), averaged over ``closes``;
        ``labels`` names known pids (their children are named after them)."""
        hz = os.sysconf("SC_CLK_TCK")
        used: dict[int, float] = {}
        counted = 0
        for close in closes:
            inside = [s for s in self.samples if close <= s[0] <= close + span]
            if len(inside) < 2:
                continue
            (t0, first), (t1, last) = inside[0], inside[-1]
            counted += 1
            for pid, ticks in last.items():
                share = (ticks - first.get(pid, ticks)) / hz / (t1 - t0)
                used[pid] = used.get(pid, 0.0) + share
        if not counted:
            return "  no samples around the closes"

        def label(pid: int) -> str:
            if pid in labels:
                return labels[pid]
            parent = self.parents.get(pid, 0)
            if parent in labels:
                return f"child of {labels[parent]}: {self.names.get(pid, '?')[:40]}"
            return self.names.get(pid, "?")

        rows = sorted(((share / counted, pid) for pid, share in used.items()), reverse=True)
        lines = [f"  CPU in the {span:.0f} s after each close ({counted} windows), cores:"]
        lines += [f"    {share:.2f}  {label(pid)}" for share, pid in rows[:8] if share >= 0.01]
        return "\n".join(lines)


def _machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """Who used the machine's CPU between start() and stop(): the cores busy, and the
    processes that used the most, in cores (1.0 = one core all the time)."""

    def start(self) -> None:
        self._started = time.monotonic()
        self._machine = _machine_ticks()
        self._processes = _cpu_ticks()

    def stop(self, top: int = 8) -> str:
        seconds = time.monotonic() - self._started
        hz = os.sysconf("SC_CLK_TCK")
        busy, total = _machine_ticks()
        cores = os.cpu_count() or 1
        used = (busy - self._machine[0]) / max(1, total - self._machine[1]) * cores
        rows = []
        for pid, (ticks, name) in _cpu_ticks().items():
            before = self._processes.get(pid, (0, name))[0]
            rows.append(((ticks - before) / hz / seconds, pid, name))
        rows.sort(reverse=True)
        lines = [f"CPU over {seconds:.0f} s: {used:.2f} of {cores} cores busy"]
        lines += [f"  {share:.2f} cores  pid {pid}  {name}" for share, pid, name in rows[:top]]
        return "\n".join(lines)


def drop_topics_at_exit(settings: Settings) -> None:
    """Delete this run's topics (every name under its prefix) when the bench exits: each
    run has a prefix of its own, and a broker holding thousands of old topics makes every
    client's metadata refresh slower, which skews the next runs."""
    prefix = settings.topic_prefix
    if not prefix:
        return

    def drop() -> None:
        from deltaomega.kafka_clients import admin_client

        try:
            admin = admin_client(settings)
            names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
            if names:
                for future in admin.delete_topics(names, operation_timeout=30).values():
                    future.result()
        except Exception as exc:  # noqa: BLE001 - clean-up only; the results are out
            print(f"(could not delete the run's topics {prefix}*: {exc})")

    atexit.register(drop)
