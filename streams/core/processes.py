"""Process managers declared as plain data and pure functions: a decider over events.

Work that spans bounded contexts (reserve funds when a bet is placed, cancel an order nobody
confirmed in time) is an eventually consistent *process*: a `ProcessManager` consumes the public
events of the contexts it names, keeps one instance per **correlation id**, and answers each
input with **actions**:

- `Send(context, aggregate_id, command, step, attempt)`: a command to another context, whose id
  is deterministic (`process_command_id`: process, correlation id, step, attempt), so a replay
  sends the same id and the target context's dedupe absorbs it;
- `Schedule(name, at_ms)` / `Cancel(name)`: deadlines as data. A deadline that falls due becomes a
  `DeadlineReached` record on the manager's own timers topic, processed like any event; a
  deadline cancelled, or scheduled again under the same name (superseded), never reaches
  `decide`.

`decide(state, input)` sees the state *before* the input (like a context's decider), then
`evolve(state, input)` folds it in; both must be pure and total (an input may be an event of any
subscribed type or a `DeadlineReached`). The stage that hosts a manager (`streams.processes`)
owns Kafka, RocksDB, the wall clock and the transaction; nothing here knows about them:
`advance` is the whole of what one input does to an instance. A manager declared with
`outcomes=True` is also handed a `CommandOutcome` for each command it sent, once the target
context has accepted or rejected it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

import msgspec

from streams.core.records import Message
from streams.core.views import EventMeta

S = TypeVar("S")

MAX_COMMAND_ID = 255
"""Command ids are identifiers (`streams.wire.identifiers`): longer ones are hashed."""
SENT_KEPT = 50
"""How many of an instance's most recent commands it remembers (for people: the query side)."""

