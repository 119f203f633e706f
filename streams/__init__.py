"""Kafka-native CQRS and event sourcing: the supported public API (docs/api.md).

`from streams import …` gives what a bounded context declares (the decider, views, windowed
aggregations), the client that sends commands and records, the settings, and the testing kit.
Everything else in the package is internal and may change.

The domain kernel is imported here; the client and the testing kit pull in Kafka and Avro, so
they are imported on first use and `import streams` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streams.config import Settings
from streams.core.commands import CommandResult
from streams.core.decider import BoundedContext, Message, Rejected
from streams.core.views import Document, EventMeta, State, View, fold_view
from streams.core.windows import (
    Accumulator,
    BadRecord,
    ClosedWindow,
    Heartbeat,
    JoinTable,
    Row,
    WindowedAggregation,
    WindowSpec,
    fold_windows,
)

if TYPE_CHECKING:
    from streams.client import CommandClient, RecordSender, read_topic
    from streams.testing import Scenario, assert_conformant, conformance, given, scaffold_samples

_LAZY = {
    "CommandClient": "streams.client",
    "RecordSender": "streams.client",
    "read_topic": "streams.client",
    "Scenario": "streams.testing",
    "assert_conformant": "streams.testing",
    "conformance": "streams.testing",
    "given": "streams.testing",
    "scaffold_samples": "streams.testing",
}

__all__ = [
    "Accumulator",
    "BadRecord",
    "BoundedContext",
    "ClosedWindow",
    "CommandClient",
    "CommandResult",
    "Document",
    "EventMeta",
    "Heartbeat",
    "JoinTable",
    "Message",
    "RecordSender",
    "Rejected",
    "Row",
    "Scenario",
    "Settings",
    "State",
    "View",
    "WindowSpec",
    "WindowedAggregation",
    "assert_conformant",
    "conformance",
    "fold_view",
    "fold_windows",
    "given",
    "read_topic",
    "scaffold_samples",
]


def __getattr__(name: str) -> Any:
    """The client's and the testing kit's names, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
