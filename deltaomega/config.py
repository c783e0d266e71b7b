"""The one Settings object: every knob comes from here (env prefix ``DELTAOMEGA_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "deltaomega"


#: The token secret a development setup runs with; refused unless ``env`` is development.
DEVELOPMENT_AUTH_SECRET = "deltaomega-development-secret-not-for-production"  # noqa: S105


class Settings(BaseSettings):
    """Runtime configuration, read from the environment and an optional ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="DELTAOMEGA_", env_file=".env", extra="ignore")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name (isolates tenants and tests)."
    )
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    schema_registry_url: str | None = Field(
        default=None, description="Confluent-compatible registry; unset = Avro single-object."
    )
    # Kafka connection security, for every client (deltaomega.kafka_clients)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="CA bundle the brokers' certificates are checked against."
    )
    kafka_ssl_cert_file: Path | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_key_file: Path | None = Field(default=None, description="Its private key.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr = SecretStr("")

    # Local broker (`deltaomega kafka …`, test fixtures)
    kafka_version: str = "4.1.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_data_dir: Path | None = None
    kafka_heap: str = "512m"
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    # Local state: open-window checkpoints (RocksDB) and the embedded ClickHouse live here.
    data_dir: Path = Path(".deltaomega")

    # Stream processing
    app_id: str = "deltaomega"
    window_seconds: float = Field(default=10.0, gt=0)
    interaction_window_seconds: float = Field(default=10.0, gt=0)
    grace_seconds: float = Field(default=5.0, ge=0)
    batch_max_records: int = Field(
        default=50_000, ge=1, description="Records per consume call; fewer, larger inserts."
    )
    batch_max_events: int = Field(
        default=100_000,
        ge=1,
        description="Events per batch when records hold many (VoiceEventBatch): the consume"
        " size follows the events per record seen, so decoding, aggregating and the insert"
        " of consecutive batches overlap instead of one huge batch doing each in turn.",
    )
    batch_within_seconds: float = Field(default=0.2, gt=0)
    batch_retries: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts at a batch whose processing fails (each rolled back) before"
        " its failing records are isolated and dead-lettered.",
    )
    deadletter_max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="A dead letter's value is cut to this size (headers say so): a record"
        " the source topic took may be too large for the dead-letter topic.",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="This worker's static consumer-group member name; unset = host name and"
        " state directory. A restarted worker with the same name resumes at once.",
    )
    consumer_session_timeout_seconds: float = Field(
        default=15.0,
        ge=6,
        le=300,
        description="How long the group waits for a silent worker before another takes its"
        " partitions.",
    )
    shutdown_seconds: float = Field(
        default=8.0,
        gt=0,
        le=60,
        description="A stop signal ends the process within this time, whatever it waits on.",
    )
    outage_summary_seconds: float = Field(
        default=30.0,
        gt=0,
        description="While Kafka or ClickHouse is away, one summary line per this period.",
    )
    faults: str = Field(
        default="",
        description="Test-only: fault points to arm (deltaomega.faults), e.g."
        " 'voice.before_commit=kill@3'. Empty in any real deployment.",
    )

    # Models and alerts
    models_enabled: bool = Field(default=True, description="Run the models on every tick.")
    models_dir: Path | None = Field(
        default=None, description="Model registry; unset = data_dir/models (shipped version)."
    )
    models_poll_seconds: float = Field(default=2.0, gt=0)
    inference_threads: int = Field(default=1, ge=1, le=64)
    inference_warm_up_voices: int = Field(
        default=1_000,
        ge=0,
        description="System size the model sessions are warmed up for before they serve "
        "(0: no warm-up); larger systems' first ticks are slower and smaller ones hold "
        "memory they do not need.",
    )
    inference_settle_seconds: float = Field(
        default=1.0, ge=0, description="Wait for late partitions' states before a tick runs."
    )
    conflict_max_graph_voices: int = Field(default=256, ge=2)
    conflict_publish_min: float = Field(
        default=0.05, ge=0, le=1, description="Pairs without interactions publish from here up."
    )
    conflict_unlinked_per_voice: int = Field(
        default=3,
        ge=0,
        description="At most this many pairs without interactions per source voice and tick "
        "(the most probable): bounds the output of large systems.",
    )
    alert_conflict_warning: float = Field(default=0.6, ge=0, le=1)
    alert_conflict_critical: float = Field(default=0.85, ge=0, le=1)
    conflict_observed_strength: float = Field(
        default=0.9,
        gt=0,
        description="Antagonistic strength (competition + suppression, source → target) at "
        "which a pair counts as in conflict when conflict predictions are scored.",
    )
    alert_emergence_threshold: float = Field(default=0.5, ge=0, le=1)
    alert_emergence_critical: float = Field(default=0.8, ge=0, le=1)
    alert_stress_level: float = Field(default=0.7, ge=0, le=1)
    alert_stress_rise: float = Field(default=0.1, ge=0, le=1)
    alert_breach_sigmas: float = Field(default=3.0, gt=0)
    alert_breach_warning_metrics: int = Field(default=2, ge=1, le=4)
    # The seed's rules about the pipeline itself (deltaomega/streams/health.py)
    alert_sync_delay_seconds: float = Field(
        default=0.5,
        gt=0,
        description="A closed window's state emitted later than this after it could close.",
    )
    alert_error_rate: float = Field(
        default=0.05, gt=0, le=1, description="Share of records dead-lettered in a window."
    )
    alert_memory_fraction: float = Field(
        default=0.8, gt=0, le=1, description="Resident memory over the memory available."
    )

    # ClickHouse
    clickhouse_url: str | None = Field(
        default=None, description="chdb://PATH or http(s)://host:8123; unset = embedded chdb."
    )
    clickhouse_database: str = Field(default="deltaomega", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_ca_file: Path | None = Field(
        default=None, description="CA bundle for an https:// ClickHouse URL (else the system's)."
    )
    clickhouse_read_connections: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Connections the API reads with, apart from the worker's inserts.",
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_tls_cert: Path | None = Field(
        default=None, description="With api_tls_key: serve HTTPS (TLS 1.2 or later, 1.3 first)."
    )
    api_tls_key: Path | None = None
    sse_ping_seconds: float = Field(default=15.0, gt=0)
    analysis_max_execution_seconds: float = Field(
        default=10.0, gt=0, description="An analyst's SQL query is stopped after this long."
    )
    analysis_max_result_rows: int = Field(
        default=10_000, ge=1, description="Rows an analyst's SQL query may return."
    )
    analysis_max_rows_to_read: int = Field(
        default=200_000_000, ge=1, description="Rows an analyst's SQL query may read."
    )
    analysis_max_memory_bytes: int = Field(
        default=2 << 30, ge=1 << 20, description="Memory an analyst's SQL query may use."
    )
    export_max_rows: int = Field(
        default=100_000, ge=1, description="Rows an analyst's export holds (admins: 10 times)."
    )
    ws_ping_seconds: float = Field(
        default=20.0, gt=0, description="WebSocket pings; a peer that does not answer is closed."
    )
    ws_idle_seconds: float = Field(
        default=300.0, gt=0, description="A WebSocket with no subscription that says nothing."
    )
    feed_max_subscribers: int = Field(
        default=2000, ge=1, description="Feed subscribers (SSE and WebSocket) per API process."
    )
    feed_max_subscribers_per_principal: int = Field(
        default=50, ge=1, description="Feed subscribers per caller in one API process."
    )
    feed_queue_records: int = Field(
        default=50_000,
        ge=100,
        description="Records waiting for one subscriber before it is dropped as too slow.",
    )
    api_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Identical reads within this time share one answer (0: no cache).",
    )
    api_default_range_hours: float = Field(
        default=24.0,
        gt=0,
        description="A read without a start covers this much time before its end (or now):"
        " no request reads a whole table.",
    )

    # Identity
    env: Literal["development", "production"] = Field(
        default="production",
        description="development accepts the built-in token secret; production refuses it.",
    )
    auth_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_AUTH_SECRET),
        description="HS256 secret of the API's own tokens (at least 32 characters).",
    )
    auth_jwks_url: str | None = Field(
        default=None,
        description="An identity provider's JWKS URL: tokens are then RS256/ES256, its keys.",
    )
    auth_issuer: str = "deltaomega"
    auth_audience: str = "deltaomega-api"
    session_access_seconds: int = Field(
        default=900, ge=30, description="Life of a console sign-in's access token."
    )
    session_refresh_seconds: int = Field(
        default=12 * 3600,
        ge=60,
        description="Life of a console sign-in: its refresh tokens rotate within it.",
    )
    console_origin: str | None = Field(
        default=None,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description=(
            "The console's origin (scheme://host[:port]) as browsers see it, for security "
            "keys (WebAuthn); unset: the origin each request reached the API by."
        ),
    )
    push_vapid_private_key: SecretStr | None = Field(
        default=None,
        description=(
            "The web push (VAPID) signing key, a P-256 private key in PEM; unset: "
            "derived from the token secret."
        ),
    )
    push_subject: str = Field(
        default="mailto:deltaomega@localhost",
        pattern=r"^(mailto:|https://)",
        description="The VAPID contact push services see (a mailto: or https: URL).",
    )
    push_endpoint_hosts: list[str] = Field(
        default=[
            "fcm.googleapis.com",
            "push.services.mozilla.com",
            "web.push.apple.com",
            "notify.windows.com",
        ],
        description="Push services (host names, with their subdomains) sent to.",
    )
    step_up_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="How long a security-key step-up allows emergency actions.",
    )
    auth_anonymous: bool = Field(
        default=False,
        description="Callers without credentials may read as viewers (10 requests/min).",
    )
    metrics_auth: bool = Field(
        default=False, description="/metrics asks for a viewer's credentials too."
    )
    rate_limits: bool = Field(default=True, description="Enforce the per-caller rate limits.")
    rate_limit_storage: str = Field(
        default="memory://",
        pattern=r"^(memory|redis|rediss|redis\+unix)://",
        description="Where rate-limit counters live: memory:// (this process) or "
        "redis://host:6379 (shared by every API process).",
    )

    # Retention in ClickHouse (TTL on event time; 0 keeps rows for ever)
    ttl_raw_days: int = Field(default=30, ge=0, description="Raw events.")
    ttl_outputs_days: int = Field(
        default=365, ge=0, description="Closed windows, model outputs, alerts, the voice list."
    )
    orchestration_approval_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="A proposed orchestration not approved within this time expires.",
    )
    policies_file: Path | None = Field(
        default=None,
        description="YAML policies that turn alerts into proposed orchestrations "
        "(deltaomega/control/policies.py); none without one.",
    )
    alert_routing_file: Path | None = Field(
        default=None,
        description="YAML alert routing: channels, routes by severity, escalation, quiet "
        "hours (deltaomega/alerting/routing.py); without one, alerts reach the console only.",
    )
    alert_delivery_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts per notification and channel."
    )
    alert_delivery_backoff_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Base of the exponential back-off (full jitter) between attempts.",
    )
    alert_clear_after_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="A closed window clears alert conditions this long after the control "
        "plane heard of it, once the alerts of its tick (on other partitions) are in.",
    )
    ttl_audit_days: int = Field(
        default=7 * 365 + 2, ge=0, description="The audit log: seven years, as the seed asks."
    )

    # Logging
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ValueError("api_tls_cert and api_tls_key go together: set both or neither")
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_username:
            raise ValueError("kafka_sasl_username is needed with a SASL security protocol")
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("topic_prefix may only hold letters, digits, '.', '_' and '-'")
        return value

    @property
    def clickhouse_dsn(self) -> str:
        """Where ClickHouse is: the configured URL, or the embedded engine in ``data_dir``."""
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def window_ms(self) -> int:
        return int(self.window_seconds * 1000)

    @property
    def interaction_window_ms(self) -> int:
        return int(self.interaction_window_seconds * 1000)

    @property
    def api_default_range_ms(self) -> int:
        return int(self.api_default_range_hours * 3_600_000)

    @property
    def grace_ms(self) -> int:
        return int(self.grace_seconds * 1000)

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or (self.data_dir / "models")

    @property
    def resolved_kafka_data_dir(self) -> Path:
        return self.kafka_data_dir or (self.data_dir / "kafka")
