"""Every client's connection settings come from `Settings`: plaintext by default, SASL/TLS with
credentials (a password or a file) and a CA file when configured."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import faust

from streams.config import Settings
from streams.kafka import clients


def _settings(**env: str) -> Settings:
    with mock.patch.dict(os.environ, env):
        return Settings()


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = _settings(KAFKA_BOOTSTRAP="h:1", KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert clients.connection(settings) == {"bootstrap.servers": "h:1"}
    assert clients.faust_credentials(settings) is None


def test_sasl_ssl_with_a_password_file_and_a_ca(tmp_path: Path) -> None:
    secret = tmp_path / "worker.password"
    secret.write_text("s3cret\n")
    settings = _settings(
        KAFKA_BOOTSTRAP="h:1",
        KAFKA_SECURITY_PROTOCOL="sasl_ssl",
        KAFKA_SASL_USERNAME="worker",
        KAFKA_SASL_PASSWORD="",
        KAFKA_SASL_PASSWORD_FILE=str(secret),
        KAFKA_SSL_CA_LOCATION="/ca.pem",
    )
    assert clients.connection(settings) == {
        "bootstrap.servers": "h:1",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "worker",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/ca.pem",
    }
    assert "s3cret" not in repr(settings)
    # every client builder starts from it
    assert clients.admin  # built lazily: checked through the config the builders share below
    with mock.patch.object(clients, "Producer") as producer:
        clients.producer(settings)
    assert producer.call_args.args[0]["sasl.username"] == "worker"


def test_faust_gets_the_same_credentials(tmp_path: Path) -> None:
    settings = _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="worker",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_LOCATION="",
    )
    credentials = clients.faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "worker",
        "pw",
        "SCRAM-SHA-512",
    )
    assert credentials.ssl_context is not None
