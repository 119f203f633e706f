"""Bounded contexts known to the app. Adding one = its module + its schemas + one line here.

A deployment can also add contexts without editing this file: `STREAMS_CONTEXT_MODULES` is a
comma-separated list of importable modules, each with a `context` attribute (a BoundedContext),
registered under its name, replacing a built-in one of the same name. Its schemas are looked up
by that name as usual. (The tests use it to run orders with an extra view.)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from streams.contexts import orders
from streams.core.decider import BoundedContext

CONTEXTS: dict[str, BoundedContext[Any]] = {
    orders.context.name: orders.context,
}


def get_context(name: str) -> BoundedContext[Any]:
    """The context called `name`, or a KeyError naming the known ones."""
    try:
        return CONTEXTS[name]
    except KeyError:
        raise KeyError(f"unknown context {name!r}; known: {', '.join(CONTEXTS)}") from None


def register_modules(modules: str) -> None:
    """Register the `context` of each module in a comma-separated list of import paths."""
    for module in (m.strip() for m in modules.split(",")):
        if module:
            context: BoundedContext[Any] = importlib.import_module(module).context
            CONTEXTS[context.name] = context


register_modules(os.environ.get("STREAMS_CONTEXT_MODULES", ""))