# --- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send `command` to the aggregate `aggregate_id` of `context`.

    `step` names the step of the process that sends it (`reserve-funds`), `attempt` counts its
    retries: together with the process and correlation id they make the command id, so the same
    step decided again (a replay after a crash) sends the same id."""

    context: str
    aggregate_id: str
    command: Message
    step: str
    attempt: int = 0

    def __post_init__(self) -> None:
        if not self.step or ":" in self.step or self.attempt < 0:
            raise ValueError("a step is a non-empty name without ':', an attempt a count >= 0")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Reach deadline `name` at `at_ms` (epoch ms, wall clock), or `after_ms` after the input's
    own time (an event's `occurred_at`, a deadline's due time: deterministic on replay, unlike
    the clock); a deadline of that name still pending (or emitted, not yet handled) is superseded."""

    name: str
    at_ms: int | None = None
    after_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.at_ms is None) == (self.after_ms is None):
            raise ValueError("a deadline is scheduled at_ms or after_ms, not both or neither")

    def due_ms(self, input_ms: int) -> int:
        """When the deadline is due, for an input of time `input_ms`."""
        return self.at_ms if self.at_ms is not None else input_ms + (self.after_ms or 0)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Forget deadline `name` (nothing when none is pending)."""

    name: str


Action = Send | Schedule | Cancel


# --- inputs and instance records ---------------------------------------------------------------


class DeadlineReached(msgspec.Struct, frozen=True):
    """A due deadline (schema `streams.DeadlineReached`, on `<process>.timers`, keyed by the
    correlation id): the stage writes it, consumes it and hands it to `decide` like an event."""

    process: str
    correlation_id: str
    name: str
    deadline_id: str
    due_ms: int


PENDING: Final = "pending"
EMITTED: Final = "emitted"
VOID: Final = "void"
DeadlineStatus = Literal["pending", "emitted", "void"]
"""pending: not due yet; emitted: its `DeadlineReached` is on the timers topic, not yet consumed;
void: cancelled or superseded after it was emitted (its record is ignored when it arrives)."""


class Deadline(msgspec.Struct, frozen=True):
    """A deadline an instance keeps (schema `streams.ProcessDeadline`)."""

    name: str
    deadline_id: str
    due_ms: int
    status: str = PENDING


class SentCommand(msgspec.Struct, frozen=True):
    """A command an instance sent (schema `streams.ProcessCommand`), and its outcome once known
    (`accepted` / `rejected`; "" before, or for a manager that does not follow outcomes)."""

    command_id: str
    context: str
    aggregate_id: str
    command_type: str
    status: str = ""


class CommandOutcome(msgspec.Struct, frozen=True):
    """The result of a command the instance sent (from the target's `<ctx>.command-results`),
    handed to `decide` like an event by a manager declared with `outcomes=True`."""

    correlation_id: str
    context: str
    command_id: str
    command_type: str
    step: str
    attempt: int
    status: str
    """`accepted` or `rejected`."""
    reason: str = ""
    """The rejection's machine-readable reason."""
    detail: str = ""


class ProcessInstance(msgspec.Struct, frozen=True):
    """An instance as the stage keeps it (schema `streams.ProcessInstance`): the manager's state
    as JSON text."""

    process: str
    correlation_id: str
    state: str
    version: int
    deadlines: tuple[Deadline, ...] = ()
    sent: tuple[SentCommand, ...] = ()
    updated_at: str = ""


class Instance(msgspec.Struct, Generic[S], frozen=True):
    """One process instance: the manager's state, how many inputs it folded, its deadlines and
    its most recent commands."""

    correlation_id: str
    state: S
    version: int = 0
    deadlines: tuple[Deadline, ...] = ()
    sent: tuple[SentCommand, ...] = ()

    def pending(self) -> list[Deadline]:
        """The deadlines not due yet."""
        return [d for d in self.deadlines if d.status == PENDING]


# --- the declaration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """The events of one context a manager consumes (from `<context>.events`), and the
    correlation id of each (`correlate(event, meta)`; None: the event is not the manager's)."""

    context: str
    events: tuple[type, ...]
    correlate: Callable[[Message, EventMeta], str | None]

    @property
    def event_names(self) -> frozenset[str]:
        """The `event_type` headers of the subscribed events."""
        return frozenset(e.__name__ for e in self.events)


@dataclass(frozen=True)
class ProcessManager(Generic[S]):
    """A process that spans contexts: its inputs, its state and its pure functions.

    `state_type` must be JSON-able with msgspec (a Struct, a dataclass, a dict...): the stage
    keeps it as JSON inside the framework's `streams.ProcessInstance` record. `sends` names the
    contexts it sends commands to (their command topics and codecs are needed to host it).
    """

    name: str
    subscriptions: tuple[Subscription, ...]
    state_type: type[S]
    initial_state: S
    evolve: Callable[[S, Message], S]
    decide: Callable[[S, Message], Sequence[Action]]
    sends: tuple[str, ...] = ()
    outcomes: bool = False
    """Hand the outcome of every command sent (`CommandOutcome`) to `decide`: the stage then
    also reads the command results of the contexts in `sends`."""

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError("a process manager's name is non-empty, without ':'")

    def subscription(self, context: str) -> Subscription | None:
        """The subscription to `context`'s events, if any."""
        return next((s for s in self.subscriptions if s.context == context), None)

    @property
    def contexts(self) -> tuple[str, ...]:
        """Every context the manager reads from or sends to, each once."""
        names = [s.context for s in self.subscriptions] + list(self.sends)
        return tuple(dict.fromkeys(names))

    def start(self, correlation_id: str) -> Instance[S]:
        """A new instance."""
        return Instance(correlation_id, self.initial_state)


# --- what one input does -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A command to produce: `Send` with its deterministic id."""

    context: str
    aggregate_id: str
    command: Message
    command_id: str


@dataclass(frozen=True, slots=True)
class Advanced(Generic[S]):
    """The outcome of one input: the new instance and the commands it sends."""

    instance: Instance[S]
    commands: tuple[Command, ...]


class ProcessFailed(Exception):
    """`decide` or `evolve` raised, or `decide` returned something not an action: the input is
    dead-lettered with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def bounded_id(text: str) -> str:
    """`text` if it is a valid identifier length, else a prefix and its sha256."""
    if len(text) <= MAX_COMMAND_ID:
        return text
    return f"{text[:2]}sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def process_command_id(process: str, correlation_id: str, step: str, attempt: int = 0) -> str:
    """The deterministic command id of one step of one process instance:
    `p:<process>:<step>:<attempt>:<correlation id>` (hashed past 255 characters)."""
    return bounded_id(f"p:{process}:{step}:{attempt}:{correlation_id}")


@dataclass(frozen=True, slots=True)
class SentBy:
    """What a process command id says: the instance and the step that sent it."""

    correlation_id: str
    step: str
    attempt: int


def sent_by(process: str, command_id: str) -> SentBy | None:
    """The instance and step of a command id `process` made (None: not one of its ids, or one
    hashed because it was too long)."""
    prefix = f"p:{process}:"
    if not command_id.startswith(prefix):
        return None
    step, _, rest = command_id[len(prefix) :].partition(":")
    attempt, _, correlation_id = rest.partition(":")
    if not step or not attempt.isdigit() or not correlation_id:
        return None
    return SentBy(correlation_id, step, int(attempt))


def deadline_id(process: str, correlation_id: str, name: str, version: int) -> str:
    """The id of a deadline scheduled by the instance's input number `version`."""
    return bounded_id(f"d:{process}:{correlation_id}:{name}:{version}")


def advance(pm: ProcessManager[S], instance: Instance[S], message: Message, at_ms: int = 0) -> Advanced[S]:
    """Decide on one input (an event or an admitted `DeadlineReached`) of time `at_ms` and fold it in."""
    try:
        actions = list(pm.decide(instance.state, message))
        state = pm.evolve(instance.state, message)
    except Exception as exc:
        raise ProcessFailed("process_failed", f"{type(exc).__name__}: {exc}") from exc
    version = instance.version + 1
    deadlines = {d.name: d for d in instance.deadlines if d.status != VOID}
    voided = [d for d in instance.deadlines if d.status == VOID]
    commands: list[Command] = []
    for action in actions:
        if isinstance(action, Send):
            cid = process_command_id(pm.name, instance.correlation_id, action.step, action.attempt)
            commands.append(Command(action.context, action.aggregate_id, action.command, cid))
        elif isinstance(action, Schedule | Cancel):
            old = deadlines.pop(action.name, None)
            if old is not None and old.status == EMITTED:
                voided.append(msgspec.structs.replace(old, status=VOID))
            if isinstance(action, Schedule):
                did = deadline_id(pm.name, instance.correlation_id, action.name, version)
                deadlines[action.name] = Deadline(action.name, did, action.due_ms(at_ms))
        else:
            raise ProcessFailed("invalid_action", f"{type(action).__name__} is not an action")
    sent = instance.sent
    if isinstance(message, CommandOutcome):
        sent = tuple(
            msgspec.structs.replace(c, status=message.status) if c.command_id == message.command_id else c
            for c in sent
        )
    sent += tuple(
        SentCommand(c.command_id, c.context, c.aggregate_id, type(c.command).__name__) for c in commands
    )
    new = Instance(instance.correlation_id, state, version, (*voided, *deadlines.values()), sent[-SENT_KEPT:])
    return Advanced(new, tuple(commands))
