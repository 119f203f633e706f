"""Decoding records whose type has no class here (read models written by any version of a view)."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.wire.codec import DecodeError


class GenericDecoder:
    """Confluent-wire Avro -> dict for records of types we have no class for (read models)."""

    _HEADER = struct.Struct(">bI")

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self.registry = registry
        self._schemas: dict[int, tuple[str, Any]] = {}

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The record's full type name and its fields."""
        if len(data) < self._HEADER.size or data[0] != 0:
            raise DecodeError("not Confluent Avro wire format")
        _, schema_id = self._HEADER.unpack_from(data)
        if schema_id not in self._schemas:
            raw = json.loads(self.registry.get_schema(schema_id).schema_str or "")
            name = raw.get("name", "")
            if raw.get("namespace") and "." not in name:
                name = f"{raw['namespace']}.{name}"
            self._schemas[schema_id] = (name, fastavro.parse_schema(raw, named_schemas={}))
        name, parsed = self._schemas[schema_id]
        record = fastavro.schemaless_reader(io.BytesIO(data[self._HEADER.size :]), parsed, None)
        return name, dict(record)  # type: ignore[arg-type]
