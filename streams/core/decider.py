"""The decider model: what a bounded context declares, and nothing about Kafka or Faust."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from streams.core.records import Message
from streams.core.views import View
from streams.core.windows import WindowedAggregation

__all__ = ["BoundedContext", "Message", "Rejected"]

S = TypeVar("S")


class Rejected(Exception):
    """A command broke a business rule.

    `reason` is machine-readable (snake_case, stable across releases); `detail` is for people.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class BoundedContext(Generic[S]):
    """One aggregate type with its commands, events, state and pure functions.

    `decide(state, command)` returns the events a command causes or raises `Rejected`;
    `evolve(state, event)` folds one event into the state and must be total and pure.
    Each command, event and state class is backed by `<schema_dir>/<ClassName>.v<N>.avsc`.
    """

    name: str
    aggregate_type: str
    commands: tuple[type, ...]
    events: tuple[type, ...]
    state_type: type[S]
    initial_state: S
    decide: Callable[[S, Message], Sequence[Message]]
    evolve: Callable[[S, Message], S]
    views: tuple[View, ...] = ()
    """The context's read models."""
    windows: tuple[WindowedAggregation, ...] = ()
    """The context's windowed aggregations: high-rate inputs folded into windows, each closed
    window a system command to this context."""
    upcasters: Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )
    """Pure functions `(type name, N) -> f(record of vN) -> record of vN+1` for commands and events
    whose new schema version Avro defaults cannot express (applied on read, chained)."""
    schema_dir: Path | None = None
    """Where the `.avsc` files of this context's types are (None: the project's
    `schemas/<name>/`); a context in another package points at its own folder."""
    command_names: dict[str, type] = field(init=False, repr=False)
    event_names: dict[str, type] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "command_names", {c.__name__: c for c in self.commands})
        object.__setattr__(self, "event_names", {e.__name__: e for e in self.events})

    def fold(self, events: Sequence[Message], state: S | None = None) -> S:
        """Replay events onto `state` (default: the initial state): the seed's StateRebuilder."""
        current = self.initial_state if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current
