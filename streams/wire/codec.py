"""The one serializer path: message dataclasses <-> Confluent-wire-format Avro bytes.

Bytes are `0x00 | schema id (4 bytes, big endian) | Avro binary`, the format of confluent-kafka's
`AvroSerializer`, so any Confluent-compatible consumer or Connect converter reads our topics.
Schema ids are resolved once (registration at start-up, or one registry look-up for an id seen
for the first time); encoding and decoding then touch only in-memory caches.

Reading an older version yields the latest class. Per schema id a read plan is compiled once:
where the catalog has upcasters (`(type, N) -> N + 1`) from the writer's version on, the record
is read with its own schema, and each step is either an upcaster or an Avro schema resolution
hop between two versions (for stretches without upcasters); without upcasters the record is read
directly with Avro schema resolution to the latest schema. A version that neither path can read
raises `NoUpcasterPath`.

Personal fields (`streams.wire.personal`) are sealed on write and opened on read with the
codec's keyring (`streams.wire.sealing`), so messages hold plain values; types without them take
the generated encoders and decoders, untouched.
"""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
import fastavro.validation
import httpx
import msgspec
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError

from streams.privacy.keys import Keyring, ephemeral_keyring
from streams.wire.avro_compiled import Decoder, Encoder, Unsupported, compile_decoder, compile_encoder
from streams.wire.codec_errors import (
    DecodeError,
    IncompatibleSchema,
    MalformedField,
    MalformedRecord,
    NoUpcasterPath,
    RegistryUnavailable,
    TamperedField,
    UnknownSchema,
    UnknownType,
    UpcastFailed,
)
from streams.wire.personal import PersonalPlan, personal_plan
from streams.wire.schemas import SchemaCatalog, SchemaVersion, from_record, to_record
from streams.wire.sealing import SealedWriter, Sealing, write_avro
from streams.wire.topics import subject_name
from streams.wire.upcasting import ResolutionHop, Step, UpcastStep

__all__ = [
    "AvroCodec",
    "DecodeError",
    "Decoded",
    "IncompatibleSchema",
    "MalformedField",
    "MalformedRecord",
    "NoUpcasterPath",
    "RegistryUnavailable",
    "TamperedField",
    "UnknownSchema",
    "UnknownType",
    "UpcastFailed",
]

_HEADER = struct.Struct(">bI")
MAGIC_BYTE = 0


class Decoded(msgspec.Struct, frozen=True):
    """A decoded message with the type name and the writer's schema version."""

    type_name: str
    schema_version: int
    message: Any
    erased: tuple[str, ...] = ()
    """Personal fields read as their replacement: their data subject was forgotten."""


@dataclass(frozen=True)
class _Writer:
    schema_id: int
    header: bytes
    version: SchemaVersion
    of_object: Encoder | None = None
    """Generated encoder of a message object (None: the schema is not compiled)."""
    sealed: SealedWriter | None = None
    """The writer of a type with personal fields, sealed before encoding (None: it has none)."""


@dataclass(frozen=True)
class _Reader:
    type_name: str
    version: int
    writer: Any
    reader: Any
    """Reader schema of the first read (None: the writer's own, no resolution)."""
    steps: tuple[Step, ...] = ()
    """Upcasters and resolution hops after the first read, ending at the latest version."""
    check: Any = None
    """The latest schema when the last step is an upcaster (its output is validated)."""
    target: int = 0
    """The version the first read resolves to."""
    direct: Decoder | None = None
    """Generated decoder, when the writer's schema is the latest (no resolution, no steps)."""
    personal: PersonalPlan | None = None
    """The latest version's personal fields, opened after the steps (None: it has none)."""


