"""Event metadata headers."""

from __future__ import annotations

import uuid

from streams.wire import headers as h


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = [h.new_event_id().decode() for _ in range(3000)]  # more than one pool of random bytes
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)


def test_an_event_carries_every_header_of_the_design() -> None:
    headers = h.as_dict(
        h.event_headers(
            event_type="OrderPlaced",
            schema_version=2,
            aggregate_type="Order",
            aggregate_id="o-1",
            aggregate_version=7,
            command_id="cmd-1",
            correlation_id="",
            occurred_at="2026-11-26T12:00:00.000Z",
        )
    )
    assert uuid.UUID(headers.pop(h.EVENT_ID)).version == 4
    assert headers == {
        h.EVENT_TYPE: "OrderPlaced",
        h.SCHEMA_VERSION: "2",
        h.AGGREGATE_TYPE: "Order",
        h.AGGREGATE_ID: "o-1",
        h.AGGREGATE_VERSION: "7",
        h.COMMAND_ID: "cmd-1",
        h.CORRELATION_ID: "cmd-1",  # a command without a correlation id starts its own
        h.OCCURRED_AT: "2026-11-26T12:00:00.000Z",
    }
