"""Kafka record headers: the event metadata of DESIGN.md and the command metadata."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from streams.wire.topics import HEADER_OVERHEAD

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
# read-side headers
RETRACT = "view_retract"
"""On a re-keyed record without a value: the aggregate of its headers moved away from this
document's key (a view whose key changes); its version is the event that moved it."""
VIEW_POSITION = "view_position"
"""On a view (or key changelog) record: the next input offset of its partition once the batch
that wrote it was folded in. A new owner of the partition restores from there."""
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


def pick(headers: Iterable[tuple[str, bytes | None]] | None, names: frozenset[str]) -> dict[str, str]:
    """Only the named headers, decoded (cheaper than `as_dict` on a hot path)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or () if k in names}


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
        (EVENT_ID, new_event_id()),
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


class EventHeaders:
    """`event_headers` for one event type of one context, with the values that never change
    (type, schema version, aggregate type) encoded once: the hot path's form.

    `size` is what the headers add to `streams.wire.topics.record_size` of the event.
    """

    __slots__ = ("_aggregate_type", "_type", "_version", "event_type", "fixed_size")

    def __init__(self, event_type: str, schema_version: int, aggregate_type: str) -> None:
        self.event_type = event_type
        self._type = (EVENT_TYPE, event_type.encode())
        self._version = (SCHEMA_VERSION, str(schema_version).encode())
        self._aggregate_type = (AGGREGATE_TYPE, aggregate_type.encode())
        names = [EVENT_ID, EVENT_TYPE, SCHEMA_VERSION, AGGREGATE_TYPE, AGGREGATE_ID]
        names += [AGGREGATE_VERSION, COMMAND_ID, CORRELATION_ID, OCCURRED_AT]
        self.fixed_size = sum(HEADER_OVERHEAD + len(n) for n in names) + 36  # + the event id
        self.fixed_size += len(self._type[1]) + len(self._version[1]) + len(self._aggregate_type[1])

    def build(
        self,
        aggregate_id: bytes,
        version: int,
        command_id: bytes,
        correlation_id: bytes,
        occurred_at: bytes,
        actor: bytes,
    ) -> tuple[Headers, int]:
        """The headers of one event (an empty correlation id: the command id), and their size."""
        aggregate_version = str(version).encode()
        correlation_id = correlation_id or command_id
        headers = [
            (EVENT_ID, new_event_id()), self._type, self._version, self._aggregate_type,
            (AGGREGATE_ID, aggregate_id), (AGGREGATE_VERSION, aggregate_version),
            (COMMAND_ID, command_id), (CORRELATION_ID, correlation_id), (OCCURRED_AT, occurred_at),
        ]  # fmt: skip
        size = self.fixed_size + len(aggregate_id) + len(aggregate_version) + len(command_id)
        size += len(correlation_id) + len(occurred_at)
        if actor:
            headers.append((ACTOR, actor))
            size += HEADER_OVERHEAD + len(ACTOR) + len(actor)
        return headers, size


_event_ids: list[bytes] = []
_POOL = 1024


def new_event_id() -> bytes:
    """A random (version 4) UUID as text, the same as `str(uuid.uuid4()).encode()`.

    Ids are made 1,024 at a time, from one read of random bytes, with the version and variant
    bits set on the pool and one hex conversion for all of it: a system call and the
    formatting per id were half the cost of an event's headers.
    """
    try:
        return _event_ids.pop()
    except IndexError:
        raw = bytearray(os.urandom(16 * _POOL))
        raw[6::16] = bytes([(b & 0x0F) | 0x40 for b in raw[6::16]])
        raw[8::16] = bytes([(b & 0x3F) | 0x80 for b in raw[8::16]])
        h = raw.hex().encode()
        _event_ids.extend([
            b"-".join((h[i : i + 8], h[i + 8 : i + 12], h[i + 12 : i + 16], h[i + 16 : i + 20], h[i + 20 : i + 32]))  # noqa: E501
            for i in range(0, 32 * _POOL, 32)
        ])  # fmt: skip
        return _event_ids.pop()
