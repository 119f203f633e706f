"""A test-only variant of the orders context (registered with STREAMS_CONTEXT_MODULES) with one
more view, `ledger`: one document per order keeping 40 small entries per event, so an order of
126 events has a document of about 253 KiB made of some 5,000 objects (costly to decode, as
real documents are; a few long strings would decode in microseconds)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.contexts import orders
from streams.core.views import EventMeta, View


def ledger(state: dict[str, Any] | None, event: Any, meta: EventMeta) -> dict[str, Any]:
    """40 entries of about 50 bytes for each event of the order."""
    entries = [
        {"v": meta.aggregate_version, "i": i, "type": meta.event_type[:12], "n": i * 7} for i in range(40)
    ]
    return {"entries": [*(state or {}).get("entries", []), *entries]}


LEDGER = View("ledger", ledger)
context = replace(orders.context, views=(*orders.context.views, LEDGER))
