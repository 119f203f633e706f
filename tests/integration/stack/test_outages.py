"""A registry or broker outage: the worker retries with back-off and loses no command.

These tests stop services, so they run on a second, isolated stack (Kafka + registry on their
own ports and data directory), started with the same `ops/stack.sh`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, PlaceOrder
from streams.wire import headers as h
from tests.conftest import ROOT, StackEndpoints
from tests.integration.workers import Deployment, free_port, wait_until

pytestmark = pytest.mark.integration


class IsolatedStack:
    """Kafka and the registry from ops/stack.sh, on free ports, in a directory of their own."""

    def __init__(self, data: Path) -> None:
        self.env = dict(os.environ)
        self.env.update(
            STREAMS_STACK_DATA=str(data),
            KAFKA_PORT=str(free_port()),
            KAFKA_CONTROLLER_PORT=str(free_port()),
            REGISTRY_PORT=str(free_port()),
            REGISTRY_MGMT_PORT=str(free_port()),
        )
        self.endpoints = StackEndpoints(
            bootstrap=f"127.0.0.1:{self.env['KAFKA_PORT']}",
            registry_url=f"http://127.0.0.1:{self.env['REGISTRY_PORT']}/apis/ccompat/v7",
            connect_url="",
            pg_dsn="",
        )

    def stack(self, *args: str) -> None:
        subprocess.run(["bash", str(ROOT / "ops" / "stack.sh"), *args], env=self.env, check=True)


@pytest.fixture(scope="module")
def isolated(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    iso = IsolatedStack(tmp_path_factory.mktemp("isolated-stack"))
    iso.stack("up", "kafka", "registry")
    try:
        yield iso
    finally:
        iso.stack("down", "kafka", "registry")


def deploy(iso: IsolatedStack, tmp_path: Path) -> Deployment:
    dep = Deployment(
        prefix=f"out{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        extra_env={
            "KAFKA_BOOTSTRAP": iso.endpoints.bootstrap,
            "SCHEMA_REGISTRY_URL": iso.endpoints.registry_url,
        },
    )
    dep.start("w1")
    dep.wait_healthy("w1")
    return dep


def settings_for(iso: IsolatedStack, dep: Deployment):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(dep.settings(), bootstrap=iso.endpoints.bootstrap, registry_url=iso.endpoints.registry_url)


def metric(dep: Deployment, name: str, label: str) -> float:
    """Sum of a metric's samples that carry `label` (e.g. 'cause="X"')."""
    with urllib.request.urlopen(f"http://127.0.0.1:{dep.ports['w1']}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{") and label in line
    )


