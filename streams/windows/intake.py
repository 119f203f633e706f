"""Deciding a batch of a window stage, without Kafka: raw records and table events in, typed
outputs out (system commands, dead letters, re-routed records, state writes, offsets).

For each raw record, in order: no key, an oversized value, a key that is not UTF-8 or not a
valid identifier, a value that cannot be read (`RecordDecoder`), a record the aggregation's
`check` refuses, a group that is not an identifier, an event time too far ahead of or behind
the record's arrival, and a record the join refuses (its table row) are dead-lettered with their
reason. A record's arrival is the trusted clock: its broker timestamp (raw topics are declared
`LogAppendTime`), else the consumer's wall clock (a producer's `CreateTime` is the device's
word). A record in the wrong partition (a producer with another partitioner) is produced again
to its key's partition. A record whose window closed already (its end + grace is
at or before the partition's stream time) is late: it goes to the late DLQ and is counted.
Every other record is folded into its windows, moves the stream time (to its event time, but
never past its arrival: one fast clock cannot close the windows of its partition's other keys)
and its key's heartbeat.

Records of the context's events feed the join table (by `event_type` header, idempotent by
aggregate version). Once the batch's records are folded, every window of a partition whose
`end + grace` the stream time reached is closed: its system command is produced (deterministic
command id) and its state deleted; then the heartbeat timers due fire.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Sequence
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Message

from streams.core.decider import BoundedContext
from streams.core.windows import (
    BadRecord,
    WindowedAggregation,
)
from streams.windows.batch import Rerouted, WindowBatch
from streams.windows.passes import Pass
from streams.windows.records import RecordDecoder
from streams.windows.state import (
    BEAT,
    ROW,
    TIMER,
    WINDOW,
    WindowReader,
    timer_key,
    window_key,
)
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError, RegistryUnavailable
from streams.wire.identifiers import InvalidIdentifier, check_identifier
from streams.wire.topics import ContextTopics, partition_for

log = logging.getLogger(__name__)

_TABLE_HEADERS = frozenset({h.EVENT_TYPE, h.AGGREGATE_VERSION})
_KNOWN_KEYS = 100_000


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
        max_closes: int = 10_000,
        max_value_bytes: int = 1024 * 1024 - 1024,
    ) -> None:
        self.context = context
        self.aggregation = aggregation
        self.codec = codec
        self.topics = topics
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self.max_closes = max_closes
        self.max_value_bytes = max_value_bytes
        """The largest state value the changelog takes (its topic's `max.message.bytes`, less a margin)."""
        """Windows and timers one pass closes at most (the rest: `drain`), so that a batch's
        memory does not grow with the number of keys whose windows end at the same time."""
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
        offsets = run.batch.offsets
        mine: dict[int, bool] = {}  # `owned` asked once per partition and batch, not per record
        for msg in ordered:  # the table's events first
            partition = msg.partition()
            held = mine.get(partition)
            if held is None:
                held = mine[partition] = partition in owned
            if not held:
                continue  # revoked meanwhile: its new owner reads it
            topic = msg.topic()
            offsets[(topic, partition)] = msg.offset() + 1
            if topic == events:
                run.table_event(msg, partition)
            else:
                run.record(msg, partition)
        for partition, stream_time in run.moved.items():
            run.close(partition, stream_time, "stream_time")
        return run.finish()

    def drain(self, partitions: Iterable[int], state: WindowReader, now_ms: int) -> WindowBatch:
        """Close what is still due at the partitions' stream time (a batch left `more`)."""
        run = _Pass(self, state, now_ms)
        for partition in partitions:
            run.close(partition, run.stream_time(partition), "stream_time")
        return run.finish()

    def advance(self, targets: dict[int, int], state: WindowReader, now_ms: int) -> WindowBatch:
        """The idle flush: move quiet partitions' stream time to `targets` and close what it reaches."""
        run = _Pass(self, state, now_ms)
        for partition, target in targets.items():
            if target > run.stream_time(partition):
                run.moved[partition] = target
                run.close(partition, target, "idle")
        return run.finish()


class _Pass(Pass):
    """A pass over a batch of records: the join table's events and the raw records folded."""

    intake: WindowIntake

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
            kind, record_ts = msg.timestamp()  # read once: the arrival and the latency metric
            arrival = self.arrival(kind, record_ts)
            if ts > arrival + agg.max_future_ms:
                raise BadRecord(
                    "timestamp_in_future",
                    f"event time {ts} is {ts - arrival} ms after the record's arrival "
                    f"(at most {agg.max_future_ms} ms)",
                )
            if ts < arrival - agg.max_age_ms:
                raise BadRecord(
                    "timestamp_too_old", f"event time {ts} is {arrival - ts} ms before the record's arrival"
                )
            row = None
            if agg.table is not None:
                found = self.value(partition, ROW + raw_key)
                row = None if found is None else found[1]
            agg.join(record, row)
            self.fold(msg, partition, raw_key, group.encode(), record, ts, row, arrival, record_ts)
        except BadRecord as exc:
            return self.letter(msg, exc.reason, exc.detail)
        except InvalidIdentifier as exc:
            return self.letter(msg, "invalid_field", str(exc))
        except RegistryUnavailable:
            raise  # not the record's fault: the batch is retried once the registry answers
        except Exception as exc:  # a declared function failed on this record: it must not stop the stage
            return self.letter(msg, type(exc).__name__, f"{type(exc).__name__}: {exc}")
        return None

    def arrival(self, kind: int, ts: int) -> int:
        """When a record with Kafka timestamp (`kind`, `ts`) arrived, by a clock the producer does
        not set: its broker timestamp (`LogAppendTime`), else the wall clock now."""
        return ts if kind == TIMESTAMP_LOG_APPEND_TIME and ts > 0 else self.now_ms

    def fold(
        self, msg: Message, partition: int, raw_key: bytes, group: bytes, record: Any, ts: int, row: Any,
        arrival: int, record_ts: int,
    ) -> None:  # fmt: skip
        """Fold a record into its open windows (`record_ts`: its Kafka timestamp); the closed
        ones it falls in make it late."""
        stream_time = self.stream_time(partition)
        if not self.into_windows(msg, partition, raw_key, group, record, ts, stream_time):
            return
        self.folded += 1
        if record_ts > 0:
            self.batch.timestamps.append(record_ts / 1000.0)
        moved_to = ts if ts < arrival else arrival
        if moved_to > stream_time:  # a clock ahead of the broker's moves it to the arrival only
            self.moved[partition] = moved_to
        if self.agg.heartbeat is not None:
            self.beat(partition, raw_key, ts, row)

    def into_windows(
        self,
        msg: Message,
        partition: int,
        raw_key: bytes,
        group: bytes,
        record: Any,
        ts: int,
        stream_time: int,
    ) -> bool:
        """Fold a record into its open windows (every fold first, then the writes); the closed
        ones it falls in send it to the late DLQ. Whether it was folded into any."""
        spec, fold = self.agg.spec, self.agg.fold
        size = spec.size_ms
        if spec.hop_ms == size:  # tumbling: `windows_of` gives one window, taken without lists
            end = ts - ts % size + size
            if spec.is_closed(end, stream_time):
                self.late(msg, ts, stream_time, [(end - size, end)])
                return False
            wkey = window_key(end, raw_key, group)
            current = self.value(partition, wkey)
            if current is None:
                value = (fold(None, record), ts)
            else:
                value = (fold(current[0], record), max(current[1], ts))
            self.set_timed(partition, WINDOW, wkey, value, end)
            return True
        missed = []
        folded = []
        for start, end in spec.windows_of(ts):
            if spec.is_closed(end, stream_time):
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
        return bool(folded)

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
        beat_key = BEAT + raw_key
        current = self.value(partition, beat_key)
        if current is not None and current >= bucket:
            return
        if current is not None:
            self.set(partition, timer_key(current, raw_key), None)
        self.set_timed(partition, TIMER, timer_key(bucket, raw_key), bucket - after, bucket)
        self.set(partition, beat_key, bucket)
