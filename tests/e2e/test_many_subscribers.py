"""200 subscribers on one API process over HTTP: 100 SSE streams and 100 WebSockets, each
following one voice, and one WebSocket that stops reading. The process reads the topic
once; every subscriber gets exactly its voice's records, in order, at the offsets the
topic holds them; the stalled one is dropped and the others are not held up."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from deltaomega.config import Settings
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import VOICE_STATE
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService
from tests.e2e.test_websocket import _produce, _state
from tests.kafka_tools import read_topic

VOICES = [f"v{i:03d}" for i in range(100)]
WINDOWS = 120  # 12,000 records (7 MB): well past what the stalled socket's kernel buffers hold


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _offset(cursor: str, partition: int) -> int:
    """The offset a delivery's cursor gives for ``partition``."""
    positions = dict(part.split(":") for part in cursor.split(","))
    return int(positions[str(partition)])


async def _sse(
    url: str, voice: str, ready: asyncio.Event, got: list[tuple[str, dict[str, Any], float]]
) -> None:
    headers = api_client.auth(Role.VIEWER, subject=f"sse-{voice}")
    timeout = httpx.Timeout(10.0, read=120.0)
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream(
            "GET", f"{url}/api/v1/stream/voice-states", params={"voice_id": voice}, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        ready.set()
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if event.get("event") == "voice-state":
                    got.append((event["id"], json.loads(event["data"]), time.time()))
                    if len(got) == WINDOWS:
                        return
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.lstrip(" ")


async def _ws(
    url: str, voice: str, ready: asyncio.Event, got: list[tuple[str, dict[str, Any], float]]
) -> None:
    headers = api_client.auth(Role.VIEWER, subject=f"ws-{voice}")
    async with ws_connect(
        url.replace("http", "ws") + "/api/v1/ws", additional_headers=headers
    ) as ws:
        subscribe = {"type": "subscribe", "id": voice, "topic": "voice_states"}
        await ws.send(json.dumps(subscribe | {"filter": {"voice_ids": [voice]}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert answer["type"] == "subscribed", answer
        ready.set()
        while len(got) < WINDOWS:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            assert message["type"] == "voice_state_update", message
            got.append((message["cursor"], message["data"], time.time()))


def test_200_subscribers_one_tail_exact_deliveries_and_a_stalled_one_dropped(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False, rate_limits=False, feed_queue_records=1000)
    service = service_factory(settings, worker=False)
    url = service.url
    topic = Topics.from_settings(settings).voice_states
    sse_got: dict[str, list[tuple[str, dict[str, Any], float]]] = defaultdict(list)
    ws_got: dict[str, list[tuple[str, dict[str, Any], float]]] = defaultdict(list)
    published: dict[int, float] = {}

    # The stalled client: subscribed to every voice state, it never reads; a small
    # receive buffer and no compression make TCP push back on the server soon.
    tight = socket.socket()
    tight.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tight.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))

    async def run() -> None:
        stalled = await ws_connect(
            url.replace("http", "ws") + "/api/v1/ws",
            sock=tight,
            max_queue=1,
            compression=None,
            additional_headers=api_client.auth(Role.VIEWER, subject="stalled"),
        )
        await stalled.send(json.dumps({"type": "subscribe", "id": "all", "topic": "voice_states"}))
        assert json.loads(await stalled.recv())["type"] == "subscribed"
        ready = [asyncio.Event() for _ in range(2 * len(VOICES))]
        tasks = [
            asyncio.create_task(_sse(url, v, ready[i], sse_got[v])) for i, v in enumerate(VOICES)
        ] + [
            asyncio.create_task(_ws(url, v, ready[len(VOICES) + i], ws_got[v]))
            for i, v in enumerate(VOICES)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)
        # Every subscriber is in: one tail for the topic, 100 SSE clients, 101 sockets.
        metrics = await asyncio.to_thread(_metrics, url)
        assert metrics[("deltaomega_feed_tails", (("topic", topic),))] == 1
        assert metrics[("deltaomega_sse_clients", (("feed", "voice-states"),))] == 100
        assert metrics[("deltaomega_ws_connections", ())] == 101

        def publish() -> None:  # a steady stream of windows, each of every voice
            for w in range(WINDOWS):
                published[w] = time.time()
                _produce(settings, [(VOICE_STATE, v, _state(v, w, 0.5)) for v in VOICES])
                time.sleep(0.05)

        publisher = threading.Thread(target=publish)
        publisher.start()
        await asyncio.wait_for(asyncio.gather(*tasks), 180)
        await asyncio.to_thread(publisher.join)
        dropped_reason = None
        try:
            while True:
                message = json.loads(await asyncio.wait_for(stalled.recv(), 30))
                if message["type"] == "dropped":
                    dropped_reason = message["reason"]
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1013
        assert dropped_reason == "too slow: more than 1000 records waiting"

    asyncio.run(run())

    # Exactly each voice's records, in order, at the offsets the topic holds them.
    codec = AvroCodec()
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in read_topic(settings.kafka_bootstrap, topic):
        _, state = codec.decode(record.value)  # type: ignore[arg-type]
        where[state["voice_id"]].append((record.partition, record.offset))
    assert sum(len(w) for w in where.values()) == WINDOWS * len(VOICES)
    latencies = []
    for voice in VOICES:
        (partition,) = {p for p, _ in where[voice]}
        offsets = [o for _, o in where[voice]]
        assert len(offsets) == WINDOWS
        for got in (sse_got[voice], ws_got[voice]):
            assert [_offset(c, partition) for c, _, _ in got] == offsets, voice
            assert [d["voice_id"] for _, d, _ in got] == [voice] * WINDOWS
            starts = [d["window_start"] for _, d, _ in got]
            assert starts == sorted(set(starts)) and len(starts) == WINDOWS
            latencies += [at - published[w] for w, (_, _, at) in enumerate(got)]
    assert len(latencies) == 2 * len(VOICES) * WINDOWS
    dropped = _metrics(url)[
        ("deltaomega_feed_subscribers_dropped_total", (("reason", "too slow"), ("topic", topic)))
    ]
    assert dropped == 1
    cuts = statistics.quantiles(latencies, n=100)
    print(f"fan-out to 200 subscribers: p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms")
