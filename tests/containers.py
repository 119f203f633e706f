"""The test stack in Docker containers (`STREAMS_TEST_STACK=testcontainers`).

Same services as ops/stack.sh and docker-compose.yml: Kafka (KRaft), Apicurio Registry with
kafkasql storage, Kafka Connect built from ops/connect/Dockerfile, PostgreSQL. Needs a Docker
engine; it has NOT been run on the project's machines (they have none), see README.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.conftest import StackEndpoints

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def container_stack() -> Iterator[StackEndpoints]:
    """Start the four services on one Docker network; stop them afterwards."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.image import DockerImage
    from testcontainers.core.network import Network
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with ExitStack() as stack:
        network = stack.enter_context(Network())
        kafka = stack.enter_context(
            KafkaContainer("confluentinc/cp-kafka:7.6.0")
            .with_kraft()
            .with_network(network)
            .with_network_aliases("kafka")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        )
        postgres = stack.enter_context(
            PostgresContainer("postgres:15", username="streams", password="streams", dbname="streams")
            .with_network(network)
            .with_network_aliases("postgres")
        )
        registry = stack.enter_context(
            DockerContainer("apicurio/apicurio-registry:3.3.3")
            .with_network(network)
            .with_network_aliases("registry")
            .with_env("APICURIO_STORAGE_KIND", "kafkasql")
            .with_env("APICURIO_KAFKASQL_BOOTSTRAP_SERVERS", "kafka:9092")
            .with_env("APICURIO_CCOMPAT_LEGACY_ID_MODE_ENABLED", "false")
            .with_exposed_ports(8080)
        )
        wait_for_logs(registry, "Installed features", timeout=180)
        image = stack.enter_context(DockerImage(path=ROOT / "ops" / "connect", tag="streams-connect:test"))
        connect = stack.enter_context(
            DockerContainer(str(image))
            .with_network(network)
            .with_env("CONNECT_BOOTSTRAP_SERVERS", "kafka:9092")
            .with_env("CONNECT_REGISTRY_URL", "http://registry:8080/apis/registry/v2")
            .with_exposed_ports(8083)
        )
        wait_for_logs(connect, "Finished starting connectors and tasks", timeout=240)
        yield StackEndpoints(
            bootstrap=kafka.get_bootstrap_server(),
            registry_url=(
                f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}/apis/ccompat/v7"
            ),
            connect_url=f"http://{connect.get_container_host_ip()}:{connect.get_exposed_port(8083)}",
            pg_dsn=(
                f"postgresql://streams:streams@{postgres.get_container_host_ip()}:"
                f"{postgres.get_exposed_port(5432)}/streams"
            ),
        )
