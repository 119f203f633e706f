"""The secured stack of these tests: `ops/stack.sh` with `STACK_SECURITY=sasl_ssl` (SASL/SCRAM over
TLS, ACLs) on ports and in a data directory of its own, beside the default stack. It lives as long
as the test module that uses it and is stopped after it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from streams.config import Settings

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class SecureStack:
    """Where the secured stack answers (Kafka on `kafka_port`, the registry on `registry_port`)."""

    kafka_port: int = int(os.environ.get("SECURE_KAFKA_PORT", "29092"))
    registry_port: int = int(os.environ.get("SECURE_REGISTRY_PORT", "28081"))
    data: Path = Path(os.environ.get("SECURE_STACK_DATA", str(ROOT / ".stack-secure")))

    def stack_env(self) -> dict[str, str]:
        """`ops/stack.sh`'s environment for this stack."""
        return {
            **os.environ,
            "STACK_SECURITY": "sasl_ssl",
            "STACK_BROKERS": "1",
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.kafka_port + 1),
            "REGISTRY_PORT": str(self.registry_port),
            "REGISTRY_MGMT_PORT": str(self.registry_port + 1000),
            "CONNECT_PORT": str(self.registry_port + 2),
            "STREAMS_STACK_DATA": str(self.data),
            "STACK_START_TIMEOUT": os.environ.get("SECURE_STACK_START_TIMEOUT", "300"),
            "PYTHON": sys.executable,
        }

    def stack(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `ops/stack.sh` against this stack (its output captured)."""
        return subprocess.run(
            ["bash", str(ROOT / "ops" / "stack.sh"), *args],
            env=self.stack_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    def client_env(self, user: str | None, **extra: str) -> dict[str, str]:
        """A client's environment as SCRAM user `user` (its generated password file), or a
        plaintext client without credentials when `user` is None."""
        security = self.data / "security"
        env = {
            "KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7",
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "KAFKA_SASL_USERNAME": "",
            "KAFKA_SASL_PASSWORD": "",
            "KAFKA_SASL_PASSWORD_FILE": "",
            "KAFKA_SSL_CA_LOCATION": "",
        }
        if user is not None:
            env.update(
                KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                KAFKA_SASL_USERNAME=user,
                KAFKA_SASL_PASSWORD_FILE=str(security / f"{user}.password"),
                KAFKA_SSL_CA_LOCATION=str(security / "ca.pem"),
            )
        env.update(extra)
        return env

    def settings(self, user: str | None, **extra: str) -> Settings:
        """The settings of a client of this stack (see `client_env`)."""
        with mock.patch.dict(os.environ, self.client_env(user, **extra)):
            return Settings()


@pytest.fixture(scope="module")
def secure_stack() -> Iterator[SecureStack]:
    """Kafka and the registry with SASL_SSL and ACLs, started by the project's own script for
    the module and stopped after it (skipped, with the script's output, if it cannot start)."""
    stack = SecureStack()
    started = stack.stack("up", "kafka", "registry")
    try:
        if started.returncode != 0:
            pytest.skip(f"the SASL_SSL stack did not start: {(started.stderr or started.stdout)[-1500:]}")
        yield stack
    finally:
        stack.stack("down", "kafka", "registry")


@pytest.fixture(scope="module")
def prefix() -> str:
    """The test deployment's topic prefix and app id (ACLs are granted for it)."""
    return f"s{uuid.uuid4().hex[:8]}"
