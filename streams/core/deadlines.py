"""The life of a process manager's deadline after `decide` scheduled it: pure, no clock.

A pending deadline is **due** once the wall clock (the stage's, handed in as `now_ms`) reaches
it; the stage then writes its `DeadlineReached` and marks it **emitted** in one transaction;
when the record is read back, `admit` says whether it fires (the instance emitted it and still
wants it), is ignored (cancelled or superseded since) or is refused (`ForgedDeadline`: the
instance never emitted it). See docs/process-managers.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from streams.core.processes import EMITTED, PENDING, Deadline, DeadlineReached, Instance

S = TypeVar("S")


def due(instance: Instance[Any], now_ms: int) -> list[Deadline]:
    """The pending deadlines of an instance that are due at `now_ms`, earliest first."""
    return sorted((d for d in instance.pending() if d.due_ms <= now_ms), key=lambda d: d.due_ms)


def emitted(instance: Instance[S], fired: Sequence[Deadline]) -> Instance[S]:
    """The instance once the `DeadlineReached` records of `fired` are written."""
    ids = {d.deadline_id for d in fired}
    return msgspec.structs.replace(
        instance,
        deadlines=tuple(
            msgspec.structs.replace(d, status=EMITTED) if d.deadline_id in ids else d
            for d in instance.deadlines
        ),
    )


def reached(process: str, instance: Instance[Any], deadline: Deadline) -> DeadlineReached:
    """The record of a due deadline."""
    return DeadlineReached(
        process, instance.correlation_id, deadline.name, deadline.deadline_id, deadline.due_ms
    )


class ForgedDeadline(Exception):
    """A `DeadlineReached` that no deadline of the instance accounts for (a foreign producer's
    record, or a copy): dead-lettered with `reason`, never handed to `decide`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Admission(Generic[S]):
    """What a `DeadlineReached` does: the instance without its deadline, and whether it fires
    (hand it to `advance`) or was cancelled or superseded after it was emitted (ignored)."""

    instance: Instance[S]
    fires: bool


def admit(process: str, instance: Instance[S], record: DeadlineReached) -> Admission[S]:
    """What a `DeadlineReached` does to the instance it names; `ForgedDeadline` when the
    instance never emitted it (a foreign producer's record, or a second copy)."""
    if record.process != process or record.correlation_id != instance.correlation_id:
        raise ForgedDeadline("deadline_misaddressed", f"for {record.process}/{record.correlation_id}")
    found = next((d for d in instance.deadlines if d.deadline_id == record.deadline_id), None)
    if found is None:
        raise ForgedDeadline("unknown_deadline", f"no deadline {record.deadline_id!r} is kept")
    if found.name != record.name or found.due_ms != record.due_ms:
        raise ForgedDeadline(
            "deadline_mismatch", f"{record.name}@{record.due_ms} is {found.name}@{found.due_ms}"
        )
    if found.status == PENDING:
        raise ForgedDeadline("deadline_not_emitted", f"{found.name} was not emitted by this process")
    rest = tuple(d for d in instance.deadlines if d.deadline_id != record.deadline_id)
    return Admission(msgspec.structs.replace(instance, deadlines=rest), found.status == EMITTED)
