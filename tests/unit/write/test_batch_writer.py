"""What a decided batch writes: events, results, and a changelog with one results record per
partition and batch, which restores into one store key per command id."""

from __future__ import annotations

from typing import Any

from bench.offline import CountingProducer, DictState, command_records
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.wire.changelog import (
    COMMAND_PREFIX,
    EXPIRY_PREFIX,
    RESULTS_PREFIX,
    ExpiredResults,
    decode_ids,
    expiry_key,
    record_writes,
    store_writes,
)
from streams.write.batch import BatchWriter
from streams.write.intake import BatchDecider, IntakeLimits


class RecordingProducer(CountingProducer):
    """Keeps every record as (topic, partition, key, value), and its timestamp and headers."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[str, int, bytes | None, bytes | None]] = []
        self.meta: list[tuple[int, Any]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        self.kept.append((topic, kw.get("partition", -1), key, value))
        self.meta.append((kw.get("timestamp", 0), kw.get("headers")))
        super().produce(topic, value, key, **kw)

    def changelog(self, topic: str) -> list[tuple[int, bytes, bytes | None, int, Any]]:
        """The changelog records as (partition, key, value, timestamp, headers)."""
        return [
            (p, k or b"", v, at, headers)
            for (t, p, k, v), (at, headers) in zip(self.kept, self.meta, strict=True)
            if t == topic
        ]


def test_the_changelog_holds_one_results_record_per_partition_and_batch() -> None:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    records = command_records(runtime, 200, 50)
    decider = BatchDecider(orders, runtime.codec, IntakeLimits(1 << 20, 1 << 20, 0))
    batch = decider.decide(records, DictState(runtime), range(4))
    producer = RecordingProducer()
    written = BatchWriter(producer, runtime, {}, lambda _p: 0, exactly_once=True).write(
        batch, lambda _e: None
    )

    by_topic: dict[str, list[tuple[int, bytes | None, bytes | None]]] = {}
    for topic, partition, key, value in producer.kept:
        by_topic.setdefault(topic, []).append((partition, key, value))
    assert len(by_topic[runtime.topics.events]) == 200
    assert len(by_topic[runtime.topics.results]) == 200
    changelog = by_topic[runtime.topics.changelog]
    results_records = [(p, k, v) for p, k, v in changelog if (k or b"").startswith(RESULTS_PREFIX)]
    assert sorted(p for p, _, _ in results_records) == sorted(batch.offsets)  # one per partition
    assert len(changelog) == 50 + len(results_records)  # + one state per aggregate, nothing per command

    restored: dict[bytes, bytes | None] = {}
    for _, key, value, at, headers in producer.changelog(runtime.topics.changelog):
        restored.update(record_writes(key, value, at, headers, restored.get))
    expected = {k: v for writes in written.store_writes.values() for k, v in writes.items()}
    assert restored == expected  # what a restoring store holds is what the live one wrote
    assert sum(1 for k in restored if k.startswith(COMMAND_PREFIX)) == 200
    indexed = [c for k, v in restored.items() if k.startswith(EXPIRY_PREFIX) for c in decode_ids(v or b"")]
    assert len(indexed) == 200  # every remembered id can expire


def test_a_changelog_of_single_result_records_restores_as_before() -> None:
    writes = store_writes(COMMAND_PREFIX + b"id-1", b"result", 5)
    assert writes == [
        (COMMAND_PREFIX + b"id-1", b"result"),
        (expiry_key(5, COMMAND_PREFIX + b"id-1"), b"\x91\xc4\x04id-1"),
    ]


def test_expired_results_are_tombstoned_and_a_restore_forgets_them_too() -> None:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    records = command_records(runtime, 100, 20)
    decider = BatchDecider(orders, runtime.codec, IntakeLimits(1 << 20, 1 << 20, 0))
    producer = RecordingProducer()
    writer = BatchWriter(producer, runtime, {}, lambda _p: 0, exactly_once=True)
    live: dict[bytes, bytes | None] = {}
    first = writer.write(decider.decide(records[:50], DictState(runtime), range(4)), lambda _e: None)
    for writes in first.store_writes.values():
        live.update(writes)
    expired = [
        ExpiredResults(p, key[10:], int.from_bytes(key[2:10], "big"), tuple(decode_ids(value or b"")))
        for p, writes in first.store_writes.items()
        for key, value in writes.items()
        if key.startswith(EXPIRY_PREFIX)
    ]
    assert sum(len(e.command_ids) for e in expired) == 50
    second_batch = decider.decide(records[50:], DictState(runtime), range(4))
    second_batch.expired = expired
    second = writer.write(second_batch, lambda _e: None)
    for writes in second.store_writes.values():
        for key, value in writes.items():
            if value is None:
                live.pop(key, None)
            else:
                live[key] = value

    restored: dict[bytes, bytes | None] = {}
    for _, key, value, at, headers in producer.changelog(runtime.topics.changelog):
        for k, v in record_writes(key, value, at, headers, restored.get):
            if v is None:
                restored.pop(k, None)
            else:
                restored[k] = v
    assert restored == live  # a restore after the tombstones does not bring the expired ids back
    assert sum(1 for k in live if k.startswith(COMMAND_PREFIX)) == 50  # only the second batch's
    tombstones = [r for r in producer.changelog(runtime.topics.changelog) if r[2] is None]
    assert len(tombstones) == len(expired) and all(t[1].startswith(RESULTS_PREFIX) for t in tombstones)
