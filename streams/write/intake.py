"""Deciding a batch of command records, without Kafka: the write side's intake.

For each record, in order: records with no key, an oversized value, a key that is not UTF-8,
an identifier outside the policy (`streams.wire.identifiers`), a value that cannot be decoded
or a string over its schema's limit (`streams.wire.limits`) are dead-lettered with their
reason; a command id seen before returns its first result (flagged `duplicate`) and appends
nothing, also within the batch; an event type sent as a command and a malformed
`expected_version` are rejected; otherwise `handle_command` checks the expected version and
runs `decide` and `evolve` over the aggregate as the batch left it. A command whose outcome
cannot be stored is rejected: `aggregate_too_large` when the aggregate's encoded state would
pass its limit, `output_too_large` when one of its records would pass its topic's
`max.message.bytes`.

The committed state comes from a `StateReader`; the outcome is a `DecidedBatch` of typed
records that the processor produces in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from confluent_kafka import Message

from streams.core.clock import utc_now
from streams.core.commands import Aggregate, CommandEnvelope, CommandResult, handle_command
from streams.core.decider import BoundedContext
from streams.core.records import replace_record
from streams.wire import headers as h
from streams.wire.changelog import encode_aggregate
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.dlq import dead_letter, source_of
from streams.wire.identifiers import InvalidIdentifier, check_identifier, identifiers_fit, shorten
from streams.wire.limits import CommandLimits, FieldTooLong
from streams.wire.state import StateFormat
from streams.wire.topics import RECORD_OVERHEAD
from streams.write.batch import DecidedBatch, PendingEvent, PendingResult, PendingSnapshot

log = logging.getLogger(__name__)


class StateReader(Protocol):
    """The committed state the intake decides against."""

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        """The aggregate as committed (None: it has no event yet)."""

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        """The first result of a command id, when one was remembered."""


@dataclass(frozen=True)
class IntakeLimits:
    """The intake's limits (from `Settings`)."""

    max_record_bytes: int
    """A larger command record is dead-lettered as `oversized_record`."""
    max_state_bytes: int
    """A command that would grow an aggregate's encoded state past this is rejected."""
    snapshot_every: int
    """A snapshot each time an aggregate's version crosses a multiple of this (0: none)."""
    max_output_bytes: int = 1024 * 1024
    """The `max.message.bytes` of the topics a command's events and result go to."""


class _Ids(NamedTuple):
    """A command's identifiers as the bytes its events' headers carry."""

    command_id: bytes
    correlation_id: bytes
    actor: bytes


class _NoState:
    """No committed state (a quarantine batch decides nothing)."""

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        return None

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        return None


_NOTHING = _NoState()


class BatchDecider:
    """Decides batches of one context's command records against a `StateReader`."""

    def __init__(
        self,
        context: BoundedContext[Any],
        codec: AvroCodec,
        limits: IntakeLimits,
        command_limits: CommandLimits | None = None,
        states: StateFormat | None = None,
    ) -> None:
        self.context = context
        self.codec = codec
        self.limits = limits
        self.command_limits = command_limits or CommandLimits(codec.catalog, list(context.command_names))
        self.states = states or StateFormat(context.state_type, codec)
        self.templates: dict[type, h.EventHeaders] = {}
        """The header template of each event class (built on first use)."""

    def decide(
        self,
        messages: Sequence[Message],
        state: StateReader,
        owned: Container[int],
        processed_at: str | None = None,
    ) -> DecidedBatch:
        """Decide every record of a partition this worker `owned`s; nothing is produced.

        An aggregate whose final state in the batch would be too large is decided again with
        the size checked after each of its commands, so the commands before the limit pass.
        """
        processed_at = processed_at or utc_now()
        batch = self._decide(messages, state, owned, processed_at, frozenset())
        oversized = frozenset(
            (p, key)
            for p, encoded in batch.states.items()
            for key, value in encoded.items()
            if len(value) > self.limits.max_state_bytes
        )
        if oversized:
            batch = self._decide(messages, state, owned, processed_at, oversized)
        return batch

    def quarantine(
        self, msg: Message, reason: str, detail: str, *, answer: bool = True, keep_value: bool = True
    ) -> DecidedBatch:
        """A batch that only dead-letters `msg` (a command whose outputs the broker refused),
        with a `rejected` result when `answer`; without its value when not `keep_value`."""
        intake = _Intake(self, _NOTHING, DecidedBatch(utc_now()), frozenset())
        partition = msg.partition()
        intake.batch.offsets[partition] = msg.offset() + 1
        intake._dead_letter(msg, partition, reason, detail, answer=answer, keep_value=keep_value)
        return intake.batch

    def _decide(
        self,
        messages: Sequence[Message],
        state: StateReader,
        owned: Container[int],
        processed_at: str,
        watch: frozenset[tuple[int, bytes]],
    ) -> DecidedBatch:
        intake = _Intake(self, state, DecidedBatch(processed_at), watch)
        for msg in messages:
            partition = msg.partition()
            if partition not in owned:
                continue  # revoked meanwhile: its new owner processes it
            intake.batch.offsets[partition] = msg.offset() + 1
            intake.handle(msg, partition)
        states = self.states
        intake.batch.states = {
            partition: {key: encode_aggregate(states, a) for key, a in aggregates.items()}
            for partition, aggregates in intake.batch.aggregates.items()
        }
        return intake.batch


