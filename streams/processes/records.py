"""What a process manager's stage keeps and writes: its codec, instance records and store keys.

The stage's table (`<process>.process-changelog`, mirrored record for record in RocksDB) holds
two key spaces per partition:

- `I<correlation id>` -> a `streams.ProcessInstance` (Confluent Avro; the manager's state as JSON);
- `T<due ms, 8 bytes big-endian><correlation id>` -> empty: the index of pending deadlines, in
  due order, so each loop turn finds what fell due with one bounded scan.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from streams.config import Settings
from streams.core.clock import utc_now
from streams.core.processes import (
    PENDING,
    DeadlineReached,
    Instance,
    ProcessInstance,
    ProcessManager,
)
from streams.wire.codec import AvroCodec
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog

PROCESS_TYPES: tuple[type, ...] = (ProcessInstance, DeadlineReached)
"""The framework's process records (schemas in `schemas/streams/`)."""
INSTANCE = b"I"
DUE = b"T"
SOURCE_HEADER = "process_source"
"""On a re-keyed input (`<process>.process-inputs`): the context whose event (or result) it is."""
INPUT_HEADER = "process_input"
"""On a re-keyed input: `result` for a command result (absent: an event)."""
RESULT = "result"


def process_catalog() -> SchemaCatalog:
    """The schemas of the process records."""
    return SchemaCatalog([SCHEMAS_DIR / "streams"], PROCESS_TYPES)


def process_codec(settings: Settings) -> AvroCodec:
    """A codec for the process records, registered under the deployment's subjects."""
    return AvroCodec.connect(process_catalog(), settings.registry_url, settings.topic_prefix)


def instance_key(correlation_id: str) -> bytes:
    """The store key of an instance."""
    return INSTANCE + correlation_id.encode()


def due_key(due_ms: int, correlation_id: str) -> bytes:
    """The index key of an instance's pending deadline due at `due_ms`."""
    return DUE + struct.pack(">q", due_ms) + correlation_id.encode()


def split_due_key(key: bytes) -> tuple[int, str]:
    """(due ms, correlation id) of an index key."""
    return struct.unpack(">q", key[1:9])[0], key[9:].decode()


def due_keys(instance: Instance[Any] | None) -> set[bytes]:
    """The index keys of an instance's pending deadlines."""
    if instance is None:
        return set()
    return {due_key(d.due_ms, instance.correlation_id) for d in instance.deadlines if d.status == PENDING}


class InstanceFormat:
    """Instances to and from their `streams.ProcessInstance` record."""

    def __init__(self, pm: ProcessManager[Any], codec: AvroCodec) -> None:
        self.pm = pm
        self.codec = codec
        self._decoder = msgspec.json.Decoder(pm.state_type)

    def encode(self, instance: Instance[Any]) -> bytes:
        """The record of an instance."""
        record = ProcessInstance(
            self.pm.name, instance.correlation_id, msgspec.json.encode(instance.state).decode(),
            instance.version, instance.deadlines, instance.sent, utc_now(),
        )  # fmt: skip
        return self.codec.encode(record)

    def decode(self, raw: bytes) -> Instance[Any]:
        """The instance of a record."""
        record: ProcessInstance = self.codec.decode(raw).message
        return self.of(record)

    def of(self, record: ProcessInstance) -> Instance[Any]:
        """The instance of a decoded record."""
        state = self._decoder.decode(record.state)
        return Instance(record.correlation_id, state, record.version, record.deadlines, record.sent)
