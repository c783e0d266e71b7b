"""The error tree: one root, one subclass per area; HTTP mapping happens only in the API."""

from __future__ import annotations


class DeltaOmegaError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigurationError(DeltaOmegaError):
    """Settings that cannot work together."""


class LocalKafkaError(DeltaOmegaError):
    """The local broker could not be resolved, formatted, started or stopped."""


class SchemaError(DeltaOmegaError):
    """A schema could not be loaded, registered or found."""


class DecodeError(DeltaOmegaError):
    """Bytes that are not a record we can read (bad magic, unknown schema, truncated)."""


class ValidationError(DecodeError):
    """A decoded record whose values are out of range (NaN, negative strength, missing ids…)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SinkError(DeltaOmegaError):
    """ClickHouse refused a migration or an insert."""


class NotFoundError(DeltaOmegaError):
    """A requested entity (a voice, a window) does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class ModelError(DeltaOmegaError):
    """A model version that is missing, corrupt or built for another feature spec."""


class DeliveryError(DeltaOmegaError):
    """Kafka did not take a batch's outputs; its source offsets must not be committed."""


class ServiceUnavailableError(DeltaOmegaError):
    """A service the pipeline depends on did not answer; the caller may retry later."""

    def __init__(self, service: str, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.service = service
        self.retry_after = retry_after


class KafkaUnavailableError(ServiceUnavailableError):
    """No Kafka broker answered at the configured bootstrap address."""

    def __init__(self, bootstrap: str, detail: str) -> None:
        super().__init__(
            "kafka",
            f"Kafka is not reachable at {bootstrap} ({detail}); start the local broker with "
            "`deltaomega kafka start`, or set DELTAOMEGA_KAFKA_BOOTSTRAP to a running one",
        )
        self.bootstrap = bootstrap


class ClickHouseUnavailableError(ServiceUnavailableError):
    """ClickHouse did not answer (connection refused, timed out, overloaded)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__("clickhouse", f"ClickHouse is not reachable at {where} ({detail})")
        self.where = where


class ConflictError(DeltaOmegaError):
    """A request the current state of its target does not allow (approving one's own
    request, rolling back what is not active)."""


class TooManySubscribersError(DeltaOmegaError):
    """Over a feed subscriber cap: the caller's own (429) or the process's (503)."""

    def __init__(self, message: str, per_principal: bool) -> None:
        super().__init__(message)
        self.per_principal = per_principal
