"""Reading committed records of one partition between two offsets: the one partition reader.

Used wherever a stage or tool reads a known stretch of a partition rather than following a
topic: changelog restore, time travel and history pages, rebuilds, the view control topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import TracebackType

from confluent_kafka import Message, TopicPartition

from streams.config import Settings
from streams.kafka.clients import reader, records, take, watermarks


class PartitionReader:
    """Committed records of `topic`[`partition`] with `start <= offset < stop`.

    `stop` defaults to the partition's high watermark when the reader opens. Reading ends at
    `stop`, at the end of the partition, or past it (a transaction's commit marker is never
    delivered, so the last offset below `stop` may not come); `position` is then the next offset
    to read, past any marker. No record arriving for `idle_timeout_s` while short of the end
    raises TimeoutError.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        partition: int,
        start: int = 0,
        stop: int | None = None,
        *,
        idle_timeout_s: float = 5.0,
    ) -> None:
        self.tp = TopicPartition(topic, partition)
        self.idle_timeout_s = idle_timeout_s
        self._consumer = reader(settings, eof=True)
        low, high = watermarks(self._consumer, self.tp)
        self.start = max(start, low)
        self.stop = high if stop is None else stop
        self.position = self.start

    def reposition(self, start: int, stop: int) -> None:
        """Read `start <= offset < stop` next, with the same consumer."""
        self.start, self.stop, self.position = start, stop, start

    def batches(self, size: int = 10000) -> Iterator[list[Message]]:
        """Lists of up to `size` records, in offset order."""
        if self.position >= self.stop:
            return
        self._consumer.assign([TopicPartition(self.tp.topic, self.tp.partition, self.position)])
        who = f"{self.tp.topic}[{self.tp.partition}]"
        deadline = time.monotonic() + self.idle_timeout_s
        while True:
            # an end-of-partition event before `stop` means a transaction just committed is not
            # readable yet (its markers are on their way): keep reading until `stop`
            batch = records(take(self._consumer, size, min(self.idle_timeout_s, 0.2)), who)
            inside = [m for m in batch if m.offset() < self.stop]
            if inside:
                self.position = inside[-1].offset() + 1
                deadline = time.monotonic() + self.idle_timeout_s
                yield inside
            if len(inside) < len(batch) or self._reached_stop():
                return
            if not batch and time.monotonic() > deadline:
                raise TimeoutError(f"{who}: offsets {self.position}..{self.stop - 1} not readable")

    def _reached_stop(self) -> bool:
        """True once the consumer's position (which counts skipped markers) is at `stop`."""
        position = self._consumer.position([self.tp])[0].offset
        if position >= 0:
            self.position = max(self.position, position)
        return self.position >= self.stop

    def close(self) -> None:
        """Release the consumer."""
        self._consumer.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def read_partition(
    settings: Settings, topic: str, partition: int, start: int = 0, stop: int | None = None
) -> list[Message]:
    """Every committed record of `topic`[`partition`] with `start <= offset < stop` (default:
    up to the high watermark)."""
    with PartitionReader(settings, topic, partition, start, stop) as partition_reader:
        return [m for batch in partition_reader.batches() for m in batch]


def read_offsets(
    settings: Settings, topic: str, partition: int, offsets: Iterable[int], *, gap: int = 500
) -> list[Message]:
    """The committed records at `offsets` of `topic`[`partition`] (those that exist), read in
    runs: offsets less than `gap` apart are read through, farther ones are sought. Only the
    records asked for are kept, so the memory is bounded by what is returned."""
    wanted = sorted(set(offsets))
    if not wanted:
        return []
    runs: list[list[int]] = [[wanted[0]]]
    for offset in wanted[1:]:
        if offset - runs[-1][-1] <= gap:
            runs[-1].append(offset)
        else:
            runs.append([offset])
    keep = set(wanted)
    out: list[Message] = []
    with PartitionReader(settings, topic, partition, runs[0][0], runs[0][-1] + 1) as reader:
        for run in runs:
            reader.reposition(run[0], run[-1] + 1)
            for batch in reader.batches(min(10000, run[-1] - run[0] + 1)):
                out += [m for m in batch if m.offset() in keep]
    return out
