"""Identity and authorisation on the SASL_SSL stack (`STACK_SECURITY=sasl_ssl`): clients without or
with wrong credentials are refused; the ACLs `streams acls apply` derives keep a device to the raw
telemetry topic and a worker to its own contexts; a worker with its credentials runs the write
path and a view end to end, configured by its environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.devices.telemetry import TELEMETRY
from streams.contexts.orders import PlaceOrder
from streams.kafka import clients
from streams.kafka.runtime import ensure_topics
from streams.wire.topics import ContextTopics
from tests.integration.security.conftest import ROOT, SecureStack
from tests.integration.workers import Deployment, json_answer, wait_until

pytestmark = pytest.mark.integration


def acls_apply(stack: SecureStack, prefix: str, contexts: str, *principal: str) -> None:
    """`streams acls apply <principal options>` as the admin user for `contexts`."""
    env = stack.client_env(
        "admin", STREAMS_TOPIC_PREFIX=f"{prefix}.", STREAMS_APP_ID=prefix, STREAMS_CONTEXTS=contexts
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "acls", "apply", *principal],
        env={**_base_env(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def granted(secure_stack: SecureStack, prefix: str) -> Iterator[str]:
    """The deployment's ACLs, applied by the CLI: workers run `orders`, devices send `devices`'
    telemetry. The devices' topics are made by the admin (a worker running `devices` would)."""
    acls_apply(secure_stack, prefix, "orders", "--worker", "User:worker")
    acls_apply(secure_stack, prefix, "devices", "--device", "User:device")
    admin = secure_stack.settings("admin", STREAMS_TOPIC_PREFIX=f"{prefix}.")
    devices = ContextTopics("devices", admin.topic_prefix)
    ensure_topics(admin, devices.specs(2) + devices.window_specs(TELEMETRY.name, 2))
    yield prefix
    # the stack's data dir is kept between runs: its topics go, so that its start stays short
    client = clients.admin(admin)
    mine = [t for t in client.list_topics(timeout=30).topics if t.startswith((f"{prefix}.", f"{prefix}-"))]
    for future in client.delete_topics(mine, operation_timeout=30).values() if mine else ():
        future.result(timeout=60)


def _base_env() -> dict[str, str]:
    """This process's environment without another stack's Kafka settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}


def refused(settings: Settings) -> str:
    """The error an admin client of `settings` meets listing topics ("" when it succeeds)."""
    try:
        clients.admin(settings).list_topics(timeout=6)
    except KafkaException as exc:
        return str(exc.args[0])
    return ""


def delivery(settings: Settings, topic: str) -> KafkaError | None:
    """Produce one record to `topic` as `settings`' principal: its delivery error, or None."""
    producer = clients.producer(settings)
    outcome: list[KafkaError | None] = []
    producer.produce(topic, b"{}", b"dev-1", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(30)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0]


def test_a_client_without_credentials_is_refused(secure_stack: SecureStack) -> None:
    assert refused(secure_stack.settings(None))
    tls_only = secure_stack.settings(
        None,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_LOCATION=str(secure_stack.data / "security" / "ca.pem"),
    )
    assert refused(tls_only)
    assert refused(secure_stack.settings("admin")) == ""


def test_a_wrong_password_is_refused(secure_stack: SecureStack) -> None:
    wrong = secure_stack.settings("worker", KAFKA_SASL_PASSWORD="not-the-password")
    assert refused(wrong)
    assert refused(secure_stack.settings("worker")) == ""


def test_a_device_may_produce_telemetry_only(secure_stack: SecureStack, granted: str) -> None:
    device = secure_stack.settings("device", STREAMS_TOPIC_PREFIX=f"{granted}.")
    devices = ContextTopics("devices", device.topic_prefix)
    error = delivery(device, devices.commands)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    assert delivery(device, devices.window_input(TELEMETRY.name)) is None


@pytest.fixture(scope="module")
def worker(
    secure_stack: SecureStack, granted: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One worker of the deployment (orders) with the worker principal's credentials."""
    env = secure_stack.client_env("worker", STREAMS_CONTEXTS="orders", STREAMS_SINKS="0")
    dep = Deployment(
        prefix=granted, data_dir=tmp_path_factory.mktemp("secure-worker"), partitions=2, extra_env=env
    )
    dep.start("w1")
    try:
        dep.wait_healthy("w1", timeout=240)
        yield dep
    finally:
        dep.stop_all()


def test_a_worker_is_refused_outside_its_contexts(secure_stack: SecureStack, granted: str) -> None:
    worker = secure_stack.settings("worker", STREAMS_TOPIC_PREFIX=f"{granted}.")
    error = delivery(worker, ContextTopics("devices", worker.topic_prefix).commands)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_a_worker_with_its_credentials_runs_a_command_and_a_view_end_to_end(worker: Deployment) -> None:
    settings = worker.settings()
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_username == "worker"
    with CommandClient(settings, "orders") as client:
        result = client.execute("secure-1", PlaceOrder("c-secure", "EUR"), timeout=120)
    assert result.accepted, result

    def summary() -> object:
        code, body = json_answer(f"{worker.url()}/orders/views/order-summary/secure-1")
        return body if code == 200 else None

    document = wait_until(summary, "the order's summary document", timeout=60, every=0.5)
    assert "c-secure" in str(document)
