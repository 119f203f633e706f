"""Kafka record headers: the event metadata of DESIGN.md and the command metadata."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

Headers = list[tuple[str, bytes]]

# command headers (set by clients)
COMMAND_ID = "command_id"
CORRELATION_ID = "correlation_id"
ACTOR = "actor"
EXPECTED_VERSION = "expected_version"
# event headers (set by the command handler)
EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
SCHEMA_VERSION = "schema_version"
AGGREGATE_TYPE = "aggregate_type"
AGGREGATE_ID = "aggregate_id"
AGGREGATE_VERSION = "aggregate_version"
OCCURRED_AT = "occurred_at"
# dead-letter headers
DLQ_REASON = "dlq_reason"
DLQ_DETAIL = "dlq_detail"
DLQ_SOURCE = "dlq_source"


def as_dict(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes] | None,
) -> dict[str, str]:
    """Headers decoded to text (the last value wins for a repeated name)."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (v or b"").decode("utf-8", "replace") for k, v in items}


def event_headers(
    *,
    event_type: str,
    schema_version: int,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    command_id: str,
    correlation_id: str,
    occurred_at: str,
    actor: str = "",
) -> Headers:
    """Every header DESIGN.md requires on an event (`actor` only when known)."""
    headers = [
        (EVENT_ID, str(uuid.uuid4()).encode()),
        (EVENT_TYPE, event_type.encode()),
        (SCHEMA_VERSION, str(schema_version).encode()),
        (AGGREGATE_TYPE, aggregate_type.encode()),
        (AGGREGATE_ID, aggregate_id.encode()),
        (AGGREGATE_VERSION, str(aggregate_version).encode()),
        (COMMAND_ID, command_id.encode()),
        (CORRELATION_ID, (correlation_id or command_id).encode()),
        (OCCURRED_AT, occurred_at.encode()),
    ]
    if actor:
        headers.append((ACTOR, actor.encode()))
    return headers
