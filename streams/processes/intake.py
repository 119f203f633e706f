"""Deciding one batch of a process manager's stage: no Kafka clients, no clock of its own.

A batch is the records consumed (subscribed events, re-keyed inputs, `DeadlineReached` records)
plus the deadlines that fell due by `now_ms`. It becomes what one transaction writes:

- an event whose correlation id belongs to another partition than the event's is **re-keyed**
  to `<process>.process-inputs` (it is handled when read from there, on the right partition);
- any other input is handed to the manager (`streams.core.processes.advance`): its commands go
  to the target contexts' command topics, its instance and deadline index to the changelog;
- a `DeadlineReached` is honoured only if the instance emitted it (`admit`): a forged one, or a
  second copy, is dead-lettered with the reason; one cancelled after it was emitted is ignored;
- every instance with a pending deadline due by `now_ms` has a `DeadlineReached` written to
  `<process>.timers` (on the instance's partition) and the deadline marked emitted, in the same
  transaction: a deadline is emitted once, and fires when its record is read back.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from streams.core.clock import iso_to_ms
from streams.core.commands import CommandResult
from streams.core.deadlines import ForgedDeadline, admit, due, emitted, reached
from streams.core.processes import (
    Command,
    CommandOutcome,
    DeadlineReached,
    Instance,
    ProcessFailed,
    ProcessManager,
    advance,
    sent_by,
)
from streams.core.views import EventMeta
from streams.kafka.runtime import ContextRuntime
from streams.kafka.tables import Writes
from streams.processes.records import (
    DUE,
    INPUT_HEADER,
    RESULT,
    SOURCE_HEADER,
    InstanceFormat,
    due_keys,
    instance_key,
    split_due_key,
)
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.dlq import DeadLetter, dead_letter, source_of
from streams.wire.identifiers import check_identifier
from streams.wire.schemas import to_record
from streams.wire.topics import ProcessTopics, partition_for

log = logging.getLogger(__name__)

Lookup = Callable[[int, bytes], bytes | None]
"""A committed value of the stage's table: (partition, key) -> bytes."""
Scan = Callable[[int, bytes], Iterable[bytes]]
"""The committed index keys of a partition, in order, from a start key."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce."""

    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int = -1
    """-1: the producer's partitioner (by key)."""


@dataclass
class ProcessBatch:
    """What one transaction of the stage writes."""

    records: list[Outgoing] = field(default_factory=list)
    """Commands, re-keyed inputs, deadline records and dead letters, in order."""
    writes: dict[int, Writes] = field(default_factory=dict)
    """Changelog (and store) writes by partition."""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """The next input offset of every consumed partition."""
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    commands: list[Command] = field(default_factory=list)

    def empty(self) -> bool:
        """Nothing to write and no offset to commit."""
        return not (self.records or self.writes or self.offsets)

    def written_to(self, topic: str) -> set[int]:
        """The partitions of `topic` this batch writes records to."""
        return {r.partition for r in self.records if r.topic == topic}


class ProcessIntake:
    """Decides batches for one process manager."""

    def __init__(
        self,
        pm: ProcessManager[Any],
        topics: ProcessTopics,
        runtimes: Mapping[str, ContextRuntime],
        codec: AvroCodec,
        partitions: int,
        *,
        max_due: int = 1000,
    ) -> None:
        self.pm = pm
        self.topics = topics
        self.runtimes = dict(runtimes)
        self.codec = codec
        self.format = InstanceFormat(pm, codec)
        self.partitions = partitions
        self.max_due = max_due
        """Deadlines emitted per partition and batch at most (the rest in the next turns)."""
        self.sources = {runtimes[s.context].topics.events: s for s in pm.subscriptions}
        self.results = {runtimes[c].topics.results: c for c in pm.sends} if pm.outcomes else {}
        """The command-results topics read for outcomes, and their context."""
        self.own_ids = f"p:{pm.name}:".encode()
        self.actor = f"process:{pm.name}".encode()

    def decide(
        self,
        messages: list[Message],
        lookup: Lookup,
        scan: Scan,
        owned: Iterable[int],
        now_ms: int,
        *,
        catching_up: bool = False,
    ) -> ProcessBatch:
        """The batch of `messages`, and of the deadlines due at `now_ms` in the `owned` partitions.

        `catching_up`: the stage is still reading what was written before its assignment
        (`streams.processes.catchup`); a partition this batch re-keys an input to emits no
        deadline in it (the input is handled when read back, and may cancel one)."""
        batch = _Batch(self, lookup)
        for msg in messages:
            batch.input(msg)
        rekeyed = batch.out.written_to(self.topics.inputs) if catching_up else set()
        for partition in owned:
            if partition not in rekeyed:
                batch.emit_due(partition, scan, now_ms)
        return batch.out


