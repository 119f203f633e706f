"""`python -m bench.offline`: CPU per command and per event of the Python work alone, no Kafka.

- **write**: the bench traffic as `confluent_kafka.Message` records, decided by the write side's
  `BatchDecider` in batches of 1,000 against an in-memory committed state, then produced by the
  `BatchWriter` into a producer that only counts: the processor's Python work per command.
- **read**: the events of that traffic folded by a `ViewProjector` (order-summary) into a real
  RocksDB store, batches of 2,000: the projector's Python work per event.

CPU is `time.process_time()` (all threads of this process); the best of `BENCH_OFFLINE_REPEATS`
runs is reported, as the machine is shared.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from bench.traffic import AGGREGATES, N, commands
from streams.config import Settings
from streams.contexts.orders import VIEWS
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate, CommandResult
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.projector import ViewProjector
from streams.read.stage import Batch
from streams.wire import headers as h
from streams.wire.topics import partition_for
from streams.write.batch import BatchWriter, DecidedBatch
from streams.write.intake import BatchDecider, IntakeLimits

REPEATS = int(os.environ.get("BENCH_OFFLINE_REPEATS", "3"))
PARTITIONS = 4
WRITE_BATCH = 1000
READ_BATCH = 2000


class CountingProducer:
    """A producer that keeps nothing: counts records and bytes, reports every delivery at once."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0
        self.offsets: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        self.records += 1
        self.bytes += len(value or b"") + len(key or b"")
        partition = kw.get("partition", 0)
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        callback = kw.get("on_delivery")
        if callback is not None:
            callback(None, Message(topic=topic, partition=partition, offset=offset))

    def poll(self, _timeout: float = 0) -> int:
        return 0


class DictState:
    """The committed state, in memory (what RocksDB and the cache give the processor)."""

    def __init__(self, runtime: ContextRuntime) -> None:
        self.runtime = runtime
        self.aggregates: dict[tuple[int, bytes], Aggregate[Any]] = {}
        self.results: dict[tuple[int, bytes], bytes] = {}

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        return self.aggregates.get((partition, key))

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        raw = self.results.get((partition, command_id))
        return None if raw is None else self.runtime.codec.decode(raw).message


def command_records(
    runtime: ContextRuntime, n: int, aggregates: int, change: Callable[[Any], Any] = lambda c: c
) -> list[Message]:
    """The bench traffic as consumed records (with command ids, like the client sends);
    `change` may alter each command first."""
    out = []
    topic = runtime.topics.commands
    for offset, (aggregate_id, original) in enumerate(commands(n, aggregates)):
        command = change(original)
        key = aggregate_id.encode()
        out.append(
            Message(
                topic=topic,
                partition=partition_for(key, PARTITIONS),
                offset=offset,
                key=key,
                value=runtime.codec.encode(command),
                headers=[(h.COMMAND_ID, uuid.uuid4().hex.encode())],
                timestamp=(1, 1_764_547_200_000),
            )
        )
    return out


def write_path(
    runtime: ContextRuntime, records: list[Message], capture: list[Message] | None = None
) -> float:
    """CPU seconds to decide and produce every record; `capture` receives the events."""
    settings = Settings()
    limits = IntakeLimits(
        settings.max_record_bytes, settings.max_state_bytes, 100, settings.max_message_bytes
    )
    decider = BatchDecider(orders, runtime.codec, limits, runtime.limits)
    state = DictState(runtime)
    producer = CountingProducer()
    writer = BatchWriter(producer, runtime, {}, lambda _p: 0, exactly_once=True)
    owned = range(PARTITIONS)
    started = time.process_time()
    for i in range(0, len(records), WRITE_BATCH):
        batch = decider.decide(records[i : i + WRITE_BATCH], state, owned)
        written = writer.write(batch, lambda _e: None)
        written.events.advance(marker=1)
        _commit(state, batch, written.store_writes)
        if capture is not None:
            _capture(runtime, batch, capture)
    return time.process_time() - started


def _commit(state: DictState, batch: DecidedBatch, writes: dict[int, dict[bytes, bytes | None]]) -> None:
    for partition, changed in batch.aggregates.items():
        for key, aggregate in changed.items():
            state.aggregates[(partition, key)] = aggregate
    for partition, partition_writes in writes.items():
        for key, value in partition_writes.items():
            if key.startswith(b"c:") and value is not None:
                state.results[(partition, key[2:])] = value


def _capture(runtime: ContextRuntime, batch: DecidedBatch, out: list[Message]) -> None:
    topic = runtime.topics.events
    for event in batch.events:
        out.append(
            Message(
                topic=topic,
                partition=event.partition,
                offset=len(out),
                key=event.key,
                value=event.value,
                headers=event.headers,
                timestamp=(1, 1_764_547_200_000),
            )
        )


def read_path(runtime: ContextRuntime, events: list[Message]) -> float:
    """CPU seconds for the order-summary projector to fold every event into RocksDB documents."""
    with tempfile.TemporaryDirectory() as directory:
        settings = replace(Settings(), data_dir=Path(directory))
        projector = ViewProjector(
            settings, runtime, VIEWS[0], 1, group_id="g", inputs=[runtime.topics.events],
            data_dir=Path(directory), client_id="c",
        )  # fmt: skip
        for partition in range(PARTITIONS):
            store = PartitionStore(Path(directory) / f"p{partition}", settings.rocksdb_statistics_on)
            projector.stores[partition] = store
        started = time.process_time()
        for i in range(0, len(events), READ_BATCH):
            batch = Batch(dict(projector.stores))
            for msg in events[i : i + READ_BATCH]:
                projector.handle(msg, batch)
            projector.complete(batch)
            for partition, writes in batch.writes.items():
                batch.stores[partition].write(writes, {})
            projector.after_batch(batch)
        seconds = time.process_time() - started
        for store in projector.stores.values():
            store.close()
        return seconds


def best(measure: Callable[[], float]) -> float:
    """The smallest of REPEATS measurements."""
    return min(measure() for _ in range(REPEATS))


def measure(n: int = N, aggregates: int = AGGREGATES) -> dict[str, Any]:
    """Both figures, in µs of CPU per command / per event."""
    runtime = ContextRuntime.offline(orders, prefix="bench.")
    records = command_records(runtime, n, aggregates)
    events: list[Message] = []
    write_path(runtime, records, events)  # warm-up, and the events for the read side
    write_s = best(lambda: write_path(runtime, records))
    read_s = best(lambda: read_path(runtime, events))
    return {
        "commands": n,
        "aggregates": aggregates,
        "write_us_per_command": write_s / n * 1e6,
        "read_us_per_event": read_s / len(events) * 1e6,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
