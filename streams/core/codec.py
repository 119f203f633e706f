"""The one serializer path: message dataclasses <-> Confluent-wire-format Avro bytes.

Bytes are `0x00 | schema id (4 bytes, big endian) | Avro binary`, the format of confluent-kafka's
`AvroSerializer`, so any Confluent-compatible consumer or Connect converter reads our topics.
Schema ids are resolved once (registration at start-up, or one registry look-up for an id seen
for the first time); encoding and decoding then touch only in-memory caches.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.core.schemas import SchemaCatalog, SchemaVersion, from_record, to_record

_HEADER = struct.Struct(">bI")
MAGIC_BYTE = 0


class DecodeError(Exception):
    """A record cannot become a message. `reason` is machine-readable (DLQ header)."""

    reason = "decode_error"


class MalformedRecord(DecodeError):
    """Not Confluent Avro wire format, or the Avro body does not match its schema."""

    reason = "malformed_record"


class UnknownSchema(DecodeError):
    """The schema id is not known to the registry."""

    reason = "unknown_schema"


class UnknownType(DecodeError):
    """The schema is known, but its record type is not one this context handles."""

    reason = "unknown_type"


class RegistryUnavailable(Exception):
    """The registry could not be reached; the caller should retry, not drop the record."""


@dataclass(frozen=True)
class Decoded:
    """A decoded message with the type name and the writer's schema version."""

    type_name: str
    schema_version: int
    message: Any


@dataclass(frozen=True)
class _Writer:
    schema_id: int
    header: bytes
    version: SchemaVersion


@dataclass(frozen=True)
class _Reader:
    type_name: str
    version: int
    writer: Any
    reader: Any


class AvroCodec:
    """Encodes and decodes the message classes of a catalog, with registry-assigned ids."""

    def __init__(self, catalog: SchemaCatalog, registry: SchemaRegistryClient) -> None:
        self.catalog = catalog
        self.registry = registry
        self._writers: dict[type, _Writer] = {}
        self._readers: dict[int, _Reader] = {}

    @classmethod
    def connect(cls, catalog: SchemaCatalog, registry_url: str) -> AvroCodec:
        """A codec whose schemas are registered (raises RegistryUnavailable when down)."""
        codec = cls(catalog, SchemaRegistryClient({"url": registry_url, "timeout": 10}))
        codec.register()
        return codec

    def register(self) -> None:
        """Register every known version (idempotent) and prepare writers for the latest."""
        try:
            for sv in self.catalog.all_versions():
                schema_id = self.registry.register_schema(sv.subject, Schema(sv.text, "AVRO"))
                self._readers[schema_id] = self._reader_for(sv.type_name, sv.version, sv.parsed)
                if sv is self.catalog.latest(sv.type_name):
                    cls_ = self.catalog.types[sv.type_name]
                    header = _HEADER.pack(MAGIC_BYTE, schema_id)
                    self._writers[cls_] = _Writer(schema_id, header, sv)
        except (SchemaRegistryError, OSError, ValueError) as exc:
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:  # requests' connection errors are not OSError subclasses
            if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
                raise RegistryUnavailable(f"schema registry: {exc}") from exc
            raise

    def _reader_for(self, type_name: str, version: int, writer: Any) -> _Reader:
        return _Reader(type_name, version, writer, self.catalog.latest(type_name).parsed)

    def schema_id(self, cls: type) -> int:
        """The registry id written for `cls`."""
        return self._writers[cls].schema_id

    def version_of(self, cls: type) -> int:
        """The schema version written for `cls`."""
        return self._writers[cls].version.version

    def encode(self, message: Any) -> bytes:
        """Serialize a message with the latest schema of its type."""
        writer = self._writers[type(message)]
        out = io.BytesIO()
        out.write(writer.header)
        fastavro.schemaless_writer(out, writer.version.parsed, to_record(message))
        return out.getvalue()

    def decode(self, data: bytes | None) -> Decoded:
        """Deserialize bytes written by any registered version of a known type."""
        if data is None or len(data) < _HEADER.size or data[0] != MAGIC_BYTE:
            raise MalformedRecord("not Confluent Avro wire format (magic byte 0 + schema id)")
        _, schema_id = _HEADER.unpack_from(data)
        reader = self._readers.get(schema_id) or self._resolve(schema_id)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(data[_HEADER.size :]), reader.writer, reader.reader
            )
            cls = self.catalog.types[reader.type_name]
            message = from_record(cls, record)  # type: ignore[arg-type]
        except Exception as exc:
            raise MalformedRecord(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        return Decoded(reader.type_name, reader.version, message)

    def _resolve(self, schema_id: int) -> _Reader:
        """Fetch an id we did not register ourselves (another producer's) once, then cache."""
        try:
            schema = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchema(f"schema id {schema_id} is not in the registry") from exc
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        try:
            raw = json.loads(schema.schema_str or "")
            writer = fastavro.parse_schema(raw, named_schemas={})
        except Exception as exc:
            raise UnknownSchema(f"schema id {schema_id} is not an Avro record: {exc}") from exc
        fullname = raw.get("name", "") if isinstance(raw, dict) else ""
        if isinstance(raw, dict) and raw.get("namespace") and "." not in fullname:
            fullname = f"{raw['namespace']}.{fullname}"
        type_name = self.catalog.type_for_fullname(fullname)
        if type_name is None:
            raise UnknownType(f"schema id {schema_id} is {fullname or '?'}, not a known type")
        canonical = json.dumps(raw, separators=(",", ":"), sort_keys=True)
        version = next((v.version for v in self.catalog.versions(type_name) if v.text == canonical), 0)
        reader = self._reader_for(type_name, version, writer)
        self._readers[schema_id] = reader
        return reader
