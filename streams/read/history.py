"""An aggregate's history and its state at a point: the history index + snapshot + tail.

The index (`HistoryIndexer`) gives each event's offset, so reading an aggregate's past means
reading exactly those records of one partition (`read_offsets`), not scanning the log for its
key nor holding the other aggregates' records in between. A state at version N starts from the
latest snapshot at or before N (when compaction has kept it) and folds only the events after it,
a page of index entries at a time. Reads go through a `ReaderPool` of consumers with a small
prefetch, reused across requests.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.core.commands import Aggregate, AggregateSnapshot
from streams.kafka.fold import LogFold, LoggedEvent, logged_events
from streams.kafka.readers import ReaderPool
from streams.kafka.runtime import ContextRuntime
from streams.read.history_index import HistoryIndexer, IndexEntry


@dataclass(frozen=True)
class PointInTime:
    """An aggregate's state at `version`, and how it was obtained."""

    version: int
    state: Any
    from_snapshot: int
    events_read: int
    latest_version: int


class NotInHistory(LookupError):
    """No such aggregate, version or time in the history (a 404)."""


@dataclass(frozen=True)
class EventsPage:
    """A page of an aggregate's events: their records, the latest version, the next page's
    first version (None: this page reaches the end)."""

    records: list[LoggedEvent]
    latest_version: int
    next: int | None


FOLD_PAGE = 1000
"""Index entries (and event records) read at a time while folding towards a past state."""


class HistoryReader:
    """An aggregate's events and past states, from the history index and a pool of bounded
    readers. Every method blocks (RocksDB scans, Kafka reads): run them in an executor.
    `NotOwned` when the index partition is not held here, `NotInHistory` for a 404."""

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, index: HistoryIndexer, pool: ReaderPool
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.index = index
        self.pool = pool
        self.executor = ThreadPoolExecutor(pool.size, thread_name_prefix="history")
        """Where the query API runs these reads: as many threads as the pool has consumers, so
        requests beyond them queue here rather than hold the loop's default executor."""

    def close(self) -> None:
        """Release the executor and the pool's consumers."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    def _latest(self, partition: int, aggregate_id: str) -> IndexEntry:
        latest = self.index.latest(partition, aggregate_id)
        if latest is None:
            raise NotInHistory(f"no aggregate {aggregate_id!r} in {self.runtime.context.name}")
        return latest

    def _events(self, partition: int, aggregate_id: str, entries: list[IndexEntry]) -> list[LoggedEvent]:
        records = self.pool.read_offsets(self.runtime.topics.events, partition, [e.offset for e in entries])
        return logged_events(self.runtime, records, only=aggregate_id.encode())

    def _snapshot(
        self, partition: int, aggregate_id: str, snapshot: tuple[int, int]
    ) -> AggregateSnapshot | None:
        """The snapshot the index points at ((version, offset)), None when compacted away."""
        version, offset = snapshot
        try:
            records = self.pool.read(self.runtime.topics.snapshots, partition, offset, offset + 1, 1).records
        except TimeoutError:
            return None
        for msg in records:
            if msg.offset() == offset and msg.key() == aggregate_id.encode() and msg.value() is not None:
                loaded: AggregateSnapshot = self.runtime.codec.decode(msg.value()).message
                if loaded.version == version:
                    return loaded
        return None

    def events(self, partition: int, aggregate_id: str, from_version: int, limit: int) -> EventsPage:
        """Up to `limit` events from `from_version`."""
        latest = self._latest(partition, aggregate_id)
        entries = self.index.entries(partition, aggregate_id, from_version, limit)
        events = self._events(partition, aggregate_id, entries) if entries else []
        following = entries[-1].version + 1 if entries and entries[-1].version < latest.version else None
        return EventsPage(events, latest.version, following)

    def state(
        self, partition: int, aggregate_id: str, at_version: int | None, as_of_ms: int | None
    ) -> PointInTime:
        """The state now, at `at_version`, or as of a time (ms): the latest snapshot at or before
        it, then the events after it folded a page at a time."""
        latest = self._latest(partition, aggregate_id).version
        version = latest
        if at_version is not None:
            if at_version > latest:
                raise NotInHistory(f"{aggregate_id} has {latest} versions, not {at_version}")
            version = at_version
        if as_of_ms is not None:
            found = self.index.version_as_of(partition, aggregate_id, as_of_ms)
            if found is None:
                raise NotInHistory(f"{aggregate_id} did not exist at that time")
            version = found
        base = Aggregate(0, self.runtime.context.initial_state)
        snapshot = self.index.snapshot_at_or_before(partition, aggregate_id, version)
        if snapshot is not None:
            loaded = self._snapshot(partition, aggregate_id, snapshot)
            if loaded is not None:
                base = Aggregate(loaded.version, self.runtime.codec.decode(loaded.state).message)
        fold = LogFold(self.runtime.context, {aggregate_id: base}, up_to=version)
        read = 0
        while fold.aggregate(aggregate_id).version < version:
            start = fold.aggregate(aggregate_id).version + 1
            entries = self.index.entries(partition, aggregate_id, start, FOLD_PAGE, up_to=version)
            if not entries:
                break
            events = self._events(partition, aggregate_id, entries)
            read += len(events)
            fold.add_all(events)
            if fold.aggregate(aggregate_id).version < entries[-1].version:
                break  # a record the index points at is gone: fold no further than the log allows
        done = fold.aggregate(aggregate_id)
        return PointInTime(done.version, done.state, base.version, read, latest)
