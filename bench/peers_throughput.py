"""Peers: the same 10 s per-voice aggregation in textbook Faust and in Quix Streams.

    .venv/bin/python -m bench.peers_throughput --events 100000 --voices 64 [--peers quix]

Creates each peer's virtualenv under the bench cache (``<cache>/bench/venvs/<peer>``, from
``bench/peers/<peer>/requirements.txt``; pip's cache is ``<cache>/pip``), starts (or
reuses) the local broker, preloads a fresh topic with single-event records like the other
benches, runs each peer (``bench/peers/<peer>/run.py``) in its own virtualenv on that
topic, and prints a Markdown table of the JSON line each peer prints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import drop_topics_at_exit, emit, local_broker, preload
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "bench" / "peers"
PEERS = ("naive_faust", "quix")
PYTHON = "python3.11"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--voices", type=int, default=64)
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per peer")
    parser.add_argument(
        "--faust-store", choices=("rocksdb", "memory"), default="rocksdb", help="naive_faust"
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    return args


def ensure_venv(peer: str, cache_dir: Path) -> Path:
    """The peer's virtualenv, (re)installed when its requirements.txt changed."""
    venv = cache_dir / "bench" / "venvs" / peer
    requirements = PEERS_DIR / peer / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = venv / ".requirements.sha256"
    python = venv / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text().strip() == digest:
        return python
    print(f"installing {peer}'s virtualenv into {venv} ...", flush=True)
    env = {**os.environ, "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(cache_dir / "pip"))}
    if not python.exists():
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--progress-bar", "on"]
    subprocess.run([*pip, "--quiet", "pip>=24"], check=True, env=env)
    subprocess.run([*pip, "-r", str(requirements)], check=True, env=env)
    marker.write_text(digest + "\n")
    return python


def run_peer(
    peer: str, python: Path, args: argparse.Namespace, bootstrap: str, topic: str
) -> dict[str, Any]:
    state_dir = tempfile.mkdtemp(prefix=f"deltaomega-peer-{peer}-")
    command = [
        str(python),
        "-m",
        f"bench.peers.{peer}.run",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--events",
        str(args.events),
        "--state-dir",
        state_dir,
    ]
    if peer == "naive_faust":
        command += ["--store", args.faust_store]
    print(f"running {peer} ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"{peer} exited {done.returncode} without a result line")
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = time.perf_counter() - started
    print(f"  {lines[-1]}", flush=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| peer | events | seconds | events/s | s until stopped | windows closed | versions |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        versions = ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
        peer = f"{r['peer']} ({r['store']})" if "store" in r else r["peer"]
        rows.append(
            f"| {peer} | {r['events']:,} | {r['seconds']:.2f} | {r['events_per_s']:,.0f} "
            f"| {r['until_stopped_s']:.2f} | {r['windows_closed']} | {versions} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = parse_arguments()
    cache_dir = Settings().cache_dir
    pythons = {peer: ensure_venv(peer, cache_dir) for peer in args.peers}
    tag = uuid.uuid4().hex[:8]
    settings = Settings(topic_prefix=f"peers{tag}.", kafka_bootstrap=local_broker())
    drop_topics_at_exit(settings)
    topic = ensure_topics(settings).voice_events
    produce_s = preload(settings, args.events, args.voices, batch=1)
    print(f"preloaded {args.events:,} events (1/record, {args.voices} voices) in {produce_s:.1f}s")
    results = [
        run_peer(peer, python, args, settings.kafka_bootstrap, topic)
        for peer, python in pythons.items()
    ]
    print(table(results))
    for r in results:
        emit(bench="peer", peer=r["peer"], events=r["events"], events_per_s=r["events_per_s"])


if __name__ == "__main__":
    main()
