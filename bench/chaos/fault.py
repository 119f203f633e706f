"""What a scenario is given (the target of its faults, the worker) and what it hands back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

HOLD_S = float(os.environ.get("CHAOS_HOLD_S", "15"))  # a killed node stays down this long


class Worker(Protocol):
    """The worker under load, as a scenario may treat it."""

    def kill(self) -> None:
        """kill -9 the worker process and wait until it is gone."""

    def start(self) -> None:
        """Start the worker again and wait until it serves."""


@dataclass(frozen=True)
class Target:
    """What a scenario may aim at: the events topic, the worker's transactional id, the worker."""

    events_topic: str
    transactional_id: str
    worker: Worker | None = None

    def scratch_topic(self, name: str) -> str:
        """A topic of the scenario's own, beside the load's (its records are not commands)."""
        return f"{self.events_topic}.chaos-{name}"


@dataclass
class Fault:
    """What a scenario did: the nodes it hit, what it observed on the way (`details`, written to
    the result file) and what of that breaks a guarantee (`problems`: the run fails)."""

    nodes: list[int]
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
