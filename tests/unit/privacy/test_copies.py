"""Copies that cannot be shredded (the sink's PostgreSQL rows) never hold a personal value."""

from __future__ import annotations

import json

from streams.contexts.orders import OrderPlaced
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.sinks.rows import event_row
from streams.wire import headers as h


def test_an_event_row_holds_the_replacement_of_each_personal_field() -> None:
    runtime = ContextRuntime.offline(orders)
    value = runtime.codec.encode(OrderPlaced("cust-A", "EUR", "Ada Lovelace", "ada@example.org"))
    stamped = h.event_headers(
        event_type="OrderPlaced", schema_version=2, aggregate_type="Order", aggregate_id="o-1",
        aggregate_version=1, command_id="c", correlation_id="", occurred_at="2026-12-01T00:00:00Z",
    )  # fmt: skip
    headers = h.as_dict(stamped)
    row = event_row(runtime, value, headers, {})
    assert json.loads(row.EventData) == {
        "customer_id": "cust-A", "currency": "EUR", "customer_name": None, "customer_email": None,
    }  # fmt: skip
    assert "Ada" not in repr(row)
