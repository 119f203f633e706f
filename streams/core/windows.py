"""Windowed aggregation declared as plain data: event-time windows over a high-rate input.

A context that receives more records than any per-record decision should see (telemetry, clicks,
meter readings) declares a `WindowedAggregation` beside its views: the raw record type, how it
is keyed and timed, the window size, hop and grace, a pure `fold` of records into an
accumulator, and `close`, which turns a closed window into a **system command** for the
context's decider. The stage that runs it (`streams.windows`) owns Kafka, RocksDB and the
transaction; nothing here knows about them.

Time is event time in epoch milliseconds. A window `[start, end)` is *closed* once the
partition's stream time (the largest event time it has accepted) reaches `end + grace`; a
record for a closed window is **late**: it is counted and dead-lettered, never folded and never
silently dropped. Each window is emitted once, when it closes (final results only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.core.records import Message

Accumulator = dict[str, Any]
"""A window's running aggregate: a JSON-able dict (the stage stores it in RocksDB and its changelog)."""
Row = dict[str, Any]
"""A row of a join table: a JSON-able dict."""

MAX_COMMAND_ID = 255
"""Command ids are identifiers (`streams.wire.identifiers`): longer ones are hashed."""


class BadRecord(Exception):
    """A raw record the aggregation refuses: it goes to the aggregation's DLQ with `reason`
    (machine-readable, stable) and `detail` (for people)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Tumbling (`advance_ms` = `size_ms`, the default) or hopping event-time windows.

    Windows are aligned to the epoch: `[k * advance, k * advance + size)`. A window closes when
    the stream time reaches `end + grace_ms`; records that arrive after that are late.
    """

    size_ms: int
    advance_ms: int = 0
    """The hop between window starts (0: `size_ms`, tumbling windows)."""
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.grace_ms < 0 or self.advance_ms < 0:
            raise ValueError("window size must be > 0, grace and advance >= 0")
        if self.advance_ms > self.size_ms:
            raise ValueError("a hop larger than the window would leave gaps between windows")

    @property
    def hop_ms(self) -> int:
        """The distance between consecutive window starts."""
        return self.advance_ms or self.size_ms

    @property
    def tumbling(self) -> bool:
        """True when every record falls in exactly one window."""
        return self.hop_ms == self.size_ms

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        """The windows `(start, end)` a record of event time `ts` falls in, oldest first."""
        hop, size = self.hop_ms, self.size_ms
        last = ts - ts % hop
        if hop == size:
            return [(last, last + size)]
        out = []
        start = last - ((size - 1) // hop) * hop
        while start <= last:
            if start + size > ts:
                out.append((start, start + size))
            start += hop
        return out

    def is_closed(self, end: int, stream_time: int) -> bool:
        """Whether the window ending at `end` is closed at `stream_time`."""
        return stream_time >= end + self.grace_ms


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window that closed: what `close` is given."""

    key: str
    """The record key (e.g. the device id): the aggregate the system command goes to."""
    group: str
    """The part of the window key beside the record key (e.g. the metric), "" when none."""
    start: int
    end: int
    accumulator: Accumulator


@dataclass(frozen=True)
class JoinTable:
    """A table keyed like the raw records, folded from the context's own events (a KTable):
    each raw record is joined with the row of its key before it is folded.

    `events` are the event types that change a row (other events are skipped unread, by their
    `event_type` header); `evolve(row, event)` returns the new row (None: no row). Rows are
    idempotent by aggregate version, like view documents.
    """

    name: str
    events: tuple[type, ...]
    evolve: Callable[[Row | None, Message], Row | None]

    @property
    def event_names(self) -> frozenset[str]:
        """The `event_type` headers of the events that change a row."""
        return frozenset(e.__name__ for e in self.events)


@dataclass(frozen=True)
class Heartbeat:
    """A timer per key: when no record of a key has been accepted for `after_ms(row)` of stream
    time, `command(key, last_seen_ms)` is sent to the key's aggregate (once per silence).

    Timers are kept in buckets of the window hop, so a silence is noticed within one hop of the
    configured time. `after_ms` returns None for keys that need no timer.
    """

    after_ms: Callable[[Row | None], int | None]
    command: Callable[[str, int], Message]


def _no_check(record: Any) -> None:
    return None


def _no_join(record: Any, row: Row | None) -> None:
    return None


@dataclass(frozen=True)
class WindowedAggregation:
    """A high-rate input folded into windows, each closed window becoming a system command.

    - `name`: also the raw topic's name, `<ctx>.<name>`; its records are keyed by the aggregate id
      and hold a `record_type` (an Avro schema of the context, like a command).
    - `timestamp(record)`: the event time (epoch ms); `group_by(record)`: the window key beside the
      record key (e.g. the metric); `check(record)`: raises `BadRecord` for a record that must not
      be folded (e.g. a non-numeric value).
    - `table` and `join(record, row)`: the stream-table join; `join` raises `BadRecord` when the
      row refuses the record (an unknown or decommissioned device).
    - `fold(accumulator, record)`: the new accumulator (None: the window's first record); it must
      not mutate its input. `close(window)`: the system command for a closed window.
    - `max_future_ms` / `max_age_ms`: a record whose event time is that far ahead of / behind its
      arrival (the broker's timestamp: raw topics are `LogAppendTime`) is dead-lettered
      (`timestamp_in_future` / `timestamp_too_old`) instead of moving the stream time; an accepted
      record moves the stream time to its event time, but never past its arrival.
    - `idle_flush_ms`: a partition that receives nothing for this long (wall clock, and nothing
      left to read) has its stream time advanced by the wall-clock time elapsed, so a quiet
      partition still closes its windows.
    """

    name: str
    record_type: type
    spec: WindowSpec
    timestamp: Callable[[Any], int]
    fold: Callable[[Accumulator | None, Any], Accumulator]
    close: Callable[[ClosedWindow], Message]
    group_by: Callable[[Any], str] = lambda _record: ""
    check: Callable[[Any], None] = _no_check
    table: JoinTable | None = None
    join: Callable[[Any, Row | None], None] = _no_join
    heartbeat: Heartbeat | None = None
    max_future_ms: int = 5 * 60 * 1000
    max_age_ms: int = 7 * 24 * 3600 * 1000
    idle_flush_ms: int = 2000
    commands: tuple[type, ...] = field(default=())
    """The system commands `close` and the heartbeat produce (documentation and checks)."""


def window_command_id(name: str, key: str, group: str, start: int) -> str:
    """The deterministic command id of a closed window: a replay of the same window gives the
    same id, so the decider's dedupe absorbs it."""
    return _bounded(f"w:{name}:{key}:{group}:{start}")


def heartbeat_command_id(name: str, key: str, last_seen_ms: int) -> str:
    """The deterministic command id of a silence noticed after the record at `last_seen_ms`."""
    return _bounded(f"s:{name}:{key}:{last_seen_ms}")


def _bounded(text: str) -> str:
    if len(text) <= MAX_COMMAND_ID:
        return text
    return f"{text[:2]}sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def fold_windows(
    aggregation: WindowedAggregation, records: Iterable[tuple[str, Any]]
) -> dict[tuple[str, str, int], Accumulator]:
    """Every window's accumulator from `(key, record)` pairs, ignoring lateness: the reference
    a test compares the stage's closed windows with."""
    out: dict[tuple[str, str, int], Accumulator] = {}
    spec = aggregation.spec
    for key, record in records:
        group = aggregation.group_by(record)
        for start, _end in spec.windows_of(aggregation.timestamp(record)):
            window = (key, group, start)
            out[window] = aggregation.fold(out.get(window), record)
    return out
