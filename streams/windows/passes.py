"""One pass of a window stage over a batch (or an idle flush): decoded pending values over the
committed state, closing windows and firing timers, dead letters, and the batch's writes. The
folding of records is the intake's (`streams.windows.intake`)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from confluent_kafka import Message

from streams.core.windows import ClosedWindow, heartbeat_command_id, window_command_id
from streams.windows import letters
from streams.windows.batch import PendingCommand, WindowBatch
from streams.windows.rules import PassRules
from streams.windows.state import (
    BEAT,
    ROW,
    STREAM_TIME,
    TIMER,
    WINDOW,
    WindowReader,
    encode_value,
    split_timer_key,
    split_window_key,
)
from streams.wire import headers as h
from streams.wire.topics import partition_for

log = logging.getLogger(__name__)

_NOT_PENDING = object()
"""What `Pass.pending.get` gives for a key the pass has not set (None is a deletion)."""


class Pass:
    """One pass over a batch: pending values (decoded) over the committed state, and what every
    pass does with them: close the windows and fire the timers due, dead-letter, finish."""

    def __init__(self, intake: PassRules, state: WindowReader, now_ms: int) -> None:
        self.intake = intake
        self.agg = intake.aggregation
        self.state = state
        self.now_ms = now_ms
        self.batch = WindowBatch()
        self.pending: dict[tuple[int, bytes], Any] = {}
        self.moved: dict[int, int] = {}
        """Partitions whose stream time this pass moved, and to what."""
        self.committed_times: dict[int, int] = {}
        self.closes = 0
        """Windows and timers this pass closed (at most the intake's `max_closes`)."""
        self.timed: dict[tuple[int, bytes], dict[bytes, int]] = {}
        """Window and timer keys this pass set, by (partition, prefix), with their time."""
        self.folded = 0
        """Raw records folded (counted here, into the batch's outcomes when the pass finishes)."""

    # --- pending values over committed ones --------------------------------------------------

    def value(self, partition: int, key: bytes) -> Any:
        """A key's value as this pass left it (else the committed one, decoded)."""
        found = self.pending.get((partition, key), _NOT_PENDING)
        return self.state.decoded(partition, key) if found is _NOT_PENDING else found

    def set(self, partition: int, key: bytes, value: Any) -> None:
        """Set a key's value, written when the pass's batch commits."""
        self.pending[(partition, key)] = value

    def set_timed(self, partition: int, prefix: bytes, key: bytes, value: Any, at: int) -> None:
        """Set a window or timer key (`at`: its end or bucket), remembered for closing."""
        self.pending[(partition, key)] = value
        self.timed.setdefault((partition, prefix), {})[key] = at

    def stream_time(self, partition: int) -> int:
        """The partition's stream time: as this pass moved it, else the committed one."""
        moved = self.moved.get(partition)
        if moved is not None:
            return moved
        committed = self.committed_times.get(partition)
        if committed is None:
            committed = self.committed_times[partition] = self.state.stream_time(partition)
        return committed

    # --- closing -----------------------------------------------------------------------------

    def close(self, partition: int, stream_time: int, trigger: str) -> None:
        """Close every window the stream time reached, then fire the timers due."""
        spec, agg = self.agg.spec, self.agg
        bound = stream_time - spec.grace_ms
        for wkey in self._due(partition, WINDOW, bound):
            if self.closes >= self.intake.max_closes:
                self.batch.more.add(partition)
                return
            self.closes += 1
            current = self.value(partition, wkey)
            if current is None:
                continue
            end, raw_key, raw_group = split_window_key(wkey)
            key, group = raw_key.decode(), raw_group.decode()
            start = end - spec.size_ms
            self.set(partition, wkey, None)
            self.batch.closed[trigger] += 1
            window = ClosedWindow(key, group, start, end, current[0])
            try:
                command = agg.close(window)
                self.command(partition, raw_key, command, window_command_id(agg.name, key, group, start))
            except Exception as exc:  # a bug in `close`: the window is kept in the DLQ, the stage goes on
                self.closing_failed(partition, window, raw_key, exc)
        heartbeat = agg.heartbeat
        if heartbeat is None:
            return
        for tkey in self._due(partition, TIMER, stream_time):
            if self.closes >= self.intake.max_closes:
                self.batch.more.add(partition)
                return
            self.closes += 1
            last_seen = self.value(partition, tkey)
            if last_seen is None:
                continue
            _, raw_key = split_timer_key(tkey)
            self.set(partition, tkey, None)
            self.set(partition, BEAT + raw_key, None)
            found = self.value(partition, ROW + raw_key) if agg.table is not None else None
            if heartbeat.after_ms(None if found is None else found[1]) is None:
                continue  # the key needs no timer any more (e.g. decommissioned)
            key = raw_key.decode()
            command = heartbeat.command(key, last_seen)
            self.command(partition, raw_key, command, heartbeat_command_id(agg.name, key, last_seen))
            self.batch.fired += 1

    def _due(self, partition: int, prefix: bytes, upper: int) -> list[bytes]:
        """Committed and pending keys of `prefix` whose time is <= `upper`, in time order."""
        room = self.intake.max_closes - self.closes + 1  # one more than closable: is there more?
        keys = set(itertools.islice(self.state.scan_until(partition, prefix, upper), room))
        keys.update(k for k, at in self.timed.get((partition, prefix), {}).items() if at <= upper)
        return sorted(keys)

    def command(self, partition: int, raw_key: bytes, command: Any, command_id: str) -> None:
        """Send a system command (a closed window's summary, a silence) to the context's command topic."""
        intake = self.intake
        if type(command) not in intake.context.commands:
            raise TypeError(f"{type(command).__name__} is not a command of {intake.context.name}")
        headers = [
            (h.COMMAND_ID, command_id.encode()),
            (h.CORRELATION_ID, command_id.encode()),
            (h.ACTOR, intake.actor.encode()),
        ]
        target = partition_for(raw_key, intake.partitions)
        self.batch.commands.append(
            PendingCommand(target, raw_key, intake.codec.encode(command), headers, command_id)
        )

    # --- dead letters (built by streams.windows.letters) --------------------------------------

    def closing_failed(self, partition: int, window: ClosedWindow, raw_key: bytes, exc: Exception) -> None:
        """A window whose `close` raised: its accumulator goes to the DLQ (`close_failed`)."""
        self.batch.letters.append(
            (self.intake.dlq, letters.close_failed(self.agg.name, partition, window, raw_key, exc))
        )
        self.batch.outcomes["close_failed"] += 1
        log.error(
            "%s: close of %s %s %d failed: %s", self.agg.name, window.key, window.group, window.start, exc
        )

    def letter(
        self, msg: Message, reason: str, detail: str, *, topic: str | None = None, **extra: str
    ) -> None:
        """A raw record to the aggregation's DLQ (or `topic`: the late DLQ) with the reason."""
        self.batch.letters.append(
            (topic or self.intake.dlq, letters.refused(self.agg.name, msg, reason, detail, **extra))
        )
        if topic is None:
            self.batch.outcomes[reason] += 1
            log.debug(
                "%s: %s/%s to DLQ: %s (%s)",
                self.agg.name,
                msg.partition(),
                msg.offset(),
                reason,
                detail[:200],
            )

    # --- the batch's writes ------------------------------------------------------------------

    def finish(self) -> WindowBatch:
        """The batch's store writes, changelog records, commands and dead letters."""
        batch = self.batch
        if self.folded:
            batch.outcomes["folded"] += self.folded
        for partition, stream_time in self.moved.items():
            self.set(partition, STREAM_TIME, stream_time)
        limit = self.intake.max_value_bytes
        for (partition, key), value in self.pending.items():
            encoded = None if value is None else encode_value(key, value)
            if encoded is not None and len(encoded) > limit:  # a fold that grows without bound
                self.window_too_large(partition, key, encoded)
                encoded = value = None
            batch.writes.setdefault(partition, {})[key] = encoded
            batch.decoded[(partition, key)] = value
        return batch

    def window_too_large(self, partition: int, key: bytes, encoded: bytes) -> None:
        """A window whose state would pass the changelog's record limit is given up (a fold must
        keep its accumulator bounded): its state to the DLQ, the window deleted; the stage goes on."""
        end, raw_key, group = split_window_key(key) if key[:2] == WINDOW else (0, key, b"")
        letter = letters.too_large(
            self.agg.name, partition, raw_key, group, end, encoded, self.intake.max_value_bytes
        )
        self.batch.letters.append((self.intake.dlq, letter))
        self.batch.outcomes["window_too_large"] += 1
        log.error("%s: window %s %s %d: %d bytes", self.agg.name, raw_key, group, end, len(encoded))
