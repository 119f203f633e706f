"""Scenario g's per-record function: our orders `decide`/`evolve` over Quix Streams' state.

`decide_command` is what the `StreamingDataFrame` applies (`stateful=True, expand=True`): it gets
a command's JSON object and the state of its key (Quix Streams prefixes the state with the message
key), and returns the output records. It imports nothing of Quix Streams, so it is testable alone.
"""

from __future__ import annotations

from typing import Any, Protocol

from bench.peers.wire import decode_command, event_json, rejection_json
from streams.contexts.orders import INITIAL, OrderLine, OrderState, decide, evolve
from streams.core.decider import Rejected

STATE_KEY = "order"
"""The one state key per message key: the order."""


class KeyState(Protocol):
    """The part of Quix Streams' `State` (a key's state) that the function uses."""

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under `key`, or `default`."""

    def set(self, key: Any, value: Any) -> None:
        """Store `value` under `key`."""


def state_json(state: OrderState) -> list[Any]:
    """An order as a JSON value for Quix Streams' store (its default serializer is JSON)."""
    return [
        state.status,
        state.customer_id,
        state.currency,
        [[ln.sku, ln.quantity, ln.unit_price_cents] for ln in state.lines],
    ]


def state_from_json(value: list[Any]) -> OrderState:
    """The order that `state_json` stored."""
    status, customer_id, currency, lines = value
    return OrderState(status, customer_id, currency, tuple(OrderLine(*line) for line in lines))


def decide_command(value: dict[str, Any], state: KeyState) -> list[dict[str, Any]]:
    """One command: the order from the state, `decide`, and when accepted `evolve` and store the
    new order; the output records (the events, or one rejection)."""
    stored = state.get(STATE_KEY)
    order = INITIAL if stored is None else state_from_json(stored)
    try:
        events = decide(order, decode_command(value))
    except Rejected as rejected:
        return [rejection_json(rejected.reason, str(value.get("type")))]
    for event in events:
        order = evolve(order, event)
    state.set(STATE_KEY, state_json(order))
    return [event_json(event) for event in events]
