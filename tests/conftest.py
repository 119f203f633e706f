"""Test infrastructure: the real local stack (started once, reused when already up).

`STREAMS_TEST_STACK=process` (default) starts `ops/stack.sh up` (a no-op when it is running);
`external` uses services already running at the configured ports; `testcontainers` starts
the project's own images in containers through testcontainers (a Docker engine, or Podman's
Docker-compatible socket as `make testcontainers-test` uses; see tests/containers.py and docs/operations.md).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StackEndpoints:
    """Where the services of a running stack answer."""

    bootstrap: str
    registry_url: str
    connect_url: str
    pg_dsn: str


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
        pg_dsn=(
            f"postgresql://{env.get('PG_USER', 'streams')}:{env.get('PG_PASSWORD', 'streams')}"
            f"@127.0.0.1:{env.get('PG_PORT', '5432')}/streams"
        ),
    )


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
    endpoints = _process_stack(start=mode != "external")
    _export(endpoints)
    yield endpoints


def _export(endpoints: StackEndpoints) -> None:
    """Make `streams.config.Settings()` point at this stack in this process and in children."""
    os.environ["KAFKA_BOOTSTRAP"] = endpoints.bootstrap
    os.environ["SCHEMA_REGISTRY_URL"] = endpoints.registry_url
    os.environ["CONNECT_URL"] = endpoints.connect_url
    os.environ["PG_DSN"] = endpoints.pg_dsn
    secrets = ROOT / ".stack" / "conf" / "connect-secrets.properties"  # the process stack's Connect
    if os.environ.get("STREAMS_TEST_STACK", "process") != "testcontainers" and secrets.is_file():
        os.environ.setdefault("STREAMS_CONNECT_SECRETS", str(secrets))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """`unique_name("smoke")` -> a name no other test (or run) uses: letters, digits, dashes."""

    def make(prefix: str) -> str:
        return f"{prefix}-{request.node.name[:20]}-{uuid.uuid4().hex[:8]}".lower().replace("_", "-")

    return make
