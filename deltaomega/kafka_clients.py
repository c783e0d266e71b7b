"""One connection config for every Kafka client: bootstrap, client id, logging and errors.

librdkafka reports a broker it cannot reach twice, through its log and its error callback,
every time it retries (about 20 times a second). Here both go to the ``kafka`` outage
tracker (:mod:`deltaomega.outages`), which logs the first failure, a summary while it
lasts and its end; librdkafka's connection-failure log lines are dropped as repeats, and
its other warnings while the cluster is away or coming back (leaders not known yet,
coordinators loading) are logged at INFO: they are the outage's after-effects, not news.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from deltaomega.config import Settings
from deltaomega.errors import KafkaUnavailableError
from deltaomega.outages import outage

#: librdkafka's own log lines, through our handler
KAFKA_LOG = logging.getLogger("deltaomega.kafka")

#: Error codes that mean "the cluster is not reachable" rather than "this request failed".
UNREACHABLE = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,  # noqa: SLF001 - librdkafka's local error codes
        KafkaError._TRANSPORT,  # noqa: SLF001
        KafkaError._RESOLVE,  # noqa: SLF001
        KafkaError._TIMED_OUT,  # noqa: SLF001
    }
)
# librdkafka warnings of a moment that clients wait out (a broker stopping, leadership
# moving); they come just before an outage is known, too, and persist only as errors.
_TRANSIENT = ("not found in cache",)
# librdkafka log lines that repeat what the error callback reports.
_REPEATS = ("Connect to ", "Disconnected", "brokers are down", "Connection refused")


class _RepeatFilter(logging.Filter):
    """Drop librdkafka's connection-failure lines: the outage tracker speaks for them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(repeat in message for repeat in _REPEATS):
            return False
        transient = any(marker in message for marker in _TRANSIENT)
        if record.levelno == logging.WARNING and (transient or outage("kafka").recovering()):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


KAFKA_LOG.addFilter(_RepeatFilter())

#: The Python clients (aiokafka under the feeds and the control plane's Faust) log each
#: failed attempt at a broker that is away, several times a second.
_PYTHON_CLIENTS = ("aiokafka", "faust", "mode")
_CONNECTION_FAILURES = (
    "Unable connect to node",
    "Unable to connect",
    "Failed fetch messages",
    "KafkaConnectionError",
    "NodeNotReadyError",
    "Unable to update metadata",
    "Unable to request metadata",
    "Group Coordinator Request failed",
    "Heartbeat send request failed",
    "Connection at",
    "coordinator dead",
)


#: Their errors of a moment that they retry themselves, answered by a broker: a new topic's
#: leader not elected yet; a group's coordinator not there yet (on a new cluster the first
#: group's lookup creates the offsets topic), moved, or loading.
_PYTHON_TRANSIENT = (
    "NotLeaderForPartitionError",
    "LeaderNotAvailableError",
    "CoordinatorNotAvailableError",
    "NotCoordinatorForGroupError",
    "LoadInProgressError",
)


class PythonClientFilter(logging.Filter):
    """For a handler: the Python clients' connection failures go to the ``kafka`` outage
    tracker (which logs the first, a summary and the end) instead of one line each; their
    other warnings while the cluster is away or coming back, and errors of a moment that
    they retry themselves, are logged at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_PYTHON_CLIENTS) or record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        transient = any(m in message for m in _PYTHON_TRANSIENT)
        if not transient and any(failure in message for failure in _CONNECTION_FAILURES):
            outage("kafka").failed(message[:300])
            return False
        if transient or outage("kafka").recovering():
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


class KafkaProbe:
    """For a client's own thread: while Kafka is down, asks the cluster for metadata every
    few seconds, and only an answer ends the outage (records a consumer still has fetched,
    or a flush with nothing to send, say nothing of the broker)."""

    EVERY_SECONDS = 2.0

    def __init__(self) -> None:
        self._at = 0.0

    def __call__(self, client: Any) -> None:
        kafka = outage("kafka")
        now = time.monotonic()
        if not kafka.down or now - self._at < self.EVERY_SECONDS:
            return
        self._at = now
        try:
            client.list_topics(timeout=1.0)
        except KafkaException:
            return
        kafka.recovered()


def on_kafka_error(error: KafkaError) -> None:
    """librdkafka's error callback, for every client."""
    if error.code() in UNREACHABLE:
        outage("kafka").failed(error.str())
    elif error.fatal():
        KAFKA_LOG.error("fatal Kafka client error: %s", error.str())
    else:
        KAFKA_LOG.warning("Kafka client error: %s", error.str())


def client_config(settings: Settings, client_id: str | None = None) -> dict[str, Any]:
    """librdkafka settings shared by every producer, consumer and admin client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": KAFKA_LOG,
        "error_cb": on_kafka_error,
        # Reconnect quickly at first, then at most every 2 s while the broker is away.
        "reconnect.backoff.max.ms": 2000,
    }
    if client_id is not None:
        config["client.id"] = client_id
    return config | security_config(settings)


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's security settings (TLS, SASL); empty for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config: dict[str, Any] = {"security.protocol": protocol.lower()}
    files = {
        "ssl.ca.location": settings.kafka_ssl_ca_file,
        "ssl.certificate.location": settings.kafka_ssl_cert_file,
        "ssl.key.location": settings.kafka_ssl_key_file,
    }
    config |= {name: str(path) for name, path in files.items() if path is not None}
    if protocol.startswith("SASL"):
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        }
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the Python clients (aiokafka, Faust); None without TLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.kafka_ssl_cert_file is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_cert_file),
            str(settings.kafka_ssl_key_file) if settings.kafka_ssl_key_file else None,
        )
    return context


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """The same connection for aiokafka clients (the API's feeds)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        config |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return config


def faust_credentials(settings: Settings) -> Any:
    """The same connection for Faust (the control plane); None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings, f"{settings.app_id}-admin"))


#: What a partition says for a moment after its topic is created (its leader being elected).
NOT_READY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def watermarks(
    consumer: Consumer,
    tp: TopicPartition,
    within_seconds: float,
    stopping: threading.Event | None = None,
) -> tuple[int, int]:
    """The partition's (low, high) offsets, waiting out a new topic's leader election for
    up to ``within_seconds``; other errors, and that one when it lasts, are raised."""
    deadline = time.monotonic() + within_seconds
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=2.0)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            passing = error.code() in NOT_READY or error.retriable()
            if not passing or time.monotonic() > deadline:
                raise
            if (stopping or threading.Event()).wait(0.2):
                raise


def unavailable(settings: Settings, exc: BaseException) -> KafkaUnavailableError:
    """The error to raise when Kafka did not answer, naming where we looked and what to do
    (and the outage tracker is told)."""
    detail = exc.args[0].str() if isinstance(exc, KafkaException) and exc.args else str(exc)
    outage("kafka").failed(detail or type(exc).__name__)
    return KafkaUnavailableError(settings.kafka_bootstrap, detail or type(exc).__name__)