class AvroCodec:
    """Encodes and decodes the message classes of a catalog, with registry-assigned ids."""

    settle_s: float = 90.0
    """For this long after the registry was last seen unavailable, a 404 for a schema id is not
    a verdict on the record: a restarted registry (Apicurio on kafkasql) answers before it has
    replayed its journal, and serves the ids it registered first (this worker's own) before the
    later ones (another producer's)."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        registry: SchemaRegistryClient | None,
        registry_url: str = "",
        subject_prefix: str = "",
        keyring: Keyring | Callable[[], Keyring] | None = None,
    ) -> None:
        self.catalog = catalog
        self.registry = registry
        self.registry_url = registry_url.rstrip("/")
        self.subject_prefix = subject_prefix
        """The deployment's topic prefix: its subjects are `<prefix><record full name>`."""
        self._writers: dict[type, _Writer] = {}
        self._readers: dict[int, _Reader] = {}
        self._ids: dict[tuple[str, int], int] = {}
        self._unavailable_at = float("-inf")
        """When (time.monotonic) the registry last failed to answer a schema id look-up."""
        self._sealing = Sealing(keyring)
        self._plans = {
            name: personal_plan(name, self.catalog.latest(name).raw) for name in self.catalog.types
        }

    @property
    def keyring(self) -> Keyring:
        """The keys personal fields are sealed with (`NoMasterKey` when none is configured)."""
        return self._sealing.keyring

    def personal(self, type_name: str) -> PersonalPlan | None:
        """The personal fields of a type's latest version (None: it has none)."""
        return self._plans.get(type_name)

    @classmethod
    def offline(
        cls, catalog: SchemaCatalog, keyring: Keyring | Callable[[], Keyring] | None = None
    ) -> AvroCodec:
        """A codec without a registry: ids are assigned locally (tests, the compatibility gate).

        Encoding and decoding take exactly the same path as with registry-assigned ids. Without
        a keyring, personal fields are sealed with keys in memory (`ephemeral_keyring`).
        """
        codec = cls(catalog, None, keyring=keyring or ephemeral_keyring)
        for schema_id, sv in enumerate(catalog.all_versions(), start=1):
            codec._install(sv, schema_id)
        return codec

    @classmethod
    def connect(
        cls,
        catalog: SchemaCatalog,
        registry_url: str,
        subject_prefix: str = "",
        keyring: Keyring | Callable[[], Keyring] | None = None,
    ) -> AvroCodec:
        """A codec whose schemas are registered under the deployment's subjects (`subject_prefix`
        is its topic prefix; raises RegistryUnavailable when the registry is down). `keyring`
        (or a function building it on first use) seals and opens personal fields."""
        registry = SchemaRegistryClient({"url": registry_url, "timeout": 10})
        codec = cls(catalog, registry, registry_url, subject_prefix, keyring)
        codec.register()
        return codec

    def register(self) -> None:
        """Register every known version (idempotent) and prepare writers for the latest."""
        assert self.registry is not None, "an offline codec has no registry"
        try:
            for sv in self.catalog.all_versions():
                subject = subject_name(self.subject_prefix, sv.fullname)
                try:
                    schema_id = self.registry.register_schema(subject, Schema(sv.text, "AVRO"))
                except SchemaRegistryError as exc:
                    if exc.http_status_code in (409, 422):
                        raise IncompatibleSchema(
                            f"{subject} v{sv.version} refused by the registry: {exc.error_message}"
                        ) from exc
                    raise
                self._install(sv, schema_id)
        except (SchemaRegistryError, OSError, ValueError) as exc:
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:  # requests' connection errors are not OSError subclasses
            if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
                raise RegistryUnavailable(f"schema registry: {exc}") from exc
            raise

    def _install(self, sv: SchemaVersion, schema_id: int) -> None:
        self._readers[schema_id] = self._reader_for(sv.type_name, sv.version, sv.parsed)
        self._ids[(sv.type_name, sv.version)] = schema_id
        if sv is self.catalog.latest(sv.type_name):
            cls_ = self.catalog.types[sv.type_name]
            header = _HEADER.pack(MAGIC_BYTE, schema_id)
            raw = json.loads(sv.text)
            personal = self._plans.get(sv.type_name)
            if personal is None:
                self._writers[cls_] = _Writer(
                    schema_id, header, sv, _compiled(compile_encoder, raw, cls_, header)
                )
                return
            # a personal type's objects hold plain values: only its sealed record dicts encode
            of_record = _compiled(compile_encoder, raw, None, header)
            sealed = SealedWriter(header, sv.parsed, personal, of_record)
            self._writers[cls_] = _Writer(schema_id, header, sv, sealed=sealed)

    def _reader_for(self, type_name: str, version: int, writer: Any) -> _Reader:
        """The read plan for one writer schema (compiled once per schema id)."""
        latest = self.catalog.latest(type_name)
        personal = self._plans.get(type_name)
        ups = [v for v in self.catalog.upcaster_versions(type_name) if v >= version]
        if version == latest.version:  # the writer's schema is the latest: read it directly
            cls_ = self.catalog.types[type_name]
            direct = None if personal else _compiled(compile_decoder, json.loads(latest.text), cls_)
            return _Reader(
                type_name, version, writer, latest.parsed, target=version, direct=direct, personal=personal
            )
        if version == 0 or not ups:  # unknown writer version, or nothing to upcast: resolve
            return _Reader(
                type_name, version, writer, latest.parsed, target=latest.version, personal=personal
            )
        first = ups[0]
        reader = None if first == version else self.catalog.version(type_name, first).parsed
        steps: list[Step] = []
        current = first
        version_of = self.catalog.version
        for v in ups:
            if v > current:
                steps.append(ResolutionHop(version_of(type_name, current), version_of(type_name, v)))
            steps.append(UpcastStep(type_name, v, self.catalog.upcasters[(type_name, v)]))
            current = v + 1
        check = latest.parsed
        if current < latest.version:
            steps.append(ResolutionHop(version_of(type_name, current), latest))
            check = None
        return _Reader(type_name, version, writer, reader, tuple(steps), check, first, personal=personal)

    def schema_id(self, cls: type) -> int:
        """The registry id written for `cls`."""
        return self._writers[cls].schema_id

    def version_of(self, cls: type) -> int:
        """The schema version written for `cls`."""
        return self._writers[cls].version.version

    def schema_id_of(self, type_name: str, version: int) -> int:
        """The registry id of one (possibly historical) version of a type."""
        return self._ids[(type_name, version)]

    def encode_record(self, type_name: str, version: int, record: dict[str, Any]) -> bytes:
        """Serialize a plain record with a given (possibly historical) version: what a producer
        still on that version writes. For tests, samples and tools; services write `encode`."""
        sv = self.catalog.version(type_name, version)
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC_BYTE, self._ids[(type_name, version)]))
        fastavro.schemaless_writer(out, sv.parsed, record)
        return out.getvalue()

    def encode(self, message: Any) -> bytes:
        """Serialize a message with the latest schema of its type."""
        writer = self._writers[type(message)]
        if writer.sealed is not None:
            return writer.sealed.encode(to_record(message), self._sealing.keys)
        if writer.of_object is not None:
            try:
                return writer.of_object(message)
            except Exception:  # fastavro's path below decides and explains
                pass
        return self._write(writer, to_record(message))

    def _write(self, writer: _Writer, record: dict[str, Any]) -> bytes:
        return write_avro(writer.header, writer.version.parsed, record)

    def decode(self, data: bytes | None, *, keep_personal: bool = True) -> Decoded:
        """Deserialize bytes written by any registered version of a known type.

        `keep_personal=False` gives every personal field its replacement without opening it (no
        key is asked for): for copies that cannot be shredded (PostgreSQL rows, the real-time
        feed and its ring)."""
        if data is None or len(data) < _HEADER.size or data[0] != MAGIC_BYTE:
            raise MalformedRecord("not Confluent Avro wire format (magic byte 0 + schema id)")
        _, schema_id = _HEADER.unpack_from(data)
        reader = self._readers.get(schema_id) or self._resolve(schema_id)
        if reader.direct is not None:
            try:
                return Decoded(reader.type_name, reader.version, reader.direct(data, _HEADER.size))
            except Exception:  # fastavro's path below decides and explains
                pass
        try:
            record: Any = fastavro.schemaless_reader(
                io.BytesIO(data[_HEADER.size :]), reader.writer, reader.reader
            )
        except SchemaResolutionError as exc:
            raise NoUpcasterPath(
                f"schema id {schema_id}: {reader.type_name} v{reader.version or '?'} -> v{reader.target}: "
                f"no upcaster and Avro resolution fails: {exc}"
            ) from exc
        except Exception as exc:
            raise MalformedRecord(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        if reader.steps:
            for step in reader.steps:
                record = step(record)
            if reader.check is not None:
                _validate(reader, record)
        erased: tuple[str, ...] = ()
        if reader.personal is not None:
            record, erased = self._sealing.open(reader.personal, schema_id, record, keep_personal)
        try:
            cls = self.catalog.types[reader.type_name]
            message = from_record(cls, record)
        except Exception as exc:
            raise MalformedRecord(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        return Decoded(reader.type_name, reader.version, message, erased)

    def _resolve(self, schema_id: int) -> _Reader:
        """Fetch an id we did not register ourselves (another producer's) once, then cache."""
        if self.registry is None:
            raise UnknownSchema(f"schema id {schema_id} is not known (offline codec)")
        try:
            schema = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                if not self._registry_serves_own_ids():
                    raise self._unavailable(
                        f"schema registry answers 404 for schema id {schema_id} and for ids it gave "
                        "this worker: still loading its storage"
                    ) from exc
                if time.monotonic() - self._unavailable_at < self.settle_s:
                    raise RegistryUnavailable(
                        f"schema registry answers 404 for schema id {schema_id} within "
                        f"{self.settle_s:.0f} s of an outage: it may still be loading its storage"
                    ) from exc
                raise UnknownSchema(f"schema id {schema_id} is not in the registry") from exc
            raise self._unavailable(f"schema registry: {exc}") from exc
        except Exception as exc:
            raise self._unavailable(f"schema registry: {exc}") from exc
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

    def _unavailable(self, message: str) -> RegistryUnavailable:
        self._unavailable_at = time.monotonic()
        return RegistryUnavailable(message)

    def _registry_serves_own_ids(self) -> bool:
        """Whether the registry serves a schema id it gave this codec. A registry that has just
        restarted (Apicurio with kafkasql storage) answers 404 for every id until it has
        replayed its journal: a 404 then is not a verdict on the record. Asked over plain HTTP,
        past the client's cache."""
        if not self._ids or not self.registry_url:
            return True
        known = next(iter(self._ids.values()))
        try:
            response = httpx.get(f"{self.registry_url}/schemas/ids/{known}", timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _compiled(compile: Callable[..., Any], *args: Any) -> Any:
    """A generated encoder/decoder, or None where the generator does not cover the schema."""
    try:
        return compile(*args)
    except Unsupported:
        return None


def _validate(reader: _Reader, record: dict[str, Any]) -> None:
    """The last upcaster's output must be a valid latest-version record."""
    try:
        fastavro.validation.validate(record, reader.check, raise_errors=True)
    except Exception as exc:
        raise UpcastFailed(
            f"upcasting {reader.type_name} v{reader.version} gives an invalid latest record: {exc}"
        ) from exc
