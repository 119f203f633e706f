"""The steps of a read plan from an older schema version to the latest (`streams.wire.codec`):
an upcaster, or Avro schema resolution between two versions; each failure a codec error."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from streams.wire.codec_errors import NoUpcasterPath, UpcastFailed
from streams.wire.schemas import SchemaVersion

Step = Callable[[dict[str, Any]], dict[str, Any]]
"""One step of a read plan: a decoded record of one version in, the next version's out."""


class ResolutionHop:
    """Avro schema resolution of a decoded record from one version to another."""

    def __init__(self, source: SchemaVersion, target: SchemaVersion) -> None:
        self.source, self.target = source, target

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.source.parsed, record)
        except Exception as exc:
            raise UpcastFailed(
                f"upcast output is not a valid {self.source.type_name} v{self.source.version}: {exc}"
            ) from exc
        buf.seek(0)
        try:
            out = fastavro.schemaless_reader(buf, self.source.parsed, self.target.parsed)
        except SchemaResolutionError as exc:
            raise NoUpcasterPath(
                f"{self.source.type_name} v{self.source.version} -> v{self.target.version}: "
                f"no upcaster and Avro resolution fails: {exc}"
            ) from exc
        return out  # type: ignore[return-value]


class UpcastStep:
    """One upcaster step, turning its exceptions into `UpcastFailed`."""

    def __init__(self, type_name: str, version: int, fn: Step) -> None:
        self.type_name, self.version, self.fn = type_name, version, fn

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.fn(dict(record))
        except Exception as exc:
            raise UpcastFailed(
                f"upcaster {self.type_name} v{self.version} -> v{self.version + 1}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
