"""Predicting where a batch's events land, and checking the prediction before the commit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, Message

from streams.kafka.transaction import PoisonOutput, RetryBatch
from streams.write.appends import EventAppend, OffsetsMispredicted


def deliver(append: EventAppend, reports: list[tuple[int, int]]) -> Callable[[float], None]:
    """A producer's poll that hands the reports (partition, offset) to the append's callback."""

    def poll(_timeout: float) -> None:
        while reports:
            partition, offset = reports.pop(0)
            append.on_delivery(None, Message(topic="t.events", partition=partition, offset=offset))

    return poll


def place(append: EventAppend, partitions: list[int]) -> list[bool]:
    """Number one event per entry; True where its delivery must be reported."""
    last = {p: i for i, p in enumerate(partitions)}
    return [append.number(p, last=last[p] == i) for i, p in enumerate(partitions)]


def test_offsets_are_consecutive_per_partition_from_where_it_ends() -> None:
    append = EventAppend({0: 10, 1: 3}, sparse=True)
    reported = place(append, [0, 0, 1, 0])
    assert append.offsets == [10, 11, 3, 12]
    assert reported == [True, False, True, True]  # each partition's first and last only


def test_a_correct_prediction_passes_and_the_commit_marker_takes_one_more_offset() -> None:
    next_offset = {0: 10}
    append = EventAppend(next_offset, sparse=True)
    place(append, [0, 0, 0])
    append.wait(deliver(append, [(0, 10), (0, 12)]), timeout=1)
    append.check()
    append.advance(marker=1)
    assert next_offset == {0: 14}


def test_a_misprediction_aborts_and_the_retry_uses_the_offsets_learnt() -> None:
    next_offset = {0: 10}
    append = EventAppend(next_offset, sparse=True)
    place(append, [0, 0])
    append.wait(deliver(append, [(0, 15), (0, 16)]), timeout=1)  # another writer wrote 10..14
    with pytest.raises(OffsetsMispredicted):
        append.check()
    assert next_offset == {0: 18}  # after these two events and the abort marker


def test_a_failed_delivery_fails_the_batch() -> None:
    append = EventAppend({0: 0}, sparse=True)
    place(append, [0])

    def poll(_timeout: float) -> None:
        append.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), Message(partition=0, offset=-1))

    with pytest.raises(PoisonOutput, match="Message size too large"):
        append.wait(poll, timeout=1)


def test_missing_acknowledgements_time_out() -> None:
    append = EventAppend({0: 0}, sparse=True)
    place(append, [0])
    with pytest.raises(RetryBatch, match="not acknowledged"):
        append.wait(lambda _t: None, timeout=0.05)


def test_without_a_transaction_every_event_reports_and_offsets_are_learnt() -> None:
    next_offset = {0: 10}
    append = EventAppend(next_offset, sparse=False)
    assert place(append, [0, 0, 0]) == [True, True, True]
    append.wait(deliver(append, [(0, 20), (0, 21), (0, 22)]), timeout=1)
    append.learn_actual()
    assert append.offsets == [20, 21, 22]
    append.advance(marker=0)
    assert next_offset == {0: 23}
