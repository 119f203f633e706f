"""The write side's intake, without Kafka: command records in, a decided batch out.

Records are real `confluent_kafka.Message`s built in memory; the committed state is a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Message

from streams.contexts.orders import AddItem, ItemAdded, OrderPlaced, PlaceOrder
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate, CommandResult
from streams.core.records import replace_record
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.write.batch import DecidedBatch
from streams.write.intake import BatchDecider, IntakeLimits

RUNTIME = ContextRuntime.offline(orders, prefix="t.")
CODEC = RUNTIME.codec
TOPIC = RUNTIME.topics.commands
LIMITS = IntakeLimits(max_record_bytes=1000, max_state_bytes=100_000, snapshot_every=0)
NOW = "2026-12-01T00:00:00.000Z"


@dataclass
class DictState:
    """Committed state held in dicts (a `StateReader`)."""

    aggregates: dict[tuple[int, bytes], Aggregate[Any]] = field(default_factory=dict)
    results: dict[tuple[int, bytes], CommandResult] = field(default_factory=dict)

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        return self.aggregates.get((partition, key))

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        return self.results.get((partition, command_id))


def record(
    key: bytes | None,
    value: bytes | None,
    offset: int,
    *,
    partition: int = 0,
    command_id: str | None = None,
    extra: list[tuple[str, bytes]] | None = None,
) -> Message:
    headers = [(h.COMMAND_ID, (command_id or f"cmd-{offset}").encode()), *(extra or [])]
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(1, 1_764_547_200_000 + offset),
    )


def command(aggregate_id: str, body: Any, offset: int, **kw: Any) -> Message:
    return record(aggregate_id.encode(), CODEC.encode(body), offset, **kw)


def decide(
    messages: list[Message],
    state: DictState | None = None,
    limits: IntakeLimits = LIMITS,
    owned: Any = (0, 1),
) -> DecidedBatch:
    return BatchDecider(orders, CODEC, limits).decide(messages, state or DictState(), owned, NOW)


def results(batch: DecidedBatch) -> list[CommandResult]:
    return [r.result for r in batch.results]


def test_an_accepted_command_appends_its_event_with_every_header_and_updates_the_state() -> None:
    batch = decide([command("o-1", PlaceOrder("c-1", "EUR"), 7, extra=[(h.ACTOR, b"alice")])])
    (event,) = batch.events
    assert (event.partition, event.key, event.event_type) == (0, b"o-1", "OrderPlaced")
    assert CODEC.decode(event.value).message == OrderPlaced("c-1", "EUR")
    meta = h.as_dict(event.headers)
    assert meta[h.AGGREGATE_VERSION] == "1" and meta[h.AGGREGATE_ID] == "o-1"
    assert meta[h.COMMAND_ID] == meta[h.CORRELATION_ID] == "cmd-7"
    assert meta[h.ACTOR] == "alice" and meta[h.OCCURRED_AT] == NOW and meta[h.EVENT_ID]
    (result,) = batch.results
    assert result.result.accepted and result.result.aggregate_version == 1 and result.event_indexes == (0,)
    assert batch.aggregates[0][b"o-1"].version == 1 and b"o-1" in batch.states[0]
    assert batch.offsets == {0: 8} and batch.timestamps == [1_764_547_200.007]


def test_a_later_command_of_the_batch_sees_the_state_an_earlier_one_left() -> None:
    batch = decide([command("o-1", PlaceOrder("c-1", "EUR"), 0), command("o-1", AddItem("w", 2, 250), 1)])
    assert [r.accepted for r in results(batch)] == [True, True]
    assert [h.as_dict(e.headers)[h.AGGREGATE_VERSION] for e in batch.events] == ["1", "2"]
    assert batch.aggregates[0][b"o-1"].version == 2


def test_a_command_id_repeated_within_the_batch_gets_the_first_result_and_appends_nothing() -> None:
    batch = decide(
        [
            command("o-1", PlaceOrder("c-1", "EUR"), 0, command_id="same"),
            command("o-1", PlaceOrder("c-1", "EUR"), 1, command_id="same"),
        ]
    )
    first, second = results(batch)
    assert len(batch.events) == 1 and not first.duplicate
    assert second.duplicate and second.aggregate_version == first.aggregate_version == 1


def test_a_command_id_seen_in_an_earlier_batch_is_answered_from_the_committed_state() -> None:
    original = CommandResult("same", "o-1", "PlaceOrder", "accepted", 1, processed_at=NOW)
    state = DictState(results={(0, b"same"): original})
    batch = decide([command("o-1", PlaceOrder("c-1", "EUR"), 5, command_id="same")], state)
    assert batch.events == [] and results(batch) == [replace_record(original, duplicate=True)]


def test_an_expected_version_that_is_not_the_current_one_is_a_version_conflict() -> None:
    state = DictState(aggregates={(0, b"o-1"): Aggregate(1, orders.fold([OrderPlaced("c", "EUR")]))})
    batch = decide([command("o-1", AddItem("w", 1, 1), 0, extra=[(h.EXPECTED_VERSION, b"0")])], state)
    (result,) = results(batch)
    assert (result.status, result.reason, result.aggregate_version) == ("rejected", "version_conflict", 1)
    assert batch.events == [] and batch.aggregates == {}


def test_an_expected_version_that_is_not_an_integer_is_rejected() -> None:
    batch = decide([command("o-1", PlaceOrder("c", "EUR"), 0, extra=[(h.EXPECTED_VERSION, b"one")])])
    assert results(batch)[0].reason == "invalid_expected_version"


def test_an_event_sent_as_a_command_is_rejected_not_dead_lettered() -> None:
    batch = decide([command("o-1", ItemAdded("w", 1, 1), 0)])
    assert results(batch)[0].reason == "unknown_command_type" and batch.dead_letters == []


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, CODEC.encode(PlaceOrder("c", "EUR")), "missing_aggregate_id"),
        (b"o-1", b"\x00" + bytes(2000), "oversized_record"),
        (b"\xff\xfe", CODEC.encode(PlaceOrder("c", "EUR")), "malformed_key"),
        (b"o-1", b"not avro at all", "malformed_record"),
        (b"o-1", b"\x00\x00\x00\x99\x99\x02c", "unknown_schema"),
    ],
)
def test_a_bad_record_is_dead_lettered_with_its_reason_and_its_bytes(
    key: bytes | None, value: bytes, reason: str
) -> None:
    bad = record(key, value, 3, extra=[("trace", b"t-1")])
    batch = decide([bad, command("o-2", PlaceOrder("c", "EUR"), 4)])
    (letter,) = batch.dead_letters
    assert (letter.key, letter.value, letter.reason) == (key, value, reason)
    meta = h.as_dict(letter.headers)
    assert meta[h.DLQ_REASON] == reason and meta[h.DLQ_SOURCE] == f"{TOPIC}/0/3" and meta[h.DLQ_DETAIL]
    assert meta["trace"] == "t-1" and meta[h.COMMAND_ID] == "cmd-3"
    waiting = results(batch)[0]  # the sender's waiting client hears why
    assert (waiting.command_id, waiting.status, waiting.reason, waiting.aggregate_version) == (
        "cmd-3",
        "rejected",
        reason,
        -1,
    )
    assert results(batch)[1].accepted and batch.offsets == {0: 5}


def test_a_dead_lettered_command_id_is_not_remembered() -> None:
    batch = decide(
        [
            record(b"o-1", b"junk", 0, command_id="c"),
            command("o-1", PlaceOrder("c", "EUR"), 1, command_id="c"),
        ]
    )
    assert [r.status for r in results(batch)] == ["rejected", "accepted"]


def test_commands_that_would_grow_the_state_past_the_limit_are_rejected_the_others_pass() -> None:
    placed = len(CODEC.encode(orders.fold([OrderPlaced("c", "EUR")])))
    limits = IntakeLimits(max_record_bytes=1000, max_state_bytes=placed + 60, snapshot_every=0)
    messages = [command("o-1", PlaceOrder("c", "EUR"), 0)]
    messages += [command("o-1", AddItem(f"sku-{i}", 1, 100), i + 1) for i in range(10)]
    batch = decide(messages, limits=limits)
    statuses = [(r.status, r.reason) for r in results(batch)]
    accepted = sum(1 for status, _ in statuses if status == "accepted")
    assert 2 <= accepted < 11
    assert statuses[:accepted] == [("accepted", "")] * accepted
    assert set(statuses[accepted:]) == {("rejected", "aggregate_too_large")}
    assert all(len(v) <= limits.max_state_bytes for v in batch.states[0].values())


def test_a_snapshot_is_taken_when_the_version_crosses_a_multiple_of_the_interval() -> None:
    limits = IntakeLimits(max_record_bytes=1000, max_state_bytes=100_000, snapshot_every=2)
    messages = [command("o-1", PlaceOrder("c", "EUR"), 0)]
    messages += [command("o-1", AddItem(f"s{i}", 1, 1), i + 1) for i in range(3)]
    batch = decide(messages, limits=limits)
    assert [(s.aggregate.version, s.last_event) for s in batch.snapshots] == [(2, 1), (4, 3)]


def test_records_of_partitions_no_longer_owned_are_left_to_their_new_owner() -> None:
    batch = decide([command("o-1", PlaceOrder("c", "EUR"), 0, partition=3)], owned=(0, 1))
    assert batch.results == [] and batch.offsets == {}


@pytest.mark.parametrize(
    ("key", "extra", "detail", "answered"),
    [
        (b"o" * 256, [], "aggregate_id has 256 characters; at most 255", True),
        (b"o\x00x", [], "aggregate_id contains the control character U+0000", True),
        (b"o-1", [(h.CORRELATION_ID, b"c\nx")], "correlation_id contains the control character U+000A", True),
        (b"o-1", [(h.ACTOR, b"a" * 300)], "actor has 300 characters", True),
    ],
)
def test_an_identifier_outside_the_policy_is_dead_lettered(
    key: bytes, extra: list[tuple[str, bytes]], detail: str, answered: bool
) -> None:
    batch = decide([record(key, CODEC.encode(PlaceOrder("c", "EUR")), 0, extra=extra)])
    (letter,) = batch.dead_letters
    assert letter.reason == "invalid_identifier" and detail in h.as_dict(letter.headers)[h.DLQ_DETAIL]
    assert [r.reason for r in results(batch)] == (["invalid_identifier"] if answered else [])
    assert all(len(r.aggregate_id) < 100 for r in results(batch))


def test_an_invalid_command_id_gets_no_result_keyed_by_it() -> None:
    batch = decide([record(b"o-1", CODEC.encode(PlaceOrder("c", "EUR")), 0, command_id="c" * 300)])
    assert batch.dead_letters[0].reason == "invalid_identifier" and batch.results == []


def test_a_string_over_its_schema_limit_is_dead_lettered_before_decide() -> None:
    too_long = record(
        b"o-1", CODEC.encode_record("PlaceOrder", 2, {"customer_id": "c" * 256, "currency": "EUR"}), 0
    )
    nul = command("o-2", PlaceOrder("c\x00", "EUR"), 1)
    default = command("o-3", PlaceOrder("c", "EUR"), 2)  # v1 producer fields: read with the latest's limits
    batch = decide([too_long, nul, default])
    assert [d.reason for d in batch.dead_letters] == ["invalid_field", "invalid_field"]
    details = [h.as_dict(d.headers)[h.DLQ_DETAIL] for d in batch.dead_letters]
    assert details == ["customer_id has 256 characters; at most 255", "customer_id contains U+0000"]
    assert results(batch)[-1].accepted


def test_a_command_whose_event_would_not_fit_its_topic_is_rejected() -> None:
    limits = IntakeLimits(
        max_record_bytes=1000, max_state_bytes=100_000, snapshot_every=0, max_output_bytes=600
    )
    batch = decide(
        [command("o-1", PlaceOrder("c" * 250, "EUR"), 0), command("o-2", PlaceOrder("c", "EUR"), 1)],
        limits=limits,
    )
    first, second = results(batch)
    assert (first.status, first.reason) == (
        "rejected",
        "output_too_large",
    ) and "OrderPlaced event" in first.detail
    assert second.accepted and len(batch.events) == 1


def test_a_quarantine_batch_dead_letters_one_record_with_or_without_its_answer_and_value() -> None:
    decider = BatchDecider(orders, CODEC, LIMITS)
    msg = command("o-1", PlaceOrder("c", "EUR"), 9)
    batch = decider.quarantine(msg, "output_rejected", "the broker refused one of its records")
    assert batch.offsets == {0: 10} and batch.events == [] and batch.states == {}
    assert [r.result.reason for r in batch.results] == ["output_rejected"]
    bare = decider.quarantine(msg, "output_rejected", "x", answer=False, keep_value=False)
    (letter,) = bare.dead_letters
    assert bare.results == [] and letter.value is None
    assert h.as_dict(letter.headers)["dlq_value_dropped"] == str(len(msg.value()))
