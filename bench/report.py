"""Run every benchmark in one go, on the same machine and data sizes, and print one table;
``--write`` appends it to bench/RESULTS.md with the command, machine, versions and date.

    .venv/bin/python -m bench.report [--quick] [--write]

Each benchmark runs as its own process (as `make bench` lists them) and ends with
``RESULT {json}`` lines; the ratios in the table (worker against the naive Faust agent,
Quix Streams and the ceiling) come from numbers measured in this same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")

#: Batch records: 5,000,000 events, so each measurement lasts several seconds. At
#: 2,000,000 the worker's run took about 2 s and its ratio to the ceiling ranged from 0.48
#: to 0.61 over runs; at 5,000,000 two runs gave 0.80 and 0.76.
FULL: list[list[str]] = [
    ["bench.ceiling", "--events", "300000"],
    ["bench.ceiling", "--events", "5000000", "--batch", "500"],
    ["bench.worker_throughput", "--events", "300000"],
    ["bench.worker_throughput", "--events", "5000000", "--batch", "500"],
    ["bench.peers_throughput", "--events", "300000"],
    ["bench.codec_sink", "--events", "200000"],
    ["bench.inference", "--voices", "8", "64", "1000", "10000"],
    ["bench.latency", "--rate", "10000", "--seconds", "60"],
]
QUICK: list[list[str]] = [
    ["bench.ceiling", "--events", "50000"],
    ["bench.ceiling", "--events", "200000", "--batch", "500"],
    ["bench.worker_throughput", "--events", "30000"],
    ["bench.worker_throughput", "--events", "200000", "--batch", "500"],
    ["bench.peers_throughput", "--events", "10000"],
    ["bench.codec_sink", "--events", "50000"],
    ["bench.inference", "--voices", "8", "64", "--repeats", "10"],
    ["bench.latency", "--rate", "5000", "--seconds", "20"],
]


def run(module: list[str]) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", *module]
    print(f"$ python -m {' '.join(module)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    results = [
        json.loads(line.removeprefix("RESULT "))
        for line in done.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    if done.returncode != 0 or not results:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{module[0]} failed (exit {done.returncode})")
    print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)
    return results


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def versions() -> str:
    names = ["faust-streaming", "aiokafka", "confluent-kafka", "fastavro", "chdb", "onnxruntime"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return f"Python {platform.python_version()}, " + ", ".join(found)


def table(results: list[dict[str, Any]]) -> str:
    def pick(bench: str, **match: Any) -> dict[str, Any] | None:
        for r in results:
            if r["bench"] == bench and all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    rows: list[tuple[str, str, str]] = []
    worker_1 = pick("worker", batch=1)
    worker_500 = pick("worker", batch=500)
    ceiling_1 = pick("ceiling", batch=1)
    ceiling_500 = pick("ceiling", batch=500)
    faust = pick("peer", peer="naive_faust")
    quix = pick("peer", peer="quix")

    def rate(r: dict[str, Any] | None) -> str:
        return "—" if r is None else f"{r['events_per_s']:,.0f} events/s"

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
        return "—" if a is None or b is None else f"{a['events_per_s'] / b['events_per_s']:.2f}×"

    rows.append(("ceiling, 1 event/record", rate(ceiling_1), ""))
    rows.append(("ceiling, 500 events/record", rate(ceiling_500), ""))
    rows.append(
        (
            "worker end to end, 1 event/record",
            rate(worker_1),
            f"{ratio(worker_1, ceiling_1)} of ceiling",
        )
    )
    rows.append(
        (
            "worker end to end, 500 events/record",
            rate(worker_500),
            f"{ratio(worker_500, ceiling_500)} of ceiling (target ≥ 0.5×, ≥ 300,000/s)",
        )
    )
    rows.append(
        (
            "naive Faust agent, 1 event/record",
            rate(faust),
            f"worker is {ratio(worker_1, faust)} (target ≥ 20×)",
        )
    )
    rows.append(
        (
            "Quix Streams, 1 event/record",
            rate(quix),
            f"worker is {ratio(worker_1, quix)} (target ≥ 3×)",
        )
    )
    for r in results:
        if r["bench"] == "codec_sink":
            rows.append((r["stage"], f"{r['per_s']:,.0f}/s", ""))
        elif r["bench"] == "tick":
            rows.append(
                (
                    f"inference tick, {r['voices']:,} voices",
                    f"{r['median_ms']:.1f} ms (p99 {r['p99_ms']:.1f})",
                    "target < 1 s at 10,000 voices",
                )
            )
        elif r["bench"] == "latency":
            sse = (
                "—"
                if r["sse_p99_ms"] is None
                else f"{r['sse_p50_ms']:.0f} / {r['sse_p99_ms']:.0f} ms"
            )
            rows.append(
                (f"window close → SSE p50 / p99 at {r['rate']:,}/s", sse, "target p99 < 500 ms")
            )
            rows.append(
                (
                    f"event → ClickHouse row p50 / p99 at {r['rate']:,}/s",
                    f"{r['row_p50_ms']:.0f} / {r['row_p99_ms']:.0f} ms",
                    "target p99 < 2 s",
                )
            )
            rows.append(("peak RSS (worker process)", f"{r['peak_rss_mib']:.0f} MiB", ""))
            model_rss = r.get("model_process_peak_rss_mib")
            if model_rss is not None:
                rows.append(("peak RSS (model process)", f"{model_rss:.0f} MiB", ""))
    lines = ["| measure | result | against |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (under 3 minutes)")
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for module in QUICK if args.quick else FULL:
        results += run(module)
    command = "python -m bench.report" + (" --quick" if args.quick else "")
    out = table(results)
    header = (
        f"## One run: `{command}` ({dt.date.today().isoformat()})\n\n"
        f"Machine: {machine()}. {versions()}.\n"
    )
    print()
    print(header)
    print(out)
    if args.write:
        with RESULTS.open("a") as results_file:
            results_file.write(f"\n{header}\n{out}\n")
        print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
