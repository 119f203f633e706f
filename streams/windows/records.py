"""Reading a raw record of a windowed aggregation: Confluent Avro, or JSON for gateways that
cannot speak Avro, both against the record type's latest schema.

Avro records go through the codec (the one decode path: registry ids, resolution, upcasters).
A JSON object is checked field by field against the latest schema: a number where the schema
has a `double`/`float`/`long`/`int` (a string, `true` or `null` there is `non_numeric_value`),
a string where it has a `string`; missing fields take their default; unknown fields are ignored
(gateways add their own). Every failure is a `BadRecord` with a machine-readable reason.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from streams.core.windows import BadRecord
from streams.wire.codec import AvroCodec, DecodeError, MalformedRecord
from streams.wire.limits import DEFAULT_MAX_CHARS, MAX_LENGTH, CommandLimits, FieldTooLong
from streams.wire.schemas import from_record, to_record

_NUMBERS = {"double": float, "float": float, "long": int, "int": int}


class RecordDecoder:
    """Raw bytes -> an instance of the aggregation's record type, or `BadRecord`."""

    def __init__(self, codec: AvroCodec, record_type: type) -> None:
        self.codec = codec
        self.record_type = record_type
        self.type_name = record_type.__name__
        schema = json.loads(codec.catalog.latest(self.type_name).text)
        self._fields: list[tuple[str, Any, bool, Any]] = [
            (f["name"], f["type"], "default" in f, f.get("default")) for f in schema["fields"]
        ]
        # flat string fields are checked here directly (the hot path); anything nested by the limits
        self._strings = [
            (f["name"], int(f.get(MAX_LENGTH, DEFAULT_MAX_CHARS)))
            for f in schema["fields"]
            if f["type"] == "string" or (isinstance(f["type"], list) and "string" in f["type"])
        ]
        flat = all(_flat(f["type"]) for f in schema["fields"])
        self._limits = None if flat else CommandLimits(codec.catalog, [self.type_name])

    def decode(self, value: bytes | None) -> Any:
        """The record, or BadRecord (RegistryUnavailable passes through: not the record's fault)."""
        if not value:
            raise BadRecord("malformed_record", "the record has no value")
        if value[0] == 0:
            try:
                decoded = self.codec.decode(value)
            except DecodeError as exc:
                raise BadRecord(exc.reason, str(exc)) from None
            if decoded.type_name != self.type_name:
                raise BadRecord("unknown_type", f"a {decoded.type_name}, not a {self.type_name}")
            record = decoded.message
        elif value.lstrip()[:1] == b"{":
            record = self._from_json(value)
        else:
            raise BadRecord("malformed_record", "neither Confluent Avro (magic byte 0) nor a JSON object")
        for name, limit in self._strings:
            text = getattr(record, name, None)
            if isinstance(text, str) and (len(text) > limit or "\x00" in text):
                detail = f"{name} has {len(text)} characters; at most {limit}" if len(text) > limit else ""
                raise BadRecord(FieldTooLong.reason, detail or f"{name} contains U+0000")
        if self._limits is not None:
            try:
                self._limits.check(self.type_name, to_record(record))
            except FieldTooLong as exc:
                raise BadRecord(exc.reason, str(exc)) from None
        return record

    def _from_json(self, value: bytes) -> Any:
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadRecord("malformed_record", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadRecord("malformed_record", "a JSON record must be an object")
        record: dict[str, Any] = {}
        for name, kind, has_default, default in self._fields:
            if name not in data:
                if not has_default:
                    raise BadRecord("invalid_field", f"{name} is missing")
                record[name] = default
                continue
            record[name] = _checked(name, kind, data[name])
        try:
            return from_record(self.record_type, record)
        except Exception as exc:
            raise BadRecord(MalformedRecord.reason, f"{type(exc).__name__}: {exc}") from None


def _flat(kind: Any) -> bool:
    """A primitive type, or a union of primitives."""
    return isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(b, str) for b in kind))


def _checked(name: str, kind: Any, value: Any) -> Any:
    """`value` if it fits the Avro type `kind` (a float for an integer-valued double is fine)."""
    if isinstance(kind, list):  # a union: the first branch that fits
        for branch in kind:
            if branch == "null" and value is None:
                return None
            try:
                return _checked(name, branch, value)
            except BadRecord:
                continue
        raise BadRecord("invalid_field", f"{name}: {value!r} fits none of {kind}")
    if kind in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRecord("non_numeric_value", f"{name}: {json.dumps(value)[:100]} is not a number")
        if _NUMBERS[kind] is int:
            if isinstance(value, float) and not value.is_integer():
                raise BadRecord("invalid_field", f"{name}: {value} is not an integer")
            if not -(2**63) <= value < 2**63:
                raise BadRecord("invalid_field", f"{name}: {value} is out of range")
            return int(value)
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise BadRecord("invalid_field", f"{name}: {json.dumps(value)[:100]} is not a string")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BadRecord("invalid_field", f"{name}: {json.dumps(value)[:100]} is not a boolean")
        return value
    raise BadRecord("invalid_field", f"{name}: JSON records support flat fields only")
