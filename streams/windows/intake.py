"""Deciding a batch of a window stage, without Kafka: raw records and table events in, typed
outputs out (system commands, dead letters, re-routed records, state writes, offsets).

For each raw record, in order: no key, an oversized value, a key that is not UTF-8 or not a
valid identifier, a value that cannot be read (`RecordDecoder`), a record the aggregation's
`check` refuses, a group that is not an identifier, an event time too far ahead of or behind
the record's Kafka timestamp, and a record the join refuses (its table row) are dead-lettered
with their reason. A record in the wrong partition (a producer with another partitioner) is
produced again to its key's partition. A record whose window closed already (its end + grace is
at or before the partition's stream time) is late: it goes to the late DLQ and is counted.
Every other record is folded into its windows, moves the stream time and its key's heartbeat.

Records of the context's events feed the join table (by `event_type` header, idempotent by
aggregate version). Once the batch's records are folded, every window of a partition whose
`end + grace` the stream time reached is closed: its system command is produced (deterministic
command id) and its state deleted; then the heartbeat timers due fire.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Sequence
from typing import Any, Protocol

import orjson
from confluent_kafka import Message

from streams.core.decider import BoundedContext
from streams.core.windows import (
    BadRecord,
    ClosedWindow,
    WindowedAggregation,
    heartbeat_command_id,
    window_command_id,
)
from streams.windows.batch import PendingCommand, Rerouted, WindowBatch
from streams.windows.records import RecordDecoder
from streams.windows.state import (
    BEAT,
    ROW,
    STREAM_TIME,
    TIMER,
    WINDOW,
    encode_value,
    split_timer_key,
    split_window_key,
    timer_key,
    window_key,
)
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError, RegistryUnavailable
from streams.wire.dlq import dead_letter, source_of
from streams.wire.identifiers import InvalidIdentifier, check_identifier
from streams.wire.topics import ContextTopics, partition_for

log = logging.getLogger(__name__)

_TABLE_HEADERS = frozenset({h.EVENT_TYPE, h.AGGREGATE_VERSION})
_MISSING = object()
_KNOWN_KEYS = 200_000


class WindowReader(Protocol):
    """The committed state the intake decides against (`streams.windows.state.WindowState`)."""

    def decoded(self, partition: int, key: bytes) -> Any:
        """A committed value, decoded by its key space (None: absent)."""

    def scan_until(self, partition: int, prefix: bytes, upper: int) -> Iterable[bytes]:
        """Committed keys with `prefix` whose time is <= `upper`, in order."""

    def stream_time(self, partition: int) -> int:
        """The partition's committed stream time."""


class WindowIntake:
    """Decides batches of one windowed aggregation of one context."""

    def __init__(
        self,
        context: BoundedContext[Any],
        aggregation: WindowedAggregation,
        codec: AvroCodec,
        topics: ContextTopics,
        partitions: int,
        *,
        max_record_bytes: int,
    ) -> None:
        self.context = context
        self.aggregation = aggregation
        self.codec = codec
        self.topics = topics
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self.decoder = RecordDecoder(codec, aggregation.record_type)
        self.input = topics.window_input(aggregation.name)
        self.dlq = topics.window_dlq(aggregation.name)
        self.late = topics.window_late(aggregation.name)
        table = aggregation.table
        self.table_events = table.event_names if table is not None else frozenset()
        self.actor = f"windows:{aggregation.name}"
        self.keys: dict[bytes, str] = {}
        """Record keys already found valid, decoded (bounded): most keys come again and again."""
        self.groups: set[str] = set()
        """Groups already found valid (bounded)."""

    def decide(
        self, messages: Sequence[Message], state: WindowReader, owned: Container[int], now_ms: int
    ) -> WindowBatch:
        """Fold the records of partitions this worker `owned`s (table events first), then close
        what the stream time reached."""
        run = _Pass(self, state, now_ms)
        events = self.topics.events
        table = [m for m in messages if m.topic() == events]
        ordered = [*table, *(m for m in messages if m.topic() != events)] if table else messages
        for msg in ordered:  # the table's events first
            partition = msg.partition()
            if partition not in owned:
                continue  # revoked meanwhile: its new owner reads it
            run.batch.offsets[(msg.topic(), partition)] = msg.offset() + 1
            if msg.topic() == events:
                run.table_event(msg, partition)
            else:
                run.record(msg, partition)
        for partition, stream_time in run.moved.items():
            run.close(partition, stream_time, "stream_time")
        return run.finish()

    def advance(self, targets: dict[int, int], state: WindowReader, now_ms: int) -> WindowBatch:
        """The idle flush: move quiet partitions' stream time to `targets` and close what it reaches."""
        run = _Pass(self, state, now_ms)
        for partition, target in targets.items():
            if target > run.stream_time(partition):
                run.moved[partition] = target
                run.close(partition, target, "idle")
        return run.finish()


