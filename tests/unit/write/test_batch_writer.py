"""What a decided batch writes: events, results, and a changelog with one results record per
partition and batch, which restores into one store key per command id."""

from __future__ import annotations

from typing import Any

from bench.offline import CountingProducer, DictState, command_records
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.write.batch import BatchWriter
from streams.write.changelog import COMMAND_PREFIX, RESULTS_PREFIX, store_writes
from streams.write.intake import BatchDecider, IntakeLimits


class RecordingProducer(CountingProducer):
    """Keeps every record as (topic, partition, key, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[str, int, bytes | None, bytes | None]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        self.kept.append((topic, kw.get("partition", -1), key, value))
        super().produce(topic, value, key, **kw)


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
    for _, key, value in changelog:
        assert key is not None
        restored.update(store_writes(key, value))
    expected = {k: v for writes in written.store_writes.values() for k, v in writes.items()}
    assert restored == expected  # what a restoring store holds is what the live one wrote
    assert sum(1 for k in restored if k.startswith(COMMAND_PREFIX)) == 200


def test_a_changelog_of_single_result_records_restores_as_before() -> None:
    assert store_writes(COMMAND_PREFIX + b"id-1", b"result") == [(COMMAND_PREFIX + b"id-1", b"result")]
