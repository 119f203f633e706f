"""Which bounded contexts exist: found once, on first use, never at import time.

Three sources, later ones replacing earlier ones of the same name:
1. the contexts shipped with streams (`BUILT_IN`);
2. the entry points of group `streams.contexts` of every installed distribution, so a context
   living in a user's own package loads without touching this one:
   `[project.entry-points."streams.contexts"] billing = "acme.billing:context"`;
3. `STREAMS_CONTEXT_MODULES`: a comma-separated list of importable modules, each with a
   `context` attribute (the tests use it to run orders with an extra view).

Process managers (`streams.core.processes`) are found the same way: the ones shipped with
streams (`BUILT_IN_PROCESSES`), entry points of group `streams.processes` and the modules of
`STREAMS_PROCESS_MODULES`, each with a `process` attribute.

Only the composition root (`streams.app`), the CLI and the public client ask this registry; the
framework itself is handed `BoundedContext` objects and never imports a context.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib.metadata import entry_points
from typing import Any

from streams.core.decider import BoundedContext
from streams.core.processes import ProcessManager

ENTRY_POINT_GROUP = "streams.contexts"
PROCESS_ENTRY_POINT_GROUP = "streams.processes"
BUILT_IN = (
    "streams.contexts.orders",
    "streams.contexts.devices",
    "streams.contexts.games",
    "streams.contexts.wallet",
)
BUILT_IN_PROCESSES = ("streams.contexts.settlement",)


def _from_module(module: str) -> BoundedContext[Any]:
    context = importlib.import_module(module).context
    if not isinstance(context, BoundedContext):
        raise TypeError(f"{module}.context is a {type(context).__name__}, not a BoundedContext")
    return context


@functools.cache
def contexts() -> dict[str, BoundedContext[Any]]:
    """Every known context by name."""
    found: dict[str, BoundedContext[Any]] = {}
    for module in BUILT_IN:
        context = _from_module(module)
        found[context.name] = context
    for point in entry_points(group=ENTRY_POINT_GROUP):
        context = point.load()
        if not isinstance(context, BoundedContext):
            raise TypeError(f"entry point {point.name} = {point.value} is not a BoundedContext")
        found[context.name] = context
    for module in os.environ.get("STREAMS_CONTEXT_MODULES", "").split(","):
        if module.strip():
            context = _from_module(module.strip())
            found[context.name] = context
    return found


def get_context(name: str) -> BoundedContext[Any]:
    """The context called `name`, or a KeyError naming the known ones."""
    known = contexts()
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown context {name!r}; known: {', '.join(known)}") from None


@functools.cache
def process_managers() -> dict[str, ProcessManager[Any]]:
    """Every known process manager by name (later sources replacing earlier ones, as for contexts)."""
    found: dict[str, ProcessManager[Any]] = {}
    built_in = [importlib.import_module(m).process for m in BUILT_IN_PROCESSES]
    points = [point.load() for point in entry_points(group=PROCESS_ENTRY_POINT_GROUP)]
    modules = [m.strip() for m in os.environ.get("STREAMS_PROCESS_MODULES", "").split(",") if m.strip()]
    for pm in [*built_in, *points, *(importlib.import_module(m).process for m in modules)]:
        if not isinstance(pm, ProcessManager):
            raise TypeError(f"{pm!r} is not a ProcessManager")
        found[pm.name] = pm
    return found
