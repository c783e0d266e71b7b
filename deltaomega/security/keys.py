"""API keys: random, shown once, kept only as a SHA-256 hash in a compacted Kafka topic that
every API process follows.

A topic rather than a table: with the embedded ClickHouse only the serving process may open
the database, so a `deltaomega auth` command run beside it could not write there, while
every API process already reads Kafka; a revocation reaches each one within a poll, well
inside the 5 s promised. SHA-256 rather than a password hash: a key is 256 random bits,
so there is nothing to guess, and checking it costs microseconds per request.

The topic holds one record per key (its latest state: created, then revoked) and one
``used/<id>`` record per key with its last use, written at most once a minute by each API
process that sees it. People's accounts (``account/<name>``) and console sign-ins
(``session/<id>``) live on the same topic for the same reasons; :mod:`deltaomega.security.people`
reads and writes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)

from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError, NotFoundError, ServiceUnavailableError
from deltaomega.kafka_clients import UNREACHABLE, KafkaProbe, client_config, unavailable
from deltaomega.outages import outage
from deltaomega.security.roles import Role, Tier
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

PREFIX = "dok"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{16}})_[A-Za-z0-9_-]{{43}}$")
_USED = "used/"
ACCOUNT = "account/"
SESSION = "session/"
#: a person's web push subscription: ``push/<username>/<endpoint digest>``
PUSH = "push/"
#: Each API process writes a key's last use at most this often.
USED_EVERY_SECONDS = 60.0
_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.2


class KeyRejectedError(DeltaOmegaError):
    """An API key that does not prove who calls; the reason is fit to return to the caller."""


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never the key itself, only its hash."""

    key_id: str
    name: str
    role: Role
    tier: Tier
    sha256: str
    created_ms: int
    revoked_ms: int | None = None
    last_used_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    def public(self) -> dict[str, Any]:
        """What an audit row says of the key: never its hash."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role.label,
            "tier": self.tier.value,
            "revoked_ms": self.revoked_ms,
        }

    def to_json(self) -> bytes:
        record = asdict(self) | {"role": self.role.label, "tier": self.tier.value}
        record.pop("last_used_ms")
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, value: bytes) -> ApiKey:
        record = json.loads(value)
        return cls(
            key_id=record["key_id"],
            name=record["name"],
            role=Role.parse(record["role"]),
            tier=Tier.parse(record["tier"]),
            sha256=record["sha256"],
            created_ms=int(record["created_ms"]),
            revoked_ms=record.get("revoked_ms"),
        )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, the key): ``dok_<16 hex>_<43 url-safe characters>``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(text: str) -> str | None:
    match = _KEY.match(text)
    return match.group(1) if match else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _reader(settings: Settings, topic: str, purpose: str) -> tuple[Consumer, TopicPartition]:
    consumer = Consumer(
        {
            **client_config(settings, f"{settings.app_id}-{purpose}"),
            # no group: the partition is assigned, nothing is committed
            "group.id": f"{settings.app_id}-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    return consumer, TopicPartition(topic, 0, OFFSET_BEGINNING)


class _Book:
    """Keys by id with their last use, as the topic's records say."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.used: dict[str, int] = {}
        #: people's accounts and sign-ins by name and id, as JSON objects
        self.accounts: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        #: web push subscriptions by ``<username>/<endpoint digest>``
        self.push: dict[str, dict[str, Any]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:  # a tombstone: subscriptions and old sign-ins are deleted
            if name.startswith(PUSH):
                self.push.pop(name[len(PUSH) :], None)
            elif name.startswith(SESSION):
                self.sessions.pop(name[len(SESSION) :], None)
            return
        try:
            if name.startswith(PUSH):
                self.push[name[len(PUSH) :]] = dict(json.loads(value))
            elif name.startswith(ACCOUNT):
                self.accounts[name[len(ACCOUNT) :]] = dict(json.loads(value))
            elif name.startswith(SESSION):
                self.sessions[name[len(SESSION) :]] = dict(json.loads(value))
            elif name.startswith(_USED):
                key_id = name[len(_USED) :]
                self.used[key_id] = max(self.used.get(key_id, 0), int(json.loads(value)["ms"]))
            else:
                self.keys[name] = ApiKey.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping an unreadable record in the keys topic (%s)", exc)

    def listed(self) -> list[ApiKey]:
        return sorted(
            (replace(k, last_used_ms=self.used.get(k.key_id)) for k in self.keys.values()),
            key=lambda k: (k.created_ms, k.key_id),
        )


def _end_offset(
    consumer: Consumer, partition: TopicPartition, deadline: float, settings: Settings
) -> int:
    """The partition's end offset; retried until ``deadline`` (a topic just created has no
    known leader for a moment)."""
    while True:
        try:
            _, high = consumer.get_watermark_offsets(partition, timeout=_TIMEOUT_SECONDS)
            return int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise unavailable(settings, exc) from exc
            time.sleep(_POLL_SECONDS)


class KeyLedger:
    """What `deltaomega auth create-key | list-keys | revoke-key` do, on the keys topic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = Topics.from_settings(settings).api_keys

    def create(self, name: str, role: Role, tier: Tier = Tier.STANDARD) -> tuple[ApiKey, str]:
        """The new key's record and the key itself (shown once, stored nowhere)."""
        key_id, text = new_key()
        record = ApiKey(key_id, name, role, tier, digest(text), _now_ms())
        self._write(key_id, record.to_json())
        return record, text

    def revoke(self, key_id: str) -> ApiKey:
        current = {k.key_id: k for k in self.list()}.get(key_id)
        if current is None:
            raise NotFoundError("API key", key_id)
        if current.revoked:
            return current
        revoked = replace(current, revoked_ms=_now_ms(), last_used_ms=None)
        self._write(key_id, revoked.to_json())
        return revoked

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first: the topic read to its end."""
        consumer, partition = _reader(self.settings, self.topic, "keys-list")
        book = _Book()
        deadline = time.monotonic() + _TIMEOUT_SECONDS
        try:
            high = _end_offset(consumer, partition, deadline, self.settings)
            consumer.assign([partition])
            position = 0
            while position < high:
                if time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        "kafka", f"the keys topic {self.topic} could not be read to its end"
                    )
                message = consumer.poll(_POLL_SECONDS)
                if message is None or message.error() is not None:
                    continue
                book.apply(message.key(), message.value())
                position = (message.offset() or 0) + 1
        finally:
            consumer.close()
        return book.listed()

    def _write(self, key: str, value: bytes) -> None:
        _write_durably(_durable_producer(self.settings), self.settings, self.topic, key, value)


def _durable_producer(settings: Settings) -> Producer:
    return Producer({**client_config(settings, f"{settings.app_id}-keys"), "acks": "all"})


def _write_durably(
    producer: Producer, settings: Settings, topic: str, key: str, value: bytes | None
) -> None:
    """Produce one record and wait until the broker has it (blocking)."""
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer.produce(topic, value, key.encode(), on_delivery=delivered)
    if producer.flush(_TIMEOUT_SECONDS) > 0 or failures:
        raise unavailable(
            settings, TimeoutError(failures[0] if failures else "not delivered in time")
        )


class KeyFollower:
    """An API process's view of the keys: a thread follows the topic from its start.

    Until it has read the records that were there when it started, a key can be neither
    accepted nor refused: :meth:`check` then says the service is unavailable (503).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = Topics.from_settings(settings).api_keys
        self._book = _Book()
        self._reported: dict[str, float] = {}
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._durable: Producer | None = None
        self._publishing = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="api-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._producer is not None:
            self._producer.flush(1.0)

    def wait_loaded(self, timeout: float) -> bool:
        return self._loaded.wait(timeout)

    @property
    def book(self) -> _Book:
        if not self.loaded:
            raise ServiceUnavailableError("kafka", "accounts are still loading", retry_after=2)
        return self._book

    def publish(self, key: str, value: bytes | None) -> None:
        """Write a record and wait for the broker to have it (blocking: call it off the event
        loop); this process sees it at once, the others within a poll."""
        with self._publishing:
            if self._durable is None:
                self._durable = _durable_producer(self.settings)
            _write_durably(self._durable, self.settings, self.topic, key, value)
        self._book.apply(key.encode(), value)

    def check(self, text: str) -> ApiKey:
        """The key's record if ``text`` is a live key; else KeyRejectedError with why."""
        key_id = key_id_of(text)
        if key_id is None:
            raise KeyRejectedError("malformed API key")
        if not self.loaded:
            raise ServiceUnavailableError("kafka", "API keys are still loading", retry_after=2)
        record = self._book.keys.get(key_id)
        if record is None or not hmac.compare_digest(record.sha256, digest(text)):
            raise KeyRejectedError("unknown API key")
        if record.revoked:
            raise KeyRejectedError("API key revoked")
        self._note_use(key_id)
        return record

    def _note_use(self, key_id: str) -> None:
        now = time.monotonic()
        if now - self._reported.get(key_id, -USED_EVERY_SECONDS) < USED_EVERY_SECONDS:
            return
        self._reported[key_id] = now
        if self._producer is None:
            self._producer = Producer(client_config(self.settings, f"{self.settings.app_id}-keys"))
        value = json.dumps({"ms": _now_ms()}).encode()
        try:
            self._producer.produce(self.topic, value, f"{_USED}{key_id}".encode())
            self._producer.poll(0)
        except (KafkaException, BufferError) as exc:
            log.debug("could not record the use of key %s: %s", key_id, exc)

    def _follow(self) -> None:
        consumer, partition = _reader(self.settings, self.topic, "keys")
        try:
            high = self._initial_end(consumer, partition)
            if high is None:
                return
            consumer.assign([partition])
            if high == 0:
                self._loaded.set()
            probe = KafkaProbe()  # this may be the process's only Kafka client
            while not self._stop.is_set():
                message = consumer.poll(_POLL_SECONDS)
                probe(consumer)
                if message is None or message.error() is not None:
                    continue
                self._book.apply(message.key(), message.value())
                if (message.offset() or 0) + 1 >= high:
                    self._loaded.set()
        finally:
            consumer.close()

    def _initial_end(self, consumer: Consumer, partition: TopicPartition) -> int | None:
        """The topic's end when following starts (retried while Kafka is away); None when
        stopped first."""
        while not self._stop.is_set():
            try:
                _, high = consumer.get_watermark_offsets(partition, timeout=2.0)
                outage("kafka").recovered()
                return int(high)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in UNREACHABLE:
                    outage("kafka").failed(error.str())
                else:  # e.g. a new topic's leader not elected yet
                    log.debug("waiting for %s: %s", self.topic, error.str())
                self._stop.wait(1.0)
        return None