class _Intake:
    """One pass over a batch's records."""

    def __init__(
        self,
        decider: BatchDecider,
        state: StateReader,
        batch: DecidedBatch,
        watch: frozenset[tuple[int, bytes]],
    ) -> None:
        self.context = decider.context
        self.codec = decider.codec
        self.limits = decider.limits
        self.command_limits = decider.command_limits
        self.states = decider.states
        self.state = state
        self.batch = batch
        self.watch = watch
        """Aggregates whose state is checked against the size limit after each command."""
        self.seen: dict[int, dict[bytes, CommandResult]] = {}
        self.templates = decider.templates
        self.occurred_at = batch.processed_at.encode()

    def handle(self, msg: Message, partition: int) -> None:
        raw_key, raw_value = msg.key(), msg.value()
        meta = h.as_dict(msg.headers())
        _, ts = msg.timestamp()
        if ts > 0:
            self.batch.timestamps.append(ts / 1000.0)
        if not raw_key:
            return self._dead_letter(msg, partition, "missing_aggregate_id", "the record has no key")
        size = len(raw_value or b"")
        if size > self.limits.max_record_bytes:
            detail = f"{size} bytes > limit of {self.limits.max_record_bytes}"
            return self._dead_letter(msg, partition, "oversized_record", detail)
        try:
            aggregate_id = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            return self._dead_letter(msg, partition, "malformed_key", "the key is not UTF-8")
        given_id = meta.get(h.COMMAND_ID, "")
        correlation_id, actor = meta.get(h.CORRELATION_ID, ""), meta.get(h.ACTOR, "")
        if not identifiers_fit(given_id, aggregate_id, correlation_id, actor):
            try:
                check_identifier("command_id", given_id, required=False)
            except InvalidIdentifier as exc:  # no result: it would be keyed by the invalid id
                return self._dead_letter(msg, partition, exc.reason, str(exc), answer=False)
            try:
                check_identifier("aggregate_id", aggregate_id)
                check_identifier("correlation_id", correlation_id, required=False)
                check_identifier("actor", actor, required=False)
            except InvalidIdentifier as exc:
                return self._dead_letter(msg, partition, exc.reason, str(exc))
        command_id = given_id or source_of(msg.topic(), partition, msg.offset())
        id_bytes = command_id.encode()
        original = self._seen(partition, id_bytes)
        if original is not None:
            self.batch.results.append(PendingResult(partition, replace_record(original, duplicate=True)))
            return None
        try:
            decoded = self.codec.decode(raw_value)
        except DecodeError as exc:
            return self._dead_letter(msg, partition, exc.reason, str(exc))
        current = self._aggregate(partition, raw_key)
        command_type = decoded.type_name
        if command_type not in self.context.command_names:
            detail = f"{command_type} is not a command of {self.context.name}"
            return self._reject(
                partition, command_id, aggregate_id, command_type, current, "unknown_command_type", detail
            )
        if decoded.erased:  # its personal data was shredded after it was sent: deciding would lose it
            detail = f"{', '.join(decoded.erased)}: the data subject was forgotten (docs/privacy.md)"
            return self._reject(
                partition, command_id, aggregate_id, command_type, current, "subject_forgotten", detail
            )
        try:
            self.command_limits.check_message(command_type, decoded.message)
        except FieldTooLong as exc:
            return self._dead_letter(msg, partition, exc.reason, str(exc))
        expected_raw = meta.get(h.EXPECTED_VERSION)
        try:
            expected = int(expected_raw) if expected_raw not in (None, "") else None
        except ValueError:
            detail = f"{expected_raw!r} is not an integer"
            return self._reject(
                partition, command_id, aggregate_id, command_type, current, "invalid_expected_version", detail
            )
        envelope = CommandEnvelope(
            command_id, aggregate_id, decoded.message, expected, correlation_id, actor
        )  # fmt: skip
        outcome = handle_command(self.context, current, envelope, self.batch.processed_at)
        if outcome.events and (partition, raw_key) in self.watch:
            size = len(encode_aggregate(self.states, outcome.aggregate))
            if size > self.limits.max_state_bytes:
                limit = self.limits.max_state_bytes
                detail = f"the state would reach {size} bytes (limit {limit}, STREAMS_MAX_STATE_BYTES)"
                return self._reject(
                    partition, command_id, aggregate_id, command_type, current, "aggregate_too_large", detail
                )
        ids = _Ids(id_bytes, correlation_id.encode(), actor.encode())
        events, too_large = self._encode_events(partition, raw_key, ids, outcome.events)
        too_large = too_large or self._result_too_large(command_id, aggregate_id, len(events))
        if too_large:
            return self._reject(
                partition, command_id, aggregate_id, command_type, current, "output_too_large", too_large
            )
        first = len(self.batch.events)
        self.batch.events += events
        indexes = tuple(range(first, first + len(events)))
        if outcome.events:
            self.batch.aggregates.setdefault(partition, {})[raw_key] = outcome.aggregate
            every = self.limits.snapshot_every
            if every > 0 and outcome.aggregate.version // every > current.version // every:
                self.batch.snapshots.append(
                    PendingSnapshot(partition, aggregate_id, outcome.aggregate, indexes[-1])
                )
        self._result(partition, outcome.result, indexes, id_bytes)
        return None

    def _result_too_large(self, command_id: str, aggregate_id: str, events: int) -> str:
        """Why the command's result would pass its topic's record limit ("": it fits)."""
        limit = self.limits.max_output_bytes
        result = 300 + 2 * len(command_id.encode()) + len(aggregate_id.encode()) + 40 * events
        if result > limit:
            return f"its result would take about {result} bytes (the topic's limit: {limit})"
        return ""

    def _encode_events(
        self, partition: int, raw_key: bytes, ids: _Ids, events: tuple[tuple[int, Any], ...]
    ) -> tuple[list[PendingEvent], str]:
        """The command's events as records, and why one would pass its topic's record limit
        ("": they fit; the size is `record_size`'s, computed from the header templates)."""
        codec, templates, occurred_at = self.codec, self.templates, self.occurred_at
        limit, too_large = self.limits.max_output_bytes, ""
        out = []
        for version, event in events:
            template = templates.get(type(event)) or self._template(type(event))
            value = codec.encode(event)
            headers, headers_size = template.build(
                raw_key, version, ids.command_id, ids.correlation_id, occurred_at, ids.actor
            )
            size = RECORD_OVERHEAD + len(raw_key) + len(value) + headers_size
            if size > limit and not too_large:
                too_large = (
                    f"its {template.event_type} event would take {size} bytes (the topic's limit: {limit})"
                )
            out.append(PendingEvent(partition, raw_key, value, headers, template.event_type))
        return out, too_large

    def _template(self, event_class: type) -> h.EventHeaders:
        template = h.EventHeaders(
            event_class.__name__, self.codec.version_of(event_class), self.context.aggregate_type
        )
        self.templates[event_class] = template
        return template

    def _aggregate(self, partition: int, key: bytes) -> Aggregate[Any]:
        """The aggregate as this batch left it, else as committed."""
        in_batch = self.batch.aggregates.get(partition, {}).get(key)
        if in_batch is not None:
            return in_batch
        committed = self.state.aggregate(partition, key)
        return committed if committed is not None else Aggregate(0, self.context.initial_state)

    def _seen(self, partition: int, command_id: bytes) -> CommandResult | None:
        """The first result of a command id, from this batch or the committed state."""
        in_batch = self.seen.get(partition, {}).get(command_id)
        if in_batch is not None:
            return in_batch
        return self.state.command_result(partition, command_id)

    def _result(
        self, partition: int, result: CommandResult, indexes: tuple[int, ...] = (), id_bytes: bytes = b""
    ) -> None:
        """Publish a command's first result and remember it for repeated command ids."""
        self.batch.results.append(PendingResult(partition, result, indexes))
        self.seen.setdefault(partition, {})[id_bytes or result.command_id.encode()] = result

    def _reject(
        self,
        partition: int,
        command_id: str,
        aggregate_id: str,
        command_type: str,
        current: Aggregate[Any],
        reason: str,
        detail: str,
    ) -> None:
        result = CommandResult(
            command_id=command_id,
            aggregate_id=aggregate_id,
            command_type=command_type,
            status="rejected",
            aggregate_version=current.version,
            reason=reason,
            detail=detail,
            processed_at=self.batch.processed_at,
        )
        self._result(partition, result)

    def _dead_letter(
        self,
        msg: Message,
        partition: int,
        reason: str,
        detail: str,
        *,
        answer: bool = True,
        keep_value: bool = True,
    ) -> None:
        """Keep the record's bytes with the reason. A waiting client gets a `rejected` result
        (unless `answer` is False), which is not remembered: the same command id sent again,
        well-formed, is processed."""
        source = source_of(msg.topic(), partition, msg.offset())
        extra = {} if keep_value else {"dlq_value_dropped": str(len(msg.value() or b""))}
        letter = dead_letter(
            key=msg.key(),
            value=msg.value() if keep_value else None,
            headers=msg.headers(),
            reason=reason,
            detail=detail,
            source=source,
            **extra,
        )
        self.batch.dead_letters.append(letter)
        command_id = h.as_dict(msg.headers()).get(h.COMMAND_ID)
        if command_id and answer:
            result = CommandResult(
                command_id=command_id,
                aggregate_id=shorten((msg.key() or b"").decode("utf-8", "replace")),
                command_type="",
                status="rejected",
                aggregate_version=-1,
                reason=reason,
                detail=detail[:1000],
                processed_at=self.batch.processed_at,
            )
            self.batch.results.append(PendingResult(partition, result))
        log.warning("%s: %s to DLQ: %s (%s)", self.context.name, source, reason, detail[:200])
