"""A process manager's batches without Kafka: re-keying, commands, deadlines on a controlled clock,
forged deadline records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from streams.contexts.orders import CancelOrder, OrderConfirmed, OrderPlaced, context
from streams.core.commands import CommandResult
from streams.core.processes import DeadlineReached, Send, process_command_id
from streams.kafka.runtime import ContextRuntime
from streams.kafka.tables import Writes
from streams.processes.intake import ProcessBatch, ProcessIntake
from streams.processes.records import process_catalog
from streams.wire import headers as h
from streams.wire.codec import AvroCodec
from streams.wire.topics import ProcessTopics, partition_for
from tests.processes.order_timeout import TIMEOUT_MS, process

PARTITIONS = 4
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ORDERS = ContextRuntime.offline(context)
TOPICS = ProcessTopics(process.name)
CODEC = AvroCodec.offline(process_catalog())


@dataclass
class FakeMessage:
    """What the intake reads of a consumed record."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class Table:
    """The stage's committed table, in memory."""

    def __init__(self) -> None:
        self.stores: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTITIONS)}

    def lookup(self, partition: int, key: bytes) -> bytes | None:
        return self.stores[partition].get(key)

    def scan(self, partition: int, prefix: bytes) -> Iterable[bytes]:
        return [k for k in sorted(self.stores[partition]) if k.startswith(prefix)]

    def apply(self, writes: dict[int, Writes]) -> None:
        for partition, partition_writes in writes.items():
            for key, value in partition_writes.items():
                if value is None:
                    self.stores[partition].pop(key, None)
                else:
                    self.stores[partition][key] = value


class Harness:
    def __init__(self) -> None:
        self.intake = ProcessIntake(process, TOPICS, {"orders": ORDERS}, CODEC, PARTITIONS)
        self.table = Table()
        self.offset = 0

    def event(
        self, order_id: str, event: Any, at: str = "2026-01-01T00:00:00.000Z", partition: int | None = None
    ) -> FakeMessage:
        self.offset += 1
        headers = h.event_headers(
            event_type=type(event).__name__, schema_version=ORDERS.codec.version_of(type(event)),
            aggregate_type="Order", aggregate_id=order_id, aggregate_version=1, command_id="x",
            correlation_id="", occurred_at=at,
        )  # fmt: skip
        home = partition_for(order_id.encode(), PARTITIONS) if partition is None else partition
        return FakeMessage(
            ORDERS.topics.events, home, self.offset, order_id.encode(), ORDERS.codec.encode(event), headers
        )

    def run(self, messages: list[Any], now_ms: int) -> ProcessBatch:
        batch = self.intake.decide(messages, self.table.lookup, self.table.scan, range(PARTITIONS), now_ms)
        self.table.apply(batch.writes)
        return batch

    def read_back(self, batch: ProcessBatch, topic: str) -> list[FakeMessage]:
        out = []
        for record in batch.records:
            if record.topic == topic:
                self.offset += 1
                out.append(
                    FakeMessage(
                        topic, record.partition, self.offset, record.key, record.value or b"", record.headers
                    )
                )
        return out


def test_a_deadline_fires_once_on_the_controlled_clock_and_sends_one_command() -> None:
    run = Harness()
    batch = run.run([run.event("o-1", OrderPlaced("c", "EUR"))], T0)
    assert batch.outcomes["handled"] == 1 and not batch.commands
    assert not run.run([], T0 + TIMEOUT_MS - 1).records  # not due yet
    emitted = run.run([], T0 + TIMEOUT_MS)
    [timer] = run.read_back(emitted, TOPICS.timers)
    assert timer.partition() == partition_for(b"o-1", PARTITIONS)
    assert not run.run([], T0 + 10 * TIMEOUT_MS).records  # emitted once
    fired = run.run([timer], T0 + 10 * TIMEOUT_MS)
    [command] = fired.commands
    assert command.command == CancelOrder("not confirmed in time")
    assert command.command_id == process_command_id(process.name, "o-1", "cancel")
    [out] = [r for r in fired.records if r.topic == ORDERS.topics.commands]
    assert out.key == b"o-1" and (h.COMMAND_ID, command.command_id.encode()) in out.headers
    replay = run.run([timer], T0 + 10 * TIMEOUT_MS)  # the same record again: not obeyed twice
    assert not replay.commands and replay.outcomes["unknown_deadline"] == 1


def test_a_cancelled_deadline_does_not_fire_even_if_already_emitted() -> None:
    run = Harness()
    run.run([run.event("o-2", OrderPlaced("c", "EUR"))], T0)
    emitted = run.run([], T0 + TIMEOUT_MS)
    [timer] = run.read_back(emitted, TOPICS.timers)
    run.run([run.event("o-2", OrderConfirmed(5))], T0 + TIMEOUT_MS)
    late = run.run([timer], T0 + TIMEOUT_MS)
    assert not late.commands and late.outcomes["deadline_ignored"] == 1