class _Batch:
    """One batch being decided: the instances it changed so far, over the committed ones."""

    def __init__(self, intake: ProcessIntake, lookup: Lookup) -> None:
        self.intake = intake
        self.lookup = lookup
        self.out = ProcessBatch()
        self.changed: dict[tuple[int, str], Instance[Any] | None] = {}

    # --- instances ---------------------------------------------------------------------------

    def instance(self, partition: int, correlation_id: str) -> Instance[Any] | None:
        found = self.changed.get((partition, correlation_id), _NONE)
        if found is not _NONE:
            return found  # type: ignore[return-value]
        raw = self.lookup(partition, instance_key(correlation_id))
        return None if raw is None else self.intake.format.decode(raw)

    def put(self, partition: int, before: Instance[Any] | None, after: Instance[Any]) -> None:
        writes = self.out.writes.setdefault(partition, {})
        old, new = due_keys(before), due_keys(after)
        for key in old - new:
            writes[key] = None
        for key in new - old:
            writes[key] = b""
        writes[instance_key(after.correlation_id)] = self.intake.format.encode(after)
        self.changed[(partition, after.correlation_id)] = after

    # --- inputs ------------------------------------------------------------------------------

    def input(self, msg: Message) -> None:
        topic, partition = msg.topic(), msg.partition()
        self.out.offsets[(topic, partition)] = msg.offset() + 1
        intake = self.intake
        try:
            if topic == intake.topics.timers:
                self.deadline(msg)
            elif topic == intake.topics.inputs:
                self.rekeyed(msg)
            elif topic in intake.results:
                self.result(msg, intake.results[topic], rekeyed=False)
            else:
                self.event(msg, topic, rekeyed=False)
        except (DecodeError, ProcessFailed, ForgedDeadline, ValueError) as exc:
            reason = getattr(exc, "reason", type(exc).__name__)
            self.letter(msg, reason, getattr(exc, "detail", "") or str(exc))

    def rekeyed(self, msg: Message) -> None:
        """An input re-keyed by this stage: an event, or a command result (`process_input`)."""
        intake = self.intake
        headers = h.as_dict(msg.headers())
        source = intake.runtimes.get(headers.get(SOURCE_HEADER, ""))
        if (
            headers.get(INPUT_HEADER) == RESULT
            and source is not None
            and source.topics.results in intake.results
        ):
            self.result(msg, source.context.name, rekeyed=True)
        elif source is not None and source.topics.events in intake.sources:
            self.event(msg, source.topics.events, rekeyed=True)
        else:
            raise ProcessFailed("unknown_source", f"no subscribed context in {SOURCE_HEADER}")

    def moved(
        self, msg: Message, correlation_id: str, context: str, *, rekeyed: bool, result: bool = False
    ) -> int | None:
        """The partition of the instance, or None when the input was re-keyed there (it is
        handled when read back)."""
        home = partition_for(correlation_id.encode(), self.intake.partitions)
        if home == msg.partition():
            return home
        if rekeyed:
            raise ProcessFailed("wrong_partition", f"re-keyed input on {msg.partition()}, not {home}")
        added = [(SOURCE_HEADER, context.encode())] + ([(INPUT_HEADER, RESULT.encode())] if result else [])
        headers = [*(msg.headers() or []), *added]
        self.out.records.append(
            Outgoing(self.intake.topics.inputs, correlation_id.encode(), msg.value(), headers, home)
        )
        self.out.outcomes["rekeyed"] += 1
        return None

    def result(self, msg: Message, context: str, *, rekeyed: bool) -> None:
        """A command result: the outcome of a command this manager sent, or not its business."""
        if not rekeyed and not (msg.key() or b"").startswith(self.intake.own_ids):
            return  # another sender's command: the usual case, not even decoded
        result = self.intake.runtimes[context].codec.decode(msg.value()).message
        if not isinstance(result, CommandResult):
            raise ProcessFailed("unknown_type", f"a {type(result).__name__} among command results")
        by = sent_by(self.intake.pm.name, result.command_id)
        if by is None or result.duplicate:
            self.out.outcomes["skipped"] += 1
            return
        home = self.moved(msg, by.correlation_id, context, rekeyed=rekeyed, result=True)
        if home is None:
            return
        before = self.instance(home, by.correlation_id)
        if before is None:
            raise ProcessFailed("unknown_instance", f"a result for no instance ({result.command_id})")
        outcome = CommandOutcome(
            by.correlation_id, context, result.command_id, result.command_type, by.step, by.attempt,
            result.status, result.reason, result.detail,
        )  # fmt: skip
        at_ms = iso_to_ms(result.processed_at) if result.processed_at else 0
        self.advance(home, before, before, outcome, at_ms)

    def event(self, msg: Message, events_topic: str, *, rekeyed: bool) -> None:
        subscription = self.intake.sources[events_topic]
        headers = h.as_dict(msg.headers())
        if headers.get(h.EVENT_TYPE, "") not in subscription.event_names:
            self.out.outcomes["skipped"] += 1
            return
        runtime = self.intake.runtimes[subscription.context]
        event = runtime.codec.decode(msg.value()).message
        key = (msg.key() or b"").decode()
        meta = EventMeta(
            aggregate_id=headers.get(h.AGGREGATE_ID, key),
            aggregate_version=int(headers.get(h.AGGREGATE_VERSION, "0")),
            event_type=headers.get(h.EVENT_TYPE, ""),
            occurred_at=headers.get(h.OCCURRED_AT, ""),
        )
        try:
            correlation_id = subscription.correlate(event, meta)
        except Exception as exc:
            raise ProcessFailed("correlate_failed", f"{type(exc).__name__}: {exc}") from exc
        if not correlation_id:
            self.out.outcomes["uncorrelated"] += 1
            return
        home = self.moved(msg, correlation_id, subscription.context, rekeyed=rekeyed)
        if home is None:
            return
        at_ms = iso_to_ms(meta.occurred_at) if meta.occurred_at else 0
        before = self.instance(home, correlation_id)
        self.advance(home, before, before or self.intake.pm.start(correlation_id), event, at_ms)

    def deadline(self, msg: Message) -> None:
        record = self.intake.codec.decode(msg.value()).message
        if not isinstance(record, DeadlineReached):
            raise ForgedDeadline("unknown_type", f"a {type(record).__name__} on the timers topic")
        before = self.instance(msg.partition(), record.correlation_id)
        if before is None:
            raise ForgedDeadline("unknown_instance", f"no instance {record.correlation_id!r} here")
        admission = admit(self.intake.pm.name, before, record)
        if admission.fires:
            self.advance(msg.partition(), before, admission.instance, record, record.due_ms)
            self.out.outcomes["deadline_fired"] += 1
        else:
            self.put(msg.partition(), before, admission.instance)
            self.out.outcomes["deadline_ignored"] += 1

    def advance(
        self, partition: int, before: Instance[Any] | None, instance: Instance[Any], message: Any, at_ms: int
    ) -> None:
        """Hand one input to the manager; nothing of it is kept if one of its commands is invalid."""
        step = advance(self.intake.pm, instance, message, at_ms)
        correlation_id = step.instance.correlation_id
        outgoing = [self.command(command, correlation_id) for command in step.commands]
        self.put(partition, before, step.instance)
        self.out.records.extend(outgoing)
        self.out.commands.extend(step.commands)
        self.out.outcomes["handled"] += 1

    def command(self, command: Command, correlation_id: str) -> Outgoing:
        """The record of a command to another context (ProcessFailed when it cannot be one)."""
        runtime = self.intake.runtimes.get(command.context)
        name = type(command.command).__name__
        if runtime is None or type(command.command) not in runtime.context.commands:
            raise ProcessFailed("unknown_command", f"{name} of {command.context}")
        try:
            check_identifier("aggregate_id", command.aggregate_id)
            runtime.limits.check(name, to_record(command.command))
            value = runtime.codec.encode(command.command)
        except Exception as exc:
            raise ProcessFailed("invalid_command", f"{name}: {type(exc).__name__}: {exc}") from exc
        headers = [
            (h.COMMAND_ID, command.command_id.encode()),
            (h.CORRELATION_ID, correlation_id.encode()),
            (h.ACTOR, self.intake.actor),
        ]
        return Outgoing(runtime.topics.commands, command.aggregate_id.encode(), value, headers)

    def letter(self, msg: Message, reason: str, detail: str) -> None:
        where = source_of(msg.topic(), msg.partition(), msg.offset())
        letter: DeadLetter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=where, process=self.intake.pm.name,
        )  # fmt: skip
        self.out.records.append(
            Outgoing(self.intake.topics.dlq, msg.key() or b"", msg.value(), letter.headers)
        )
        self.out.outcomes[reason] += 1
        log.warning("%s: %s to DLQ: %s (%s)", self.intake.pm.name, where, reason, detail)

    # --- deadlines ---------------------------------------------------------------------------

    def emit_due(self, partition: int, scan: Scan, now_ms: int) -> None:
        """A `DeadlineReached` for every deadline of the partition due at `now_ms`."""
        candidates: dict[str, None] = {}
        for key in scan(partition, DUE):
            due_ms, correlation_id = split_due_key(key)
            if due_ms > now_ms or len(candidates) >= self.intake.max_due:
                break
            candidates[correlation_id] = None
        for (p, correlation_id), instance in self.changed.items():
            if p == partition and instance is not None and due(instance, now_ms):
                candidates[correlation_id] = None
        for correlation_id in candidates:
            before = self.instance(partition, correlation_id)
            fired = [] if before is None else due(before, now_ms)
            if before is None or not fired:
                continue
            after = emitted(before, fired)
            self.put(partition, before, after)
            for deadline in fired:
                record = reached(self.intake.pm.name, after, deadline)
                self.out.records.append(
                    Outgoing(
                        self.intake.topics.timers,
                        correlation_id.encode(),
                        self.intake.codec.encode(record),
                        [],
                        partition,
                    )
                )
                self.out.outcomes["deadline_emitted"] += 1


_NONE = object()
