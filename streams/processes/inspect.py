"""A process instance as its stage last committed it, read from the changelog (for people:
`streams process <name> <correlation id>`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.config import Settings
from streams.core.processes import ProcessInstance
from streams.kafka.readers import read_partition
from streams.processes.records import instance_key, process_codec
from streams.wire.codec import AvroCodec
from streams.wire.topics import ProcessTopics, partition_for


def committed_instance(
    settings: Settings, process: str, correlation_id: str, codec: AvroCodec | None = None
) -> ProcessInstance | None:
    """The last committed record of the instance (None: the process has no such instance);
    `codec` (default: a new `process_codec`) lets a long-lived caller register the schemas once."""
    topic = ProcessTopics(process, settings.topic_prefix).changelog
    key = instance_key(correlation_id)
    found = None
    for msg in read_partition(settings, topic, partition_for(correlation_id.encode(), settings.partitions)):
        if msg.key() == key:
            found = msg.value()
    if found is None:
        return None
    record: ProcessInstance = (codec or process_codec(settings)).decode(found).message
    return record


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_json(record: ProcessInstance) -> dict[str, Any]:
    """The instance for people: its state, deadlines (with their due time) and commands sent."""
    return {
        "process": record.process,
        "correlation_id": record.correlation_id,
        "version": record.version,
        "state": orjson.loads(record.state),
        "deadlines": [
            {"name": d.name, "due": _iso(d.due_ms), "status": d.status, "deadline_id": d.deadline_id}
            for d in record.deadlines
        ],
        "sent": [
            {
                "command_id": c.command_id,
                "context": c.context,
                "aggregate_id": c.aggregate_id,
                "command_type": c.command_type,
                "status": c.status,
            }
            for c in record.sent
        ],
        "updated_at": record.updated_at,
    }
