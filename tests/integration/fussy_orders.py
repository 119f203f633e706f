"""A test-only variant of the orders context (registered with STREAMS_CONTEXT_MODULES): the
same commands, events and views, plus two views that fail on orders placed for a customer
named `poison...`, to exercise the read side's DLQ and halt paths: `fussy` (keyed by order; its
handler raises) and `fussy-keyed` (re-keyed by customer; its key function raises); and `hoard`,
whose documents grow by 2,000 characters an event, to exercise the document size limit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.contexts import orders
from streams.core.views import EventMeta, View


def _refuse(event: Any) -> None:
    if isinstance(event, orders.OrderPlaced) and event.customer_id.startswith("poison"):
        raise ValueError(f"refusing customer {event.customer_id}")


def count_events(state: dict[str, Any] | None, event: Any, meta: EventMeta) -> dict[str, Any]:
    """One document per order counting its events; refuses poisoned customers."""
    _refuse(event)
    return {"events": (state or {}).get("events", 0) + 1}


def customer_or_refuse(event: Any, previous: str | None) -> str | None:
    """The customer of the order, like orders-by-customer; refuses poisoned customers."""
    _refuse(event)
    return orders.customer_of(event, previous)


FUSSY = View("fussy", count_events)
FUSSY_KEYED = View("fussy-keyed", count_events, key_by=customer_or_refuse)
context = replace(orders.context, views=(*orders.context.views, FUSSY, FUSSY_KEYED))


def hoard(state: dict[str, Any] | None, event: Any, meta: EventMeta) -> dict[str, Any]:
    """One document per order keeping 2,000 characters for each of its events."""
    return {"kept": [*(state or {}).get("kept", []), f"{meta.event_type}:" + "x" * 2000]}


HOARD = View("hoard", hoard)
context = replace(context, views=(*context.views, HOARD))
