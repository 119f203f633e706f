"""What one batch of a window stage writes: typed pending records, kept apart from RocksDB
until its transaction commits (the intake fills it without Kafka; the stage produces it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.kafka.tables import Writes
from streams.wire import headers as h
from streams.wire.dlq import DeadLetter


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A system command for the context's command topic."""

    partition: int
    key: bytes
    value: bytes
    headers: h.Headers
    command_id: str


@dataclass(frozen=True, slots=True)
class Rerouted:
    """A raw record produced again to the partition its key belongs to."""

    partition: int
    key: bytes
    value: bytes | None
    headers: h.Headers
    timestamp: int


@dataclass(slots=True)
class WindowBatch:
    """What one batch of a window stage writes, kept apart from RocksDB until it commits."""

    commands: list[PendingCommand] = field(default_factory=list)
    letters: list[tuple[str, DeadLetter]] = field(default_factory=list)
    """(topic, dead letter): the aggregation's DLQ or its late DLQ."""
    reroutes: list[Rerouted] = field(default_factory=list)
    writes: dict[int, Writes] = field(default_factory=dict)
    """Store (and changelog) writes per partition; None deletes."""
    decoded: dict[tuple[int, bytes], Any] = field(default_factory=dict)
    """The same writes, decoded, for the committed cache."""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """The next offset of each input (topic, partition) once the batch commits."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """Raw records by outcome: folded, late, rerouted, or the DLQ reason."""
    closed: Counter[str] = field(default_factory=Counter)
    """Windows closed, by trigger (stream_time, idle)."""
    fired: int = 0
    """Heartbeat timers fired."""
    more: set[int] = field(default_factory=set)
    """Partitions with windows or timers still due (the pass closed its maximum): drain them."""
    timestamps: list[float] = field(default_factory=list)
    """Record timestamps (s) of the raw records folded, for the latency metric."""

    def empty(self) -> bool:
        """True when there is nothing to produce or commit."""
        return not (self.offsets or self.commands or self.writes)
