"""Bounded contexts known to the app. Adding one = its module + its schemas + one line here."""

from __future__ import annotations

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
