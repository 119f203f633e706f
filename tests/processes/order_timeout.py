"""A test-only process manager over the orders context: an order placed and not confirmed in
time is cancelled (a deadline scheduled on `OrderPlaced`, cancelled by `OrderConfirmed` or
`OrderCancelled`), and what orders answered to that cancel is kept. Its timeout is
`ORDER_TIMEOUT_MS` (default 3 s) so a worker can run it."""

from __future__ import annotations

import os

import msgspec

from streams.contexts.orders import CancelOrder, OrderCancelled, OrderConfirmed, OrderPlaced
from streams.core.processes import (
    Action,
    Cancel,
    CommandOutcome,
    DeadlineReached,
    ProcessManager,
    Schedule,
    Send,
    Subscription,
)
from streams.core.records import Message
from streams.core.views import EventMeta

TIMEOUT_MS = int(os.environ.get("ORDER_TIMEOUT_MS", "3000"))
DEADLINE = "confirm-by"


class Watch(msgspec.Struct, frozen=True):
    """Where the order is."""

    status: str = "new"
    cancel_outcome: str = ""
    """What orders answered to the cancel this process sent (accepted, or the rejection's reason)."""


def decide(state: Watch, event: Message) -> list[Action]:
    if isinstance(event, OrderPlaced):
        return [Schedule(DEADLINE, after_ms=TIMEOUT_MS)]
    if isinstance(event, OrderConfirmed | OrderCancelled):
        return [Cancel(DEADLINE)]
    if isinstance(event, DeadlineReached) and state.status == "placed":
        return [Send("orders", event.correlation_id, CancelOrder("not confirmed in time"), step="cancel")]
    return []


def evolve(state: Watch, event: Message) -> Watch:
    if isinstance(event, CommandOutcome):
        return msgspec.structs.replace(state, cancel_outcome=event.reason or event.status)
    if isinstance(event, OrderPlaced):
        return Watch("placed")
    if isinstance(event, OrderConfirmed):
        return msgspec.structs.replace(state, status="confirmed")
    if isinstance(event, OrderCancelled):
        return msgspec.structs.replace(state, status="cancelled")
    if isinstance(event, DeadlineReached) and state.status == "placed":
        return msgspec.structs.replace(state, status="cancelling")
    return state


def _order_id(_event: Message, meta: EventMeta) -> str:
    return meta.aggregate_id


process = ProcessManager(
    name="order-timeout",
    subscriptions=(Subscription("orders", (OrderPlaced, OrderConfirmed, OrderCancelled), _order_id),),
    state_type=Watch,
    initial_state=Watch(),
    evolve=evolve,
    decide=decide,
    sends=("orders",),
    outcomes=True,
)
