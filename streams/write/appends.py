"""A write-side batch's events on their way to the log, and the offsets they will get.

Results carry their events' offsets (read-your-writes tokens), and waiting for the broker's
acknowledgements before producing them would put a round trip in the middle of every
transaction. So offsets are predicted, and the prediction is checked before the commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from streams.kafka.transaction import RetryBatch, refused


class OffsetsMispredicted(RetryBatch):
    """The events did not land where their results said; retried with the offsets learnt."""


class EventAppend:
    """A batch's events in flight, with the offsets they are expected to get.

    Results carry their events' offsets (read-your-writes tokens), and waiting for the broker's
    acknowledgements before producing them would put a round trip in the middle of every
    transaction. So offsets are predicted: one writer per partition (fenced) and an idempotent
    producer give a transaction's records of a partition consecutive offsets, and the commit
    marker takes one more. `check()` compares the prediction with the acknowledgements before
    the commit; a wrong one aborts the batch, which is retried with the offsets learnt.
    """

    def __init__(self, next_offset: dict[int, int], *, sparse: bool) -> None:
        self.next_offset = next_offset
        self.sparse = sparse
        """Delivery reports only for each partition's first and last event: in a transaction,
        a record that fails makes the commit fail, so the others need no report of their own."""
        self.places: list[tuple[int, int]] = []
        """(partition, position among this batch's events of the partition) of each event."""
        self.count: dict[int, int] = {}
        self.reports_expected = 0
        self.reports = 0
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.acknowledged: dict[int, int] = {}
        self.failed: list[Any] = []

    def number(self, partition: int, last: bool) -> bool:
        """Place the next event of `partition` (`last`: its last in the batch); True when
        its delivery must be reported."""
        n = self.count.get(partition, 0)
        self.count[partition] = n + 1
        self.places.append((partition, n))
        report = not self.sparse or n == 0 or last
        self.reports_expected += report
        return report

    @property
    def offsets(self) -> list[int]:
        """Each event's offset as predicted (or as learnt by `learn_actual`)."""
        base = self.next_offset
        return [base[p] + n for p, n in self.places]

    def on_delivery(self, err: Any, record: Message) -> None:
        """Delivery report of one event."""
        if err is not None:
            self.failed.append(err)
            return
        p, o = record.partition(), record.offset()
        self.first[p] = min(self.first.get(p, o), o)
        self.last[p] = max(self.last.get(p, o), o)
        self.acknowledged[p] = self.acknowledged.get(p, 0) + 1
        self.reports += 1

    def wait(self, poll: Callable[[float], Any], timeout: float) -> None:
        """Until every reported event is acknowledged, serving delivery reports with `poll`
        (the producer's); RetryBatch if one failed."""
        deadline = time.monotonic() + timeout
        while self.reports + len(self.failed) < self.reports_expected:
            if time.monotonic() > deadline:
                raise RetryBatch(f"events not acknowledged within {timeout:.0f}s")
            poll(0.01)
        if self.sparse:  # one writer per partition: first to last spans the batch's events
            self.acknowledged = {p: self.last[p] - first + 1 for p, first in self.first.items()}
        refused(self.failed)
        if self.acknowledged != self.count:
            raise RetryBatch(
                f"events acknowledged {self.acknowledged}, produced {self.count}: {self.failed[:1]}"
            )

    def check(self) -> None:
        """OffsetsMispredicted (after learning the real offsets) if a prediction was wrong."""
        wrong = {p: (self.next_offset[p], o) for p, o in self.first.items() if o != self.next_offset[p]}
        if wrong:
            for p, first in self.first.items():  # the retry comes after these and the abort marker
                self.next_offset[p] = first + self.count[p] + 1
            raise OffsetsMispredicted(f"first event offset per partition (predicted, actual): {wrong}")

    def learn_actual(self) -> None:
        """Offsets from the acknowledgements (outside a transaction, after `wait`)."""
        self.next_offset.update(self.first)

    def advance(self, marker: int) -> None:
        """The batch is appended: move past its events and `marker` (1 after a commit)."""
        for p, n in self.count.items():
            self.next_offset[p] += n + marker