def test_a_registry_outage_delays_but_loses_nothing(isolated: IsolatedStack, tmp_path: Path) -> None:
    dep = deploy(isolated, tmp_path)
    try:
        settings = settings_for(isolated, dep)
        with CommandClient(settings, "orders") as client:
            assert client.execute("o-reg", PlaceOrder("c", "EUR"), timeout=120).accepted
            # The worker now knows the schema ids this client writes. (The client and the worker
            # registered the same schemas concurrently at start-up; a fresh registry can hand
            # them different ids for the same content, which the worker resolves once, here.)
            assert client.execute("o-warm", AddItem("a", 1, 1)).reason == "order_not_found"
            # a compatible PlaceOrder schema the worker has never seen (another producer's)
            other = json.loads(client.runtime.codec.catalog.latest("PlaceOrder").text)
            other["fields"].append({"name": "channel", "type": "string", "default": "web"})
            registry = SchemaRegistryClient({"url": isolated.endpoints.registry_url, "timeout": 30})
            other_id = registry.register_schema(
                f"other-{uuid.uuid4().hex[:6]}", Schema(json.dumps(other), "AVRO")
            )

            isolated.stack("down", "registry")
            # known schemas keep working while the registry is down
            assert client.execute("o-reg", AddItem("a", 1, 1), timeout=60).accepted
            # an unknown id cannot be decoded now: the batch waits, it is not dead-lettered
            record = {f["name"]: f.get("default") for f in other["fields"]}
            record |= {"customer_id": "c", "currency": "EUR", "channel": "app"}
            encoded = io.BytesIO()
            fastavro.schemaless_writer(encoded, fastavro.parse_schema(other), record)
            body = b"\x00" + other_id.to_bytes(4, "big") + encoded.getvalue()
            future = client._waiter.expect("cmd-other") if client._waiter else None
            raw = Producer({"bootstrap.servers": isolated.endpoints.bootstrap})
            raw.produce(
                client.runtime.topics.commands, body, b"o-reg-2", headers=[(h.COMMAND_ID, b"cmd-other")]
            )
            assert raw.flush(10) == 0
            assert future is not None
            # the registry client retries a refused connection for several seconds before the
            # worker sees the registry as unavailable and aborts the batch
            wait_until(
                lambda: metric(dep, "streams_transaction_retries_total", 'cause="RegistryUnavailable"') >= 1,
                "the batch to be aborted for the registry",
                60,
                every=0.5,
            )
            assert not future.done(), "decided without the registry?"

            isolated.stack("up", "registry")
            result = future.result(timeout=120)
            assert result.accepted and result.command_type == "PlaceOrder"
            dlq = list(read_topic(settings, client.runtime.topics.dlq, idle_timeout=1.0))
            assert dlq == []
    finally:
        dep.stop_all()
        isolated.stack("up", "registry")


def test_a_broker_outage_delays_but_loses_and_duplicates_nothing(
    isolated: IsolatedStack, tmp_path: Path
) -> None:
    dep = deploy(isolated, tmp_path)
    try:
        settings = settings_for(isolated, dep)
        with CommandClient(settings, "orders") as client:
            assert client.execute("warm", PlaceOrder("c", "EUR"), timeout=120).accepted
            sent: list[str] = []
            stop = threading.Event()

            def produce() -> None:
                i = 0
                while not stop.is_set():
                    aggregate = f"o-{i % 20}"
                    command = PlaceOrder("c", "EUR") if i < 20 else AddItem("a", 1, 1)
                    sent.append(client.send(aggregate, command)[0])
                    i += 1
                    time.sleep(0.01)  # the load's pace, not a wait

            producer = threading.Thread(target=produce)
            producer.start()
            wait_until(lambda: len(sent) >= 100, "the load under way before the outage", 60, every=0.05)
            isolated.stack("down", "kafka")
            time.sleep(5)  # the outage's length: a fault's timing, not a wait
            isolated.stack("up", "kafka")
            time.sleep(3)  # the load goes on across the recovery: a fault's timing, not a wait
            stop.set()
            producer.join()
            client.flush(120)

            results: dict[str, int] = defaultdict(int)

            def all_answered() -> bool:
                results.clear()
                for msg in read_topic(settings, client.runtime.topics.results, idle_timeout=2.0):
                    results[msg.key().decode()] += 1
                return set(sent) <= set(results)

            wait_until(all_answered, f"a result for each of the {len(sent)} commands sent", 180, every=2)
            missing = set(sent) - set(results)
            assert not missing, f"{len(missing)} of {len(sent)} commands have no result"
            assert all(results[c] == 1 for c in sent), "a result was published twice"
            versions: dict[bytes, list[int]] = defaultdict(list)
            for msg in read_topic(settings, client.runtime.topics.events, idle_timeout=2.0):
                versions[msg.key()].append(int(h.as_dict(msg.headers())[h.AGGREGATE_VERSION]))
            for key, seen in versions.items():
                assert seen == list(range(1, len(seen) + 1)), key
            assert sum(len(v) for k, v in versions.items() if k != b"warm") == len(sent)
            print(f"\nbroker outage: {len(sent)} commands sent across a Kafka restart, all answered once")
    finally:
        dep.stop_all()
