"""Handling one command against one aggregate: pure, so it is tested without Kafka.

The records built once or more per command are frozen msgspec Structs: ten times cheaper to
build than frozen dataclasses, and as immutable.

The agent owns the I/O (reading the state table, producing records); this module decides what
the outcome is: expected-version check, `decide`, `evolve`, versions and the result record.
"""

from __future__ import annotations

from typing import Any, Final, Generic, Literal, TypeVar

import msgspec

from streams.core.clock import utc_now
from streams.core.decider import BoundedContext, Message, Rejected

S = TypeVar("S")

CommandStatus = Literal["accepted", "rejected"]
"""A command's outcome: its events were appended, or it was refused (a rule, a conflict, bad input)."""
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"


class Aggregate(msgspec.Struct, Generic[S], frozen=True):
    """An aggregate's state and the version of the last event folded into it (0: none)."""

    version: int
    state: S


class CommandEnvelope(msgspec.Struct, frozen=True):
    """A decoded command with its metadata (from the record key and headers)."""

    command_id: str
    aggregate_id: str
    command: Message
    expected_version: int | None = None
    correlation_id: str = ""
    actor: str = ""


class CommandResult(msgspec.Struct, frozen=True):
    """The outcome published on `<ctx>.command-results` (schema `streams.CommandResult`)."""

    command_id: str
    aggregate_id: str
    command_type: str
    status: CommandStatus
    aggregate_version: int
    event_types: tuple[str, ...] = ()
    event_offsets: tuple[int, ...] = ()
    event_partition: int = -1
    reason: str = ""
    detail: str = ""
    duplicate: bool = False
    processed_at: str = ""

    @property
    def accepted(self) -> bool:
        """True when the command's events were appended."""
        return self.status == ACCEPTED


class AggregateSnapshot(msgspec.Struct, frozen=True):
    """An aggregate's state at `version` (schema `streams.AggregateSnapshot`).

    `state` holds the context's state record as Avro bytes; the tail of the log after
    `event_partition`/`event_offset` brings it up to date.
    """

    aggregate_id: str
    aggregate_type: str
    version: int
    state: bytes
    event_partition: int
    event_offset: int
    taken_at: str


class Outcome(msgspec.Struct, Generic[S], frozen=True):
    """What one command produced: its result, the new events (with versions) and state."""

    result: CommandResult
    events: tuple[tuple[int, Message], ...]
    aggregate: Aggregate[S]


def handle_command(
    context: BoundedContext[S],
    current: Aggregate[S],
    envelope: CommandEnvelope,
    processed_at: str | None = None,
) -> Outcome[S]:
    """Validate and apply one command; a broken rule gives a `rejected` outcome, not an error.

    `processed_at` (default: now) lets a caller stamp a whole batch with one clock reading.
    """
    processed_at = processed_at or utc_now()
    command_type = type(envelope.command).__name__
    try:
        if envelope.expected_version is not None and envelope.expected_version != current.version:
            raise Rejected(
                "version_conflict",
                f"expected version {envelope.expected_version}, aggregate is at {current.version}",
            )
        events = list(context.decide(current.state, envelope.command))
    except Rejected as rejection:
        return Outcome(
            result=CommandResult(
                command_id=envelope.command_id,
                aggregate_id=envelope.aggregate_id,
                command_type=command_type,
                status=REJECTED,
                aggregate_version=current.version,
                reason=rejection.reason,
                detail=rejection.detail,
                processed_at=processed_at,
            ),
            events=(),
            aggregate=current,
        )
    state = current.state
    numbered: list[tuple[int, Any]] = []
    for offset, event in enumerate(events, start=1):
        state = context.evolve(state, event)
        numbered.append((current.version + offset, event))
    version = current.version + len(events)
    return Outcome(
        result=CommandResult(
            command_id=envelope.command_id,
            aggregate_id=envelope.aggregate_id,
            command_type=command_type,
            status=ACCEPTED,
            aggregate_version=version,
            event_types=tuple([type(e).__name__ for e in events]),
            processed_at=processed_at,
        ),
        events=tuple(numbered),
        aggregate=Aggregate(version, state),
    )
