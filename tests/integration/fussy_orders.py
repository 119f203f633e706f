"""A test-only variant of the orders context (registered with STREAMS_CONTEXT_MODULES): the
same commands, events and views, plus two views that fail on orders placed for a customer
named `poison...`, to exercise the read side's DLQ and halt paths: `fussy` (keyed by order; its
handler raises) and `fussy-keyed` (re-keyed by customer; its key function raises); and `hoard`,
whose documents grow by 2,000 characters an event, to exercise the document size limit; and
`orders-by-status`, keyed by customer and status, whose key moves with each status change."""

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


# --- a view whose key changes over an order's life -------------------------------------------

STATUS_OF: dict[type, str] = {
    orders.OrderPlaced: "placed",
    orders.OrderConfirmed: "confirmed",
    orders.OrderShipped: "shipped",
    orders.OrderCancelled: "cancelled",
}


def customer_and_status(event: Any, previous: str | None) -> str | None:
    """`<customer>:<status>`: the key moves each time the order's status changes."""
    if isinstance(event, orders.OrderPlaced):
        return f"{event.customer_id}:placed"
    status = STATUS_OF.get(type(event))
    if status is None or previous is None:
        return previous
    return f"{previous.rsplit(':', 1)[0]}:{status}"


def orders_in_status(state: dict[str, Any] | None, event: Any, meta: EventMeta) -> dict[str, Any]:
    """One document per customer and status: the customer's orders in that status."""
    held = set((state or {}).get("orders", [])) | {meta.aggregate_id}
    return {"orders": sorted(held), "count": len(held)}


def without_order(state: dict[str, Any], meta: EventMeta) -> dict[str, Any] | None:
    """The order moved to another status: drop it here (the document goes with its last order)."""
    held = [o for o in state.get("orders", []) if o != meta.aggregate_id]
    return {"orders": held, "count": len(held)} if held else None


BY_STATUS = View("orders-by-status", orders_in_status, key_by=customer_and_status, retract=without_order)
context = replace(context, views=(*context.views, BY_STATUS))