def test_an_event_on_another_partition_than_its_correlation_id_is_rekeyed() -> None:
    run = Harness()
    home = partition_for(b"o-3", PARTITIONS)
    batch = run.run([run.event("o-3", OrderPlaced("c", "EUR"), partition=(home + 1) % PARTITIONS)], T0)
    [moved] = run.read_back(batch, TOPICS.inputs)
    assert moved.partition() == home and batch.outcomes["rekeyed"] == 1 and not batch.writes
    handled = run.run([moved], T0)
    assert handled.outcomes["handled"] == 1


def test_a_forged_deadline_record_is_dead_lettered_with_its_reason() -> None:
    run = Harness()
    run.run([run.event("o-4", OrderPlaced("c", "EUR"))], T0)
    home = partition_for(b"o-4", PARTITIONS)
    forged = DeadlineReached(process.name, "o-4", "confirm-by", "guessed", T0)
    unknown = DeadlineReached(process.name, "nobody", "confirm-by", "guessed", T0)
    batch = run.run(
        [FakeMessage(TOPICS.timers, home, 1, b"o-4", CODEC.encode(forged)),
         FakeMessage(TOPICS.timers, home, 2, b"x", CODEC.encode(unknown)),
         FakeMessage(TOPICS.timers, home, 3, b"x", b"junk")],
        T0,
    )  # fmt: skip
    reasons = [dict(r.headers)[h.DLQ_REASON] for r in batch.records if r.topic == TOPICS.dlq]
    assert reasons == [b"unknown_deadline", b"unknown_instance", b"malformed_record"]
    assert not batch.commands and batch.offsets[(TOPICS.timers, home)] == 4


def test_a_rekeyed_input_of_an_unknown_source_is_dead_lettered() -> None:
    run = Harness()
    home = partition_for(b"o-5", PARTITIONS)
    event = run.event("o-5", OrderPlaced("c", "EUR"))
    moved = FakeMessage(
        TOPICS.inputs, home, 1, b"o-5", event.value(), [*event.headers(), ("process_source", b"x")]
    )
    batch = run.run([moved], T0)
    assert [dict(r.headers)[h.DLQ_REASON] for r in batch.records] == [b"unknown_source"]


def result_of(command_id: str, status: str, partition: int, offset: int, reason: str = "") -> FakeMessage:
    result = CommandResult(command_id, "o-6", "CancelOrder", status, 3, reason=reason)  # type: ignore[arg-type]
    return FakeMessage(
        ORDERS.topics.results, partition, offset, command_id.encode(), ORDERS.codec.encode(result)
    )


def test_the_result_of_a_command_it_sent_is_handed_back_as_an_outcome_others_are_skipped() -> None:
    run = Harness()
    run.run([run.event("o-6", OrderPlaced("c", "EUR"))], T0)
    [timer] = run.read_back(run.run([], T0 + TIMEOUT_MS), TOPICS.timers)
    [command] = run.run([timer], T0 + TIMEOUT_MS).commands
    home = partition_for(b"o-6", PARTITIONS)
    other = (home + 1) % PARTITIONS
    batch = run.run(
        [result_of("someone-else", "accepted", home, 1),
         result_of(command.command_id, "rejected", other, 2, "order_already_shipped")],
        T0,
    )  # fmt: skip
    assert batch.outcomes["rekeyed"] == 1 and not batch.writes  # the result's partition is the aggregate's
    [moved] = run.read_back(batch, TOPICS.inputs)
    handled = run.run([moved], T0)
    assert handled.outcomes["handled"] == 1
    instance = run.intake.format.decode(run.table.lookup(home, b"Io-6") or b"")
    assert instance.state.cancel_outcome == "order_already_shipped"
    assert [c.status for c in instance.sent] == ["rejected"]


def test_an_input_whose_command_is_invalid_is_dead_lettered_and_changes_nothing() -> None:
    def decide(_state: Any, _event: Any) -> list[Send]:
        return [Send("orders", "", CancelOrder("no aggregate id"), step="cancel")]

    broken = replace(process, decide=decide)
    run = Harness()
    run.intake = ProcessIntake(broken, TOPICS, {"orders": ORDERS}, CODEC, PARTITIONS)
    batch = run.run([run.event("o-7", OrderPlaced("c", "EUR"))], T0)
    assert [dict(r.headers)[h.DLQ_REASON] for r in batch.records] == [b"invalid_command"]
    assert not batch.writes and not batch.commands
