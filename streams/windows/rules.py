"""What a pass over a batch of a window stage is decided by: the context and aggregation, their
codec and topics, and the limits (`streams.windows.intake.WindowIntake` is one). The passes
(`streams.windows.passes`) and the intake both import it, so neither imports the other."""

from __future__ import annotations

from typing import Any, Protocol

from streams.core.decider import BoundedContext
from streams.core.windows import WindowedAggregation
from streams.wire.codec import AvroCodec


class PassRules(Protocol):
    """The aggregation a pass runs, where its commands and dead letters go, and its limits."""

    context: BoundedContext[Any]
    aggregation: WindowedAggregation
    codec: AvroCodec
    partitions: int
    """Partitions of the context's topics (a system command's partition)."""
    actor: str
    """The `actor` header of the system commands."""
    dlq: str
    """The aggregation's dead-letter topic."""
    max_closes: int
    """Windows and timers one pass closes at most."""
    max_value_bytes: int
    """The largest state value the changelog takes."""
