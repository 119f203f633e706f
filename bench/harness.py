"""Running the write path in this process over pre-loaded commands, in isolated deployments."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.contexts.orders import context as orders
from streams.kafka import clients
from streams.kafka.runtime import ContextRuntime
from streams.write.processor import CommandProcessor


def preload(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=[("command_id", uuid.uuid4().hex.encode())])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def isolated(settings: Settings, prefix: str) -> Settings:
    """A deployment of its own: topic prefix, app id (consumer groups) and data directory."""
    return replace(
        settings, topic_prefix=prefix, app_id=prefix.rstrip("."), data_dir=Path(".stack/bench") / prefix
    )


def run_write_path(
    settings: Settings, commands: list[tuple[str, Any]], prefix: str = ""
) -> tuple[float, Settings, ContextRuntime]:
    """Commands/s of the CommandProcessor over pre-loaded commands, from its first batch to the
    last command's batch; also the deployment's settings and runtime (its events topic is full)."""
    s = isolated(settings, prefix or f"bench-{uuid.uuid4().hex[:8]}.")
    rate, runtime = drive_processor(s, commands, "bench")
    return rate, s, runtime


def drive_processor(
    settings: Settings, commands: list[tuple[str, Any]], worker_id: str
) -> tuple[float, ContextRuntime]:
    """Pre-load `commands`, run a CommandProcessor in this process until all are handled;
    (commands/s from its first batch to the last command's batch, the runtime)."""
    runtime = ContextRuntime.connect(settings, orders)
    processor = CommandProcessor(settings, runtime, worker_id=worker_id)
    processor.ensure_topics()
    preload(settings, runtime.topics.commands, [(k.encode(), runtime.codec.encode(c)) for k, c in commands])
    done = 0
    first = 0.0
    finished = threading.Event()

    def count(n: int) -> None:
        nonlocal done, first
        first = first or time.perf_counter()
        done += n
        if done >= len(commands):
            finished.set()

    processor.on_batch = count
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    if not finished.wait(timeout=1800):
        raise TimeoutError(f"only {done} of {len(commands)} commands handled")
    elapsed = time.perf_counter() - first
    processor.stop()
    thread.join(60)
    require_no_dead_letters(settings, runtime)
    return done / elapsed, runtime


def dead_lettered(settings: Settings, runtime: ContextRuntime) -> int:
    """Records in the context's DLQ. The bench traffic is all valid, so anything here means the
    scenario measured the dead-letter path (as b did while the preloaded command ids were
    random bytes, which the identifier policy refuses), not the write path."""
    consumer = clients.reader(settings)
    try:
        total = 0
        topic = consumer.list_topics(timeout=10).topics.get(runtime.topics.dlq)
        if topic is None:
            return 0  # never created: nothing was dead-lettered
        for partition in topic.partitions:
            low, high = clients.watermarks(consumer, TopicPartition(runtime.topics.dlq, partition))
            total += high - low
        return total
    finally:
        consumer.close()


def require_no_dead_letters(settings: Settings, runtime: ContextRuntime) -> None:
    """Fail the scenario when any of its commands was dead-lettered."""
    found = dead_lettered(settings, runtime)
    if found:
        raise RuntimeError(
            f"{found} bench commands went to {runtime.topics.dlq}: the figure would be the DLQ's"
        )


def drop(settings: Settings, prefixes: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if any(t.startswith(p) for p in prefixes)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # best effort clean-up
                future.result()
    for prefix in prefixes:
        shutil.rmtree(Path(".stack/bench") / prefix, ignore_errors=True)
