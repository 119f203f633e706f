"""The chaos suite's cluster: `ops/stack.sh` in cluster mode on side ports and in a data directory
of its own, so that it runs beside the default single-broker stack; and what a scenario asks of
it (which node leads a partition or coordinates a transactional id; kill, pause, restart a node;
wait until every replica is back in sync)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.kafka.clients import watermarks

REPO = Path(__file__).resolve().parents[2]
TRANSACTION_STATE = "__transaction_state"
TRANSACTION_STATE_PARTITIONS = 10  # transaction.state.log.num.partitions (ops/config/services.sh)


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode` (32-bit, signed), over UTF-16 code units as Java counts them."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def transaction_state_partition(transactional_id: str, partitions: int = TRANSACTION_STATE_PARTITIONS) -> int:
    """The `__transaction_state` partition whose leader coordinates `transactional_id`
    (Kafka's `TransactionStateManager.partitionFor`: `Utils.abs(hashCode) % partitions`)."""
    return (java_string_hash(transactional_id) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class ClusterConfig:
    """Where the chaos cluster lives: node i on `kafka_port + i - 1`."""

    brokers: int = int(os.environ.get("CHAOS_BROKERS", "3"))
    kafka_port: int = int(os.environ.get("CHAOS_KAFKA_PORT", "19092"))
    registry_port: int = int(os.environ.get("CHAOS_REGISTRY_PORT", "18081"))
    data: Path = Path(os.environ.get("CHAOS_STACK_DATA", str(REPO / ".stack-chaos")))

    def env(self) -> dict[str, str]:
        """`ops/stack.sh`'s environment for this cluster, and the worker's and clients'."""
        return {
            "STACK_BROKERS": str(self.brokers),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.kafka_port + 100),
            "REGISTRY_PORT": str(self.registry_port),
            "REGISTRY_MGMT_PORT": str(self.registry_port + 1000),
            "STREAMS_STACK_DATA": str(self.data),
            # a node's restart under the load of the run has taken 65-124 s, the registry's more
            "STACK_START_TIMEOUT": os.environ.get("STACK_START_TIMEOUT", "300"),
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7",
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.kafka_port + i}" for i in range(self.brokers))


class Cluster:
    """Control of the chaos cluster's nodes (ids 1..brokers) through their pid files."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.admin = AdminClient({"bootstrap.servers": config.bootstrap})

    def stack(self, *args: str) -> None:
        """Run `ops/stack.sh` against this cluster (raises when it fails)."""
        env = {**os.environ, **self.config.env()}
        subprocess.run(["bash", str(REPO / "ops" / "stack.sh"), *args], env=env, check=True)

    def up(self) -> None:
        """Start whatever of the brokers and the registry is not running (waits until healthy)."""
        self.stack("up", "kafka", "registry")

    def pid(self, node: int) -> int | None:
        """The live process of node `node`, if any."""
        path = self.config.data / "run" / f"kafka-{node}.pid"
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
            zombie = Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except (OSError, ValueError, IndexError):
            return None
        return None if zombie else pid

    def signal(self, node: int, sig: signal.Signals) -> None:
        """Send `sig` to node `node` (it must be running)."""
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"kafka-{node} is not running")
        os.kill(pid, sig)

    def kill(self, node: int) -> None:
        """kill -9 node `node` and wait until it is gone."""
        pid = self.pid(node)
        self.signal(node, signal.SIGKILL)
        self._wait_gone(pid, node)

    def stop(self, node: int, timeout: float = 120.0) -> None:
        """A clean shutdown of node `node` (SIGTERM: controlled shutdown moves its leaders)."""
        pid = self.pid(node)
        self.signal(node, signal.SIGTERM)
        self._wait_gone(pid, node, timeout)

    def _wait_gone(self, pid: int | None, node: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while pid is not None and time.monotonic() < deadline:
            if self.pid(node) != pid:  # gone, or a zombie: dead, not yet reaped
                return
            time.sleep(0.1)
        if pid is not None:
            raise TimeoutError(f"kafka-{node} (pid {pid}) still running after {timeout:.0f}s")

    def leader(self, topic: str, partition: int) -> int:
        """The node that leads `topic`'s partition now."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        return int(meta.partitions[partition].leader)

    def isr(self, topic: str, partition: int) -> list[int]:
        """The in-sync replicas of `topic`'s partition now."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        return [int(n) for n in meta.partitions[partition].isrs]

    def brokers(self) -> set[int]:
        """The nodes the metadata lists now (a fenced or stopped node drops out)."""
        try:
            return {int(b) for b in self.admin.list_topics(timeout=10).brokers}
        except Exception:  # no answer: none known
            return set()

    def coordinator(self, transactional_id: str) -> int:
        """The node that coordinates `transactional_id` now."""
        return self.leader(TRANSACTION_STATE, transaction_state_partition(transactional_id))

    def under_replicated(self) -> int:
        """Partitions whose in-sync replicas are fewer than their replicas (or without leader)."""
        meta = self.admin.list_topics(timeout=10)
        return sum(
            1
            for t in meta.topics.values()
            for p in t.partitions.values()
            if p.leader < 0 or len(p.isrs) < len(p.replicas)
        )

    def wait_in_sync(self, timeout: float = 300.0) -> float:
        """Wait until every node runs and every replica is in sync; the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if (
                    all(self.pid(n) for n in range(1, self.config.brokers + 1))
                    and not self.under_replicated()
                ):
                    return time.monotonic() - started
            except Exception:  # metadata unavailable for a moment
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the cluster was not back in sync within {timeout:.0f}s")

    def create_topic(self, topic: str, replicas: list[int], config: dict[str, str]) -> None:
        """Create one partition of `topic` on the nodes `replicas` (the first leads) and wait
        until it has its leader."""
        new = NewTopic(topic, num_partitions=1, replica_assignment=[replicas], config=config)
        for future in self.admin.create_topics([new]).values():
            future.result()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.leader(topic, 0) == replicas[0]:
                    return
            except Exception:  # not in the metadata yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{topic} got no leader within 60s")

    def write(self, topic: str, values: list[bytes], timeout_s: float = 15.0) -> tuple[int, str | None]:
        """Produce `values` to partition 0 of `topic` (acks=all, idempotent); how many were
        acknowledged within `timeout_s`, and the first delivery error (None: none)."""
        producer = Producer(
            {"bootstrap.servers": self.config.bootstrap, "enable.idempotence": True,
             "message.timeout.ms": int(timeout_s * 1000)}
        )  # fmt: skip
        acknowledged = 0
        errors: list[str] = []

        def report(err: KafkaError | None, _msg: object) -> None:
            nonlocal acknowledged
            if err is None:
                acknowledged += 1
            else:
                errors.append(err.str())

        for value in values:
            producer.produce(topic, value, partition=0, on_delivery=report)
        producer.flush(timeout_s + 5)
        return acknowledged, (errors[0] if errors else None)

    def read(self, topic: str, timeout_s: float = 60.0) -> list[bytes]:
        """Every record of partition 0 of `topic` (up to its high watermark)."""
        consumer = Consumer(
            {"bootstrap.servers": self.config.bootstrap, "group.id": f"chaos-read-{topic}",
             "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )  # fmt: skip
        try:
            tp = TopicPartition(topic, 0)
            # retried: a node let go after a freeze may answer "not leader" for a moment
            # after the metadata named it leader again (scenario 7's first runs raised there)
            _, high = watermarks(consumer, tp, wait_s=timeout_s)
            consumer.assign([TopicPartition(topic, 0, 0)])
            found: list[bytes] = []
            deadline = time.monotonic() + timeout_s
            while len(found) < high and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    found.append(msg.value() or b"")
            return found
        finally:
            consumer.close()
