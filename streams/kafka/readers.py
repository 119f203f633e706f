"""Reading committed records of one partition between two offsets: the one partition reader.

Used wherever a stage or tool reads a known stretch of a partition rather than following a
topic: changelog restore, time travel and history pages, rebuilds, the view control topic.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from confluent_kafka import Consumer, Message, TopicPartition

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
        consumer: Consumer | None = None,
    ) -> None:
        self.tp = TopicPartition(topic, partition)
        self.idle_timeout_s = idle_timeout_s
        self._owned = consumer is None
        """A consumer lent by a `ReaderPool` stays open when the reader closes."""
        self._consumer = reader(settings, eof=True) if consumer is None else consumer
        if stop is None or start <= 0:
            low, high = watermarks(self._consumer, self.tp)
            start = max(start, low)
            stop = high if stop is None else stop
        self.start = start
        self.stop = stop
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
            if len(inside) < len(batch):
                # a record at or past `stop`: nothing below it is left (markers, or records a
                # compaction removed, may have been all there was)
                self.position = max(self.position, self.stop)
            if inside:
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
        """Release the consumer (a lent one goes back to its pool open)."""
        if self._owned:
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


def wait_until_readable(
    settings: Settings, topic: str, partitions: Iterable[int], timeout_s: float = 30.0
) -> bool:
    """Wait until what is written to `topic`'s partitions so far can be read `read_committed`
    (False: not within `timeout_s`).

    A `read_committed` consumer's high watermark is the last stable offset, and a transaction's
    commit returns before the broker has written its markers: a reader started right after a
    commit can find the partition empty up to that transaction. Call this after committing a
    transaction whose records are read next (`streams rebuild`, then `streams verify`). Another
    producer's open transaction also holds the stable offset back: hence the timeout.
    """
    committed = reader(settings)
    everything = reader(settings, overrides={"isolation.level": "read_uncommitted"})
    try:
        targets = {p: watermarks(everything, TopicPartition(topic, p))[1] for p in partitions}
        deadline = time.monotonic() + timeout_s
        while targets:
            for p, end in list(targets.items()):
                if watermarks(committed, TopicPartition(topic, p))[1] >= end:
                    del targets[p]
            if targets:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return True
    finally:
        committed.close()
        everything.close()


def read_offsets(
    settings: Settings,
    topic: str,
    partition: int,
    offsets: Iterable[int],
    *,
    gap: int = 500,
    consumer: Consumer | None = None,
) -> list[Message]:
    """The committed records at `offsets` of `topic`[`partition`] (those that exist), read in
    runs: offsets less than `gap` apart are read through, farther ones are sought. Only the
    records asked for are kept, so the memory is bounded by what is returned. `consumer`: a
    pool's (see `ReaderPool.read_offsets`), else one is made for the call."""
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
    first, stop = runs[0][0], runs[0][-1] + 1
    with PartitionReader(settings, topic, partition, first, stop, consumer=consumer) as reader:
        for run in runs:
            reader.reposition(run[0], run[-1] + 1)
            for batch in reader.batches(min(10000, run[-1] - run[0] + 1)):
                out += [m for m in batch if m.offset() in keep]
    return out


@dataclass(frozen=True)
class Stretch:
    """What a `ReaderPool` read: records in offset order, and the next offset to read (past any
    transaction marker when the stretch reached its stop)."""

    records: list[Message]
    position: int


class ReaderPool:
    """A fixed number of reusable consumers for reading stretches of partitions on demand.

    The real-time catch-up asks for many short stretches (a client resuming from its token),
    the history endpoints for a few records each; a consumer per request would cost a few
    librdkafka threads and its prefetch buffer each. The pool holds at most `size` consumers,
    created on first use and reused, each with a small prefetch (`clients.reader(bounded=True)`):
    callers beyond `size` wait for one. `read` and `read_offsets` block, so callers run them in
    executor threads.
    """

    def __init__(self, settings: Settings, size: int = 2) -> None:
        self.settings = settings
        self.size = size
        self._free: queue.Queue[Consumer] = queue.Queue()
        self._created = 0
        self._lock = threading.Lock()
        self._closed = False

    def _borrow(self) -> Consumer:
        with self._lock:
            if self._free.empty() and self._created < self.size:
                self._created += 1
                return reader(self.settings, eof=True, bounded=True)
        return self._free.get()

    @contextmanager
    def _lent(self) -> Iterator[Consumer]:
        consumer = self._borrow()
        try:
            yield consumer
        finally:
            if self._closed:
                consumer.close()
            else:
                self._free.put(consumer)

    def read_offsets(self, topic: str, partition: int, offsets: Iterable[int]) -> list[Message]:
        """`read_offsets` with one of the pool's consumers."""
        with self._lent() as consumer:
            return read_offsets(self.settings, topic, partition, offsets, consumer=consumer)

    def read(self, topic: str, partition: int, start: int, stop: int, max_records: int) -> Stretch:
        """Up to `max_records` committed records of `topic`[`partition`] with
        `start <= offset < stop` (fewer when the stretch ends first)."""
        with (
            self._lent() as consumer,
            PartitionReader(
                self.settings, topic, partition, start, stop, consumer=consumer
            ) as partition_reader,
        ):
            out: list[Message] = []
            for batch in partition_reader.batches(min(max_records, 10000)):
                out += batch
                if len(out) >= max_records:
                    break
            return Stretch(out, partition_reader.position)

    def close(self) -> None:
        """Close the idle consumers (those lent out are closed when they come back)."""
        self._closed = True
        while not self._free.empty():
            self._free.get_nowait().close()
