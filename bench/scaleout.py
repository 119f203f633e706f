"""Scale-out on one host: the write path with 1 and with N worker processes over the same traffic.

Each process runs a `CommandProcessor` (as `streams worker --processes N` would, without the
web server) with its own worker id, transactional id and RocksDB directory, in one consumer
group. The processes start on an empty commands topic; once the group is stable with every
member holding partitions, the traffic is produced, and the rate is commands over the time
from the first committed offset to the last (both read from the group's committed offsets, as
a monitoring tool would).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.harness import isolated, preload, require_no_dead_letters
from streams.config import Settings
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.write.processor import CommandProcessor

POLL_S = 0.05


def _child(prefix: str, worker_id: str) -> None:
    """One worker process of the scenario: a CommandProcessor until killed."""
    settings = isolated(Settings(), prefix)
    runtime = ContextRuntime.connect(settings, orders)
    CommandProcessor(settings, runtime, worker_id=worker_id).run()


def _members_with_partitions(admin: AdminClient, group: str) -> int:
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return sum(1 for m in described.members if m.assignment and m.assignment.topic_partitions)


def _committed(consumer: Consumer, topic: str, partitions: int) -> int:
    offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    return sum(max(tp.offset, 0) for tp in offsets)


def scale_out(settings: Settings, commands: list[tuple[str, Any]], processes: int) -> float:
    """Commands/s of `processes` worker processes sharing the traffic."""
    prefix = f"bench-scale{processes}-{uuid.uuid4().hex[:6]}."
    s = isolated(settings, prefix)
    runtime = ContextRuntime.connect(s, orders)
    CommandProcessor(s, runtime, worker_id="setup").ensure_topics()
    group, topic = runtime.groups.handler, runtime.topics.commands
    children = [
        subprocess.Popen([sys.executable, "-m", "bench.scaleout", prefix, f"p{i}"]) for i in range(processes)
    ]
    admin = AdminClient({"bootstrap.servers": s.bootstrap})
    watcher = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + 180
        while _members_with_partitions(admin, group) < min(processes, s.partitions):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise RuntimeError(f"the {processes} processes did not all join {group}")
            time.sleep(0.5)
        preload(s, topic, [(k.encode(), runtime.codec.encode(c)) for k, c in commands])
        first = 0.0
        deadline = time.monotonic() + 1800
        while (done := _committed(watcher, topic, s.partitions)) < len(commands):
            if done and not first:
                first = time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done} of {len(commands)} commands handled")
            time.sleep(POLL_S)
        rate = len(commands) / (time.perf_counter() - (first or time.perf_counter()))
        require_no_dead_letters(s, runtime)
        return rate
    finally:
        watcher.close()
        for child in children:
            child.kill()
            child.wait()


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
