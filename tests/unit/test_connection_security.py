"""One connection config for every Kafka client: librdkafka's, aiokafka's and Faust's
security settings all come from the same Settings (deltaomega.kafka_clients)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from deltaomega.config import Settings
from deltaomega.kafka_clients import aiokafka_config, client_config, faust_credentials

PACKAGE = Path(__file__).resolve().parents[2] / "deltaomega"


def test_plaintext_adds_nothing() -> None:
    settings = Settings(kafka_bootstrap="k:9092")
    assert "security.protocol" not in client_config(settings)
    assert aiokafka_config(settings) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None


def test_sasl_ssl_reaches_every_kind_of_client() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="pipeline",
        kafka_sasl_password="s3cret",
    )
    config = client_config(settings, "x")
    assert {k: config[k] for k in config if k.startswith(("security", "sasl", "ssl"))} == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "pipeline",
        "sasl.password": "s3cret",
    }
    aio = aiokafka_config(settings)
    assert aio["security_protocol"] == "SASL_SSL"
    assert (aio["sasl_mechanism"], aio["sasl_plain_username"], aio["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "pipeline",
        "s3cret",
    )
    assert aio["ssl_context"].minimum_version == ssl.TLSVersion.TLSv1_2
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "pipeline"


def test_ssl_files_are_librdkafka_locations() -> None:
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=Path("/etc/ca.pem"),
        kafka_ssl_cert_file=Path("/etc/client.pem"),
        kafka_ssl_key_file=Path("/etc/client.key"),
    )
    config = client_config(settings)
    assert (config["security.protocol"], config["ssl.ca.location"]) == ("ssl", "/etc/ca.pem")
    assert (config["ssl.certificate.location"], config["ssl.key.location"]) == (
        "/etc/client.pem",
        "/etc/client.key",
    )


def test_sasl_needs_a_user() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username is needed"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
