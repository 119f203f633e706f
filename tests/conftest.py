"""Test infrastructure: the real local stack (started once, reused when already up).

`STREAMS_TEST_STACK=process` (default) starts `ops/stack.sh up` (a no-op when it is running);
`external` uses services already running at the configured ports; `testcontainers` starts
the project's own images in containers through testcontainers (a Docker engine, or Podman's
Docker-compatible socket as `make testcontainers-test` uses; see tests/containers.py and docs/operations.md);
`secure` is `process` with the stack's `STACK_SECURITY=sasl_ssl` (SASL/SCRAM over TLS, ACLs): the
environment `ops/test-secure.sh` sets (side ports, data in `.stack-secure`), the harness's own clients
as the `admin` principal, every worker as `worker` with the ACLs `streams acls apply` grants it
(tests/integration/workers.py). The stack's credentials come from its data dir (`STREAMS_STACK_DATA`).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from streams.config import local_stack_pg_password

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StackEndpoints:
    """Where the services of a running stack answer."""

    bootstrap: str
    registry_url: str
    connect_url: str
    pg_dsn: str


def stack_data() -> Path:
    """The process stack's data dir (as ops/stack.env: `STREAMS_STACK_DATA`, else `.stack`)."""
    return Path(os.environ.get("STREAMS_STACK_DATA") or ROOT / ".stack")


def pg_password() -> str:
    """PostgreSQL's password of the process stack: `PG_PASSWORD`, else the one `ops/stack.sh`
    generated into its data dir (or its Connect secrets file, for a data dir made before), else the
    one in the Connect secrets file `STREAMS_CONNECT_SECRETS` names (another checkout's stack)."""
    if password := os.environ.get("PG_PASSWORD") or local_stack_pg_password(stack_data()):
        return password
    secrets = os.environ.get("STREAMS_CONNECT_SECRETS", "")
    return (
        local_stack_pg_password(Path(secrets).parent.parent)
        if secrets.endswith("conf/connect-secrets.properties")
        else ""
    )


def _process_stack(start: bool) -> StackEndpoints:
    if start:
        result = subprocess.run(["bash", str(ROOT / "ops" / "stack.sh"), "up"], cwd=ROOT)
        if result.returncode != 0:
            pytest.exit("the local stack did not come up (see the output above)", returncode=3)
    env = os.environ
    return StackEndpoints(
        bootstrap=f"127.0.0.1:{env.get('KAFKA_PORT', '9092')}",
        registry_url=f"http://127.0.0.1:{env.get('REGISTRY_PORT', '8081')}/apis/ccompat/v7",
        connect_url=f"http://127.0.0.1:{env.get('CONNECT_PORT', '8083')}",
        pg_dsn=psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=env.get("PG_PORT", "5432"),
            dbname=env.get("PG_DB", "streams"),
            user=env.get("PG_USER", "streams"),
            password=pg_password(),
        ),
    )


def _secure_env() -> dict[str, str]:
    """`STREAMS_TEST_STACK=secure`: the harness's clients as the stack's `admin` (a super user),
    and what `Deployment` gives its workers (the `worker` principal, tests/integration/workers.py)."""
    if os.environ.get("STACK_SECURITY") != "sasl_ssl":
        pytest.exit(
            "STREAMS_TEST_STACK=secure runs in ops/test-secure.sh's environment (make test-secure)", 3
        )
    security = stack_data() / "security"
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "admin",
        "KAFKA_SASL_PASSWORD_FILE": str(security / "admin.password"),
        "KAFKA_SSL_CA_LOCATION": str(security / "ca.pem"),
        "STREAMS_TEST_WORKER_USER": "worker",
        "STREAMS_TEST_WORKER_PASSWORD_FILE": str(security / "worker.password"),
    }


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    """The running stack; every integration test depends on it."""
    mode = os.environ.get("STREAMS_TEST_STACK", "process")
    if mode == "testcontainers":
        from tests.containers import container_stack

        with container_stack() as endpoints:
            _export(endpoints)
            yield endpoints
        return
    if mode == "secure":
        os.environ.update(_secure_env())
    endpoints = _process_stack(start=mode != "external")
    _export(endpoints)
    yield endpoints


def _export(endpoints: StackEndpoints) -> None:
    """Make `streams.config.Settings()` point at this stack in this process and in children."""
    os.environ["KAFKA_BOOTSTRAP"] = endpoints.bootstrap
    os.environ["SCHEMA_REGISTRY_URL"] = endpoints.registry_url
    os.environ["CONNECT_URL"] = endpoints.connect_url
    os.environ["PG_DSN"] = endpoints.pg_dsn
    secrets = stack_data() / "conf" / "connect-secrets.properties"  # the process stack's Connect
    if os.environ.get("STREAMS_TEST_STACK", "process") != "testcontainers" and secrets.is_file():
        os.environ.setdefault("STREAMS_CONNECT_SECRETS", str(secrets))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """`unique_name("smoke")` -> a name no other test (or run) uses: letters, digits, dashes."""

    def make(prefix: str) -> str:
        return f"{prefix}-{request.node.name[:20]}-{uuid.uuid4().hex[:8]}".lower().replace("_", "-")

    return make