class _Pass:
    """One pass over a batch: pending values (decoded) over the committed state."""

    def __init__(self, intake: WindowIntake, state: WindowReader, now_ms: int) -> None:
        self.intake = intake
        self.agg = intake.aggregation
        self.state = state
        self.now_ms = now_ms
        self.batch = WindowBatch()
        self.pending: dict[tuple[int, bytes], Any] = {}
        self.moved: dict[int, int] = {}
        """Partitions whose stream time this pass moved, and to what."""
        self.committed_times: dict[int, int] = {}
        self.timed: dict[tuple[int, bytes], dict[bytes, int]] = {}
        """Window and timer keys this pass set, by (partition, prefix), with their time."""

    # --- pending values over committed ones --------------------------------------------------

    def value(self, partition: int, key: bytes) -> Any:
        found = self.pending.get((partition, key), _MISSING)
        return self.state.decoded(partition, key) if found is _MISSING else found

    def set(self, partition: int, key: bytes, value: Any) -> None:
        self.pending[(partition, key)] = value

    def set_timed(self, partition: int, prefix: bytes, key: bytes, value: Any, at: int) -> None:
        """Set a window or timer key (`at`: its end or bucket), remembered for closing."""
        self.pending[(partition, key)] = value
        self.timed.setdefault((partition, prefix), {})[key] = at

    def stream_time(self, partition: int) -> int:
        moved = self.moved.get(partition)
        if moved is not None:
            return moved
        committed = self.committed_times.get(partition)
        if committed is None:
            committed = self.committed_times[partition] = self.state.stream_time(partition)
        return committed

    # --- table events ------------------------------------------------------------------------

    def table_event(self, msg: Message, partition: int) -> None:
        table = self.agg.table
        if table is None:
            return
        meta = h.pick(msg.headers(), _TABLE_HEADERS)
        if meta.get(h.EVENT_TYPE) not in self.intake.table_events or not msg.key():
            return
        key = ROW + msg.key()
        try:
            version = int(meta[h.AGGREGATE_VERSION])
            current = self.value(partition, key)
            if current is not None and version <= current[0]:
                return  # seen already
            event = self.intake.codec.decode(msg.value()).message
            row = table.evolve(None if current is None else current[1], event)
        except DecodeError as exc:
            self.letter(msg, exc.reason, f"join table {table.name}: {exc}")
            return
        except (KeyError, ValueError, TypeError) as exc:
            self.letter(
                msg, "unreadable_table_event", f"join table {table.name}: {type(exc).__name__}: {exc}"
            )
            return
        self.set(partition, key, (version, row))
        self.batch.outcomes["table"] += 1

    # --- raw records -------------------------------------------------------------------------

    def record(self, msg: Message, partition: int) -> None:
        intake, agg = self.intake, self.agg
        raw_key, value = msg.key(), msg.value()
        if not raw_key:
            return self.letter(msg, "missing_key", "the record has no key (the aggregate id)")
        if len(value or b"") > intake.max_record_bytes:
            return self.letter(
                msg, "oversized_record", f"{len(value or b'')} bytes > {intake.max_record_bytes}"
            )
        if raw_key not in intake.keys:
            try:
                key = raw_key.decode("utf-8")
                check_identifier("key", key)
            except UnicodeDecodeError:
                return self.letter(msg, "malformed_key", "the key is not UTF-8")
            except InvalidIdentifier as exc:
                return self.letter(msg, exc.reason, str(exc))
            if len(intake.keys) >= _KNOWN_KEYS:
                intake.keys.clear()
            intake.keys[raw_key] = key
        home = partition_for(raw_key, intake.partitions)
        if home != partition:
            _, ts = msg.timestamp()
            headers = [(k, v or b"") for k, v in msg.headers() or ()]
            self.batch.reroutes.append(Rerouted(home, raw_key, value, headers, ts if ts > 0 else 0))
            self.batch.outcomes["rerouted"] += 1
            return None
        try:
            record = intake.decoder.decode(value)
            agg.check(record)
            group = agg.group_by(record)
            if group not in intake.groups:
                check_identifier("group", group, required=False)
                if len(intake.groups) >= _KNOWN_KEYS:
                    intake.groups.clear()
                intake.groups.add(group)
            ts = int(agg.timestamp(record))
            _, record_ts = msg.timestamp()
            reference = record_ts if record_ts > 0 else self.now_ms
            if ts > reference + agg.max_future_ms:
                raise BadRecord(
                    "timestamp_in_future", f"event time {ts} is {ts - reference} ms after the record's"
                )
            if ts < reference - agg.max_age_ms:
                raise BadRecord(
                    "timestamp_too_old", f"event time {ts} is {reference - ts} ms before the record's"
                )
            row = None
            if agg.table is not None:
                found = self.value(partition, ROW + raw_key)
                row = None if found is None else found[1]
            agg.join(record, row)
            self.fold(msg, partition, raw_key, group.encode(), record, ts, row)
        except BadRecord as exc:
            return self.letter(msg, exc.reason, exc.detail)
        except InvalidIdentifier as exc:
            return self.letter(msg, "invalid_field", str(exc))
        except RegistryUnavailable:
            raise  # not the record's fault: the batch is retried once the registry answers
        except Exception as exc:  # a declared function failed on this record: it must not stop the stage
            return self.letter(msg, type(exc).__name__, f"{type(exc).__name__}: {exc}")
        return None

    def fold(
        self, msg: Message, partition: int, raw_key: bytes, group: bytes, record: Any, ts: int, row: Any
    ) -> None:
        spec, fold = self.agg.spec, self.agg.fold
        stream_time = self.stream_time(partition)
        windows = spec.windows_of(ts)
        missed = []
        folded = []
        for start, end in windows:
            if stream_time >= end + spec.grace_ms:
                missed.append((start, end))
                continue
            wkey = window_key(end, raw_key, group)
            current = self.value(partition, wkey)
            if current is None:
                folded.append((wkey, end, (fold(None, record), ts)))
            else:
                folded.append((wkey, end, (fold(current[0], record), max(current[1], ts))))
        for wkey, end, value in folded:  # only once every fold succeeded
            self.set_timed(partition, WINDOW, wkey, value, end)
        if missed:
            self.late(msg, ts, stream_time, missed)
            if not folded:
                return
        self.batch.outcomes["folded"] += 1
        _, record_ts = msg.timestamp()
        if record_ts > 0:
            self.batch.timestamps.append(record_ts / 1000.0)
        if ts > stream_time:
            self.moved[partition] = ts
        if self.agg.heartbeat is not None:
            self.beat(partition, raw_key, ts, row)

    def late(self, msg: Message, ts: int, stream_time: int, missed: list[tuple[int, int]]) -> None:
        """A record for closed windows: the late DLQ, and the late count."""
        self.batch.outcomes["late"] += 1
        windows = ",".join(f"{s}-{e}" for s, e in missed)
        detail = (
            f"event time {ts}: window(s) {windows} closed at stream time {stream_time} "
            f"(grace {self.agg.spec.grace_ms} ms)"
        )
        self.letter(msg, "late_record", detail, topic=self.intake.late, late_windows=windows)

    def beat(self, partition: int, raw_key: bytes, ts: int, row: Any) -> None:
        """Move the key's heartbeat timer to the bucket of `ts + after` (writes only when the
        bucket changes: once per hop per key at most)."""
        heartbeat = self.agg.heartbeat
        if heartbeat is None:
            return
        after = heartbeat.after_ms(row)
        if after is None:
            return
        hop = self.agg.spec.hop_ms
        bucket = -(-(ts + after) // hop) * hop
        current = self.value(partition, BEAT + raw_key)
        if current is not None and current >= bucket:
            return
        if current is not None:
            self.set(partition, timer_key(current, raw_key), None)
        self.set_timed(partition, TIMER, timer_key(bucket, raw_key), bucket - after, bucket)
        self.set(partition, BEAT + raw_key, bucket)

    # --- closing -----------------------------------------------------------------------------

    def close(self, partition: int, stream_time: int, trigger: str) -> None:
        """Close every window the stream time reached, then fire the timers due."""
        spec, agg = self.agg.spec, self.agg
        bound = stream_time - spec.grace_ms
        for wkey in self._due(partition, WINDOW, bound):
            current = self.value(partition, wkey)
            if current is None:
                continue
            end, raw_key, raw_group = split_window_key(wkey)
            key, group = raw_key.decode(), raw_group.decode()
            start = end - spec.size_ms
            self.set(partition, wkey, None)
            self.batch.closed[trigger] += 1
            try:
                command = agg.close(ClosedWindow(key, group, start, end, current[0]))
                self.command(partition, raw_key, command, window_command_id(agg.name, key, group, start))
            except Exception as exc:  # a bug in `close`: the window is kept in the DLQ, the stage goes on
                self.closing_failed(partition, raw_key, key, group, start, end, current[0], exc)
        heartbeat = agg.heartbeat
        if heartbeat is None:
            return
        for tkey in self._due(partition, TIMER, stream_time):
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
        keys = set(self.state.scan_until(partition, prefix, upper))
        keys.update(k for k, at in self.timed.get((partition, prefix), {}).items() if at <= upper)
        return sorted(keys)

    def command(self, partition: int, raw_key: bytes, command: Any, command_id: str) -> None:
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

    # --- dead letters ------------------------------------------------------------------------

    def closing_failed(
        self,
        partition: int,
        raw_key: bytes,
        key: str,
        group: str,
        start: int,
        end: int,
        acc: Any,
        exc: Exception,
    ) -> None:
        """A window whose `close` raised: its accumulator goes to the DLQ (`close_failed`)."""
        value = orjson.dumps({"key": key, "group": group, "start": start, "end": end, "accumulator": acc})
        letter = dead_letter(
            key=raw_key, value=value, headers=None, reason="close_failed",
            detail=f"{type(exc).__name__}: {exc}", source=f"window/{partition}/{group}/{start}",
            dlq_stage="windows", window=self.agg.name,
        )  # fmt: skip
        self.batch.letters.append((self.intake.dlq, letter))
        self.batch.outcomes["close_failed"] += 1
        log.error("%s: close of %s %s %d failed: %s", self.agg.name, key, group, start, exc)

    def letter(
        self, msg: Message, reason: str, detail: str, *, topic: str | None = None, **extra: str
    ) -> None:
        source = source_of(msg.topic(), msg.partition(), msg.offset())
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=source, dlq_stage="windows", window=self.agg.name, **extra,
        )  # fmt: skip
        self.batch.letters.append((topic or self.intake.dlq, letter))
        if topic is None:
            self.batch.outcomes[reason] += 1
            log.debug("%s: %s to DLQ: %s (%s)", self.agg.name, source, reason, detail[:200])

    # --- the batch's writes ------------------------------------------------------------------

    def finish(self) -> WindowBatch:
        batch = self.batch
        for partition, stream_time in self.moved.items():
            self.set(partition, STREAM_TIME, stream_time)
        for (partition, key), value in self.pending.items():
            batch.writes.setdefault(partition, {})[key] = None if value is None else encode_value(key, value)
            batch.decoded[(partition, key)] = value
        return batch
