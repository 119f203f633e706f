"""The rows of the seed's tables (EventStore, GenericReadModel, GenericSnapshots), derived from
the log's records. JSON columns are Avro strings typed `io.debezium.data.Json`, which the
Debezium JDBC sink binds as JSON (so `EventData->>'field'` works)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.core.clock import iso_to_ms
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.wire.codec import AvroCodec
from streams.wire.jsonable import json_bytes, to_json
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog


@dataclass(frozen=True)
class EventStoreRow:
    """A row of EventStore (schema `streams.sink.EventStoreRow`)."""

    EventID: str
    AggregateID: str
    AggregateType: str
    EventType: str
    EventData: str
    Metadata: str
    Timestamp: int
    Version: int


@dataclass(frozen=True)
class ReadModelKey:
    """Primary key of GenericReadModel: entity id and read-model type (`<ctx>.<view>`)."""

    EntityID: str
    EntityType: str


@dataclass(frozen=True)
class ReadModelRow:
    """The non-key columns of GenericReadModel."""

    State: str
    LastEventVersion: int
    LastUpdated: int


@dataclass(frozen=True)
class SnapshotRow:
    """A row of GenericSnapshots."""

    AggregateID: str
    AggregateType: str
    SnapshotData: str
    LastEventVersion: int
    Timestamp: int


SINK_TYPES: tuple[type, ...] = (EventStoreRow, ReadModelKey, ReadModelRow, SnapshotRow)


def sink_codec(settings: Settings) -> AvroCodec:
    """A codec for the sink row types (registered under the deployment's subjects)."""
    catalog = SchemaCatalog([SCHEMAS_DIR / "streams"], SINK_TYPES)
    return AvroCodec.connect(catalog, settings.registry_url, settings.topic_prefix)


def iso_to_millis(value: Any) -> int:
    """Epoch millis from an ISO-8601 string (or a number already in millis); 0 when unknown."""
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return iso_to_ms(value)
        except ValueError:
            return 0
    return 0


def json_text(value: Any) -> str:
    """A JSON document as text: strings are taken as JSON already (checked), others dumped."""
    if isinstance(value, str):
        json.loads(value)
        return value
    return json_bytes(value).decode()


def event_row(runtime: ContextRuntime, value: bytes, headers: dict[str, str], where: dict[str, Any]) -> Any:
    """EventStoreRow of one `<ctx>.events` record (personal fields as their replacement)."""
    decoded = runtime.codec.decode(value, keep_personal=False)  # PostgreSQL cannot be shredded
    metadata = {k: v for k, v in headers.items() if k not in (h.EVENT_ID, h.EVENT_TYPE)}
    metadata.update(where)
    return EventStoreRow(
        EventID=headers[h.EVENT_ID],
        AggregateID=headers.get(h.AGGREGATE_ID, ""),
        AggregateType=headers.get(h.AGGREGATE_TYPE, runtime.context.aggregate_type),
        EventType=headers.get(h.EVENT_TYPE, decoded.type_name),
        EventData=json_bytes(to_json(decoded.message)).decode(),
        Metadata=json_bytes(metadata).decode(),
        Timestamp=iso_to_millis(headers.get(h.OCCURRED_AT)),
        Version=int(headers.get(h.AGGREGATE_VERSION, "0")),
    )


def snapshot_row(runtime: ContextRuntime, value: bytes) -> Any:
    """SnapshotRow of one `<ctx>.snapshots` record (its state decoded to JSON)."""
    snapshot = runtime.codec.decode(value).message
    state = runtime.codec.decode(snapshot.state).message
    return SnapshotRow(
        AggregateID=snapshot.aggregate_id,
        AggregateType=snapshot.aggregate_type,
        SnapshotData=json_bytes(to_json(state)).decode(),
        LastEventVersion=snapshot.version,
        Timestamp=iso_to_millis(snapshot.taken_at),
    )


def readmodel_row(document: dict[str, Any]) -> Any:
    """ReadModelRow of a read-model document (`streams.ReadModelDocument`-like record)."""
    return ReadModelRow(
        State=json_text(document.get("state", "{}")),
        LastEventVersion=int(document.get("last_event_version", 0) or 0),
        LastUpdated=iso_to_millis(document.get("last_updated")) or int(time.time() * 1000),
    )


# --- what the tables accept ----------------------------------------------------------------------

VARCHAR_CHARS = 255
"""The seed's `VARCHAR(255)` identifier columns."""
_VARCHAR = frozenset({"AggregateID", "AggregateType", "EventType", "EntityID", "EntityType"})
_JSON = frozenset({"EventData", "Metadata", "State", "SnapshotData"})
_INT = frozenset({"Version", "LastEventVersion"})
_INT_MAX = 2**31 - 1


def sink_problem(row: Any) -> str:
    """Why PostgreSQL would refuse a row ("" when it would not): an identifier longer than its
    `VARCHAR(255)` column or holding U+0000, JSON holding U+0000 (jsonb cannot), a version past
    `INT`, an event id that is not a UUID. A refused row would stop the sink's task for good."""
    for name, value in row.__dict__.items():
        if name in _VARCHAR:
            if len(value) > VARCHAR_CHARS:
                return f"{name} has {len(value)} characters; the column holds {VARCHAR_CHARS}"
            if "\x00" in value:
                return f"{name} contains U+0000"
        elif name in _JSON and "\\u0000" in value:
            return f"{name} contains U+0000, which jsonb cannot hold"
        elif name in _INT and not -_INT_MAX - 1 <= value <= _INT_MAX:
            return f"{name} {value} is outside the INT column's range"
    if isinstance(row, EventStoreRow):
        try:
            uuid.UUID(row.EventID)
        except ValueError:
            return f"EventID {row.EventID[:64]!r} is not a UUID"
    return ""
