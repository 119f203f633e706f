"""Consumer lag and rebalances from librdkafka's statistics, for every consumer-group member.

`clients.group_consumer` turns on librdkafka's statistics (`statistics.interval.ms`,
`STATS_INTERVAL_MS`) with `stats_cb = collector(group)`. librdkafka calls that back from inside
the stage's own `poll`, so the callback only queues the JSON text (dropping it when the queue is
full); one daemon thread per process parses it and sets the metrics:

- `streams_consumer_lag_records{group,topic,partition}` for each partition the member is
  assigned: the partition's end (its last stable offset, since every group member reads
  `read_committed`; the high watermark when there is none) minus the member's position. The
  position of a member that commits its offsets itself (a read stage, the sink deriver) is its
  committed offset, as in librdkafka's own `consumer_lag`: records being folded still count. A
  transactional stage commits inside its producer's transaction, which the consumer never
  learns of: its position is the offset after the last record handed to it (librdkafka moves it
  past transaction markers). Either falls back on the other while unknown;
- `streams_consumer_rebalances_total{group}`: the member's rebalances (its first join included);
- `streams_consumer_assigned_partitions{group}`.

A member that stops sending statistics (closed, or a session replaced by a new one) has its
series removed after `EXPIRE_INTERVALS` intervals.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from streams import metrics

log = logging.getLogger(__name__)

STATS_INTERVAL_MS = 5000
"""How often every group member reports its statistics (the cost is one JSON text each time)."""
EXPIRE_INTERVALS = 3
"""A member not heard from for this many intervals has its series removed."""
QUEUE_SIZE = 256


@dataclass(frozen=True)
class PartitionLag:
    """The lag of one assigned partition."""

    topic: str
    partition: int
    lag: int


@dataclass(frozen=True)
class ConsumerStats:
    """What the metrics take from one statistics report of a consumer."""

    client: str
    """librdkafka's name for the client instance (unique in the process)."""
    lags: tuple[PartitionLag, ...]
    rebalances: int
    assigned: int
    queued_bytes: int = 0
    """Bytes fetched and not yet handed to the application: the member's one consumer queue, to
    which every assigned partition's fetch queue forwards (each reports the queue's whole size)."""
    queued_records: int = 0
    """Records in that queue: each costs some 400 bytes of C heap besides its payload."""


def parse(raw: str, *, commits: bool = True) -> ConsumerStats:
    """The lags and group state of a consumer's statistics JSON (see the module's docstring);
    `commits`: the member commits its offsets itself."""
    stats = json.loads(raw)
    lags = []
    queued = records = 0
    for topic, entry in stats.get("topics", {}).items():
        for key, part in entry.get("partitions", {}).items():
            if key == "-1" or not part.get("desired"):  # -1: librdkafka's unassigned-messages queue
                continue
            # every partition reports the member's one queue (librdkafka forwards them to it)
            queued = max(queued, int(part.get("fetchq_size", 0)))
            records = max(records, int(part.get("fetchq_cnt", 0)))
            lag = partition_lag(part, commits=commits)
            if lag is not None:
                lags.append(PartitionLag(topic, int(key), lag))
    group = stats.get("cgrp") or {}
    return ConsumerStats(
        client=str(stats.get("name", "")),
        lags=tuple(sorted(lags, key=lambda x: (x.topic, x.partition))),
        rebalances=int(group.get("rebalance_cnt", 0)),
        assigned=int(group.get("assignment_size", 0)),
        queued_bytes=queued,
        queued_records=records,
    )


def partition_lag(part: dict[str, Any], *, commits: bool = True) -> int | None:
    """End (LSO, else high watermark) minus position (the committed offset of a member that
    `commits`, else the offset after the records handed over; each falls back on the other);
    None while either end is unknown (negative in librdkafka's statistics)."""
    end = part.get("ls_offset", -1)
    if end < 0:
        end = part.get("hi_offset", -1)
    first, second = ("committed_offset", "app_offset") if commits else ("app_offset", "committed_offset")
    position = part.get(first, -1)
    if position < 0:
        position = part.get(second, -1)
    if end < 0 or position < 0:
        return None
    return max(0, int(end) - int(position))


Series = tuple[Gauge, tuple[str, ...]]


class StatsCollector:
    """Turns queued statistics reports into metrics, on a thread of its own (started lazily)."""

    def __init__(self, interval_s: float = STATS_INTERVAL_MS / 1000) -> None:
        self.interval_s = interval_s
        self._queue: queue.Queue[tuple[str, bool, str]] = queue.Queue(QUEUE_SIZE)
        self._rebalances: dict[str, int] = {}
        self._seen: dict[str, float] = {}
        """Client name -> when its last report was applied (monotonic)."""
        self._owners: dict[Series, str] = {}
        """Each gauge series set, and the client whose report set it last."""
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def callback(self, group: str, *, commits: bool = True) -> Callable[[str], None]:
        """The `stats_cb` of a member of `group` (`commits`: see `parse`): queues the report,
        never blocks."""
        self._start()

        def queued(raw: str) -> None:
            with contextlib.suppress(queue.Full):  # a dropped report: the next one comes in 5 s
                self._queue.put_nowait((group, commits, raw))

        return queued

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kafka-stats", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                group, commits, raw = self._queue.get(timeout=self.interval_s)
            except queue.Empty:
                self.expire(time.monotonic())
                continue
            try:
                self.apply(group, parse(raw, commits=commits), time.monotonic())
            except Exception:  # a report we cannot read must not end the thread
                log.warning("unreadable consumer statistics of %s", group, exc_info=True)
            self.expire(time.monotonic())

    def apply(self, group: str, stats: ConsumerStats, now: float) -> None:
        """Set the metrics of one report; remove the series the same client set before and no
        longer reports (partitions revoked)."""
        client = stats.client
        previous = self._rebalances.get(client, 0)
        if stats.rebalances > previous:
            metrics.CONSUMER_REBALANCES.labels(group).inc(stats.rebalances - previous)
        self._rebalances[client] = stats.rebalances
        self._seen[client] = now
        current: set[Series] = {
            (metrics.CONSUMER_ASSIGNED, (group,)),
            (metrics.CONSUMER_QUEUE_BYTES, (group,)),
            (metrics.CONSUMER_QUEUE_RECORDS, (group,)),
        }
        metrics.CONSUMER_ASSIGNED.labels(group).set(stats.assigned)
        metrics.CONSUMER_QUEUE_BYTES.labels(group).set(stats.queued_bytes)
        metrics.CONSUMER_QUEUE_RECORDS.labels(group).set(stats.queued_records)
        for lag in stats.lags:
            labels = (group, lag.topic, str(lag.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(lag.lag)
            current.add((metrics.CONSUMER_LAG, labels))
        for series, owner in list(self._owners.items()):
            if owner == client and series not in current:
                self._remove(series)
        for series in current:
            self._owners[series] = client

    def expire(self, now: float) -> None:
        """Remove the series of clients silent for `EXPIRE_INTERVALS` intervals."""
        limit = now - EXPIRE_INTERVALS * self.interval_s
        for client in [c for c, at in self._seen.items() if at < limit]:
            del self._seen[client]
            self._rebalances.pop(client, None)
            for series in [s for s, owner in self._owners.items() if owner == client]:
                self._remove(series)

    def _remove(self, series: Series) -> None:
        gauge, labels = series
        self._owners.pop(series, None)
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)


COLLECTOR = StatsCollector()
"""The process's collector (every group member reports to it)."""
