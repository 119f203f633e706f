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


def test_the_hot_path_template_gives_the_same_headers_and_record_size() -> None:
    from streams.wire.topics import RECORD_OVERHEAD, record_size

    template = h.EventHeaders("ItemAdded", 2, "Order")
    for correlation, actor in (("", ""), ("corr-9", "alice")):
        built, size = template.build(
            b"o-1", 12, b"cmd-1", correlation.encode(), b"2026-11-26T12:00:00Z", actor.encode()
        )
        expected = h.event_headers(
            event_type="ItemAdded", schema_version=2, aggregate_type="Order", aggregate_id="o-1",
            aggregate_version=12, command_id="cmd-1", correlation_id=correlation,
            occurred_at="2026-11-26T12:00:00Z", actor=actor,
        )  # fmt: skip
        assert [n for n, _ in built] == [n for n, _ in expected]
        assert h.as_dict(built) | {h.EVENT_ID: ""} == h.as_dict(expected) | {h.EVENT_ID: ""}
        assert RECORD_OVERHEAD + size == record_size(None, None, built)
