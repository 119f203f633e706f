"""The test stack in containers (`STREAMS_TEST_STACK=testcontainers`), through testcontainers-python.

The images are the project's own (ops/images/Containerfile, tagged `localhost/streams-<service>:dev`
by `bash ops/containers.sh build`), the same ones docker-compose.yml runs. The four services share
one network namespace, like the containers of a pod: each listens at a free port that the first
container (Kafka) publishes on the host's 127.0.0.1 under the same number. So every
address is the same inside the containers and on the host, as with the process stack: Kafka
advertises 127.0.0.1:<port>, and a JDBC sink that the tests configure with the host's PostgreSQL
address reaches it from the Connect container too.

Docker: uses the engine as usual. Podman: when neither DOCKER_HOST nor /var/run/docker.sock is
there, `ops/containers.sh socket-start` starts Podman's Docker-compatible API service; testcontainers'
reaper (Ryuk, an image from Docker Hub) is disabled there, and the containers are removed (with
their volumes) when the session ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import StackEndpoints

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {name: f"localhost/streams-{name}:dev" for name in ("kafka", "registry", "connect", "postgres")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker_host() -> None:
    """Point testcontainers at Podman's API service when no Docker engine is configured."""
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        return
    host = subprocess.run(
        ["bash", str(ROOT / "ops" / "containers.sh"), "socket-start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    os.environ["DOCKER_HOST"] = host
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def _podman_kwargs() -> dict[str, Any]:
    """Podman's API service does not apply containers.conf's default ulimits, and this VM refuses
    the host's: the limits of ops/containers/containers.conf, given per container."""
    import docker

    version = docker.from_env().version()
    if not any("podman" in str(c.get("Name", "")).lower() for c in version.get("Components", [])):
        return {}
    return {
        "ulimits": [
            docker.types.Ulimit(name="nofile", soft=1024, hard=4096),
            docker.types.Ulimit(name="nproc", soft=1024, hard=4096),
        ]
    }


def _wait(what: str, check: Callable[[], bool], logs: Callable[[], str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not answering yet
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; last log lines:\n{logs()}")


def _logs(container: Any) -> Callable[[], str]:
    def tail() -> str:
        out, err = container.get_logs()
        return "\n".join((out + err).decode(errors="replace").splitlines()[-40:])

    return tail


@contextmanager
def container_stack() -> Iterator[StackEndpoints]:
    """Start Kafka, the registry, Connect and PostgreSQL; remove them afterwards."""
    _docker_host()
    from confluent_kafka.admin import AdminClient
    from testcontainers.core.container import DockerContainer

    engine = _podman_kwargs()
    port = {name: _free_port() for name in ("kafka", "controller", "registry", "mgmt", "connect", "postgres")}
    with ExitStack() as stack:
        # the owner of the shared network namespace publishes every port. The services listen on
        # 0.0.0.0 of that namespace: published ports arrive on its network interface, not on lo
        kafka = (
            DockerContainer(IMAGES["kafka"])
            .with_env(
                "KAFKA_LISTENERS",
                f"PLAINTEXT://0.0.0.0:{port['kafka']},CONTROLLER://127.0.0.1:{port['controller']}",
            )
            .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port['kafka']}")
            .with_env("KAFKA_INTER_BROKER_LISTENER", "PLAINTEXT")
            .with_env("KAFKA_CONTROLLER_PORT", str(port["controller"]))
            .with_kwargs(**engine)
        )
        for name in ("kafka", "registry", "mgmt", "connect", "postgres"):
            # on the host's 127.0.0.1 only (docker-py's (ip, port) form; with_bind_ports takes no ip)
            kafka.ports[str(port[name])] = ("127.0.0.1", port[name])  # type: ignore[assignment]
        stack.enter_context(kafka)
        netns = {"network_mode": f"container:{kafka.get_wrapped_container().id}", **engine}
        postgres = stack.enter_context(
            DockerContainer(IMAGES["postgres"])
            .with_env("PG_PORT", str(port["postgres"]))
            .with_kwargs(**netns)
        )
        registry = stack.enter_context(
            DockerContainer(IMAGES["registry"])
            .with_env("REGISTRY_KAFKA_BOOTSTRAP", f"127.0.0.1:{port['kafka']}")
            .with_env("REGISTRY_HTTP_PORT", str(port["registry"]))
            .with_env("REGISTRY_MGMT_PORT", str(port["mgmt"]))
            .with_kwargs(**netns)
        )
        connect = stack.enter_context(
            DockerContainer(IMAGES["connect"])
            .with_env("CONNECT_BOOTSTRAP", f"127.0.0.1:{port['kafka']}")
            .with_env("CONNECT_PORT", str(port["connect"]))
            .with_env("CONNECT_ADVERTISED_HOST", "127.0.0.1")
            .with_env("CONNECT_REGISTRY_URL", f"http://127.0.0.1:{port['registry']}/apis/registry/v2")
            .with_kwargs(**netns)
        )
        endpoints = StackEndpoints(
            bootstrap=f"127.0.0.1:{port['kafka']}",
            registry_url=f"http://127.0.0.1:{port['registry']}/apis/ccompat/v7",
            connect_url=f"http://127.0.0.1:{port['connect']}",
            pg_dsn=f"postgresql://streams:streams@127.0.0.1:{port['postgres']}/streams",
        )
        _wait(
            "kafka",
            lambda: bool(
                AdminClient({"bootstrap.servers": endpoints.bootstrap}).list_topics(timeout=5).brokers
            ),
            _logs(kafka),
        )

        def pg_ready() -> bool:
            import psycopg

            with psycopg.connect(endpoints.pg_dsn, connect_timeout=3) as conn:
                return conn.execute("select 1").fetchone() == (1,)

        _wait("postgres", pg_ready, _logs(postgres))
        _wait(
            "registry",
            lambda: (
                httpx.get(f"http://127.0.0.1:{port['mgmt']}/health/ready", timeout=5).status_code == 200
                and httpx.get(f"{endpoints.registry_url}/subjects", timeout=5).status_code == 200
            ),
            _logs(registry),
        )
        _wait(
            "connect",
            lambda: (
                "JdbcSinkConnector" in httpx.get(f"{endpoints.connect_url}/connector-plugins", timeout=5).text
            ),
            _logs(connect),
        )
        yield endpoints
