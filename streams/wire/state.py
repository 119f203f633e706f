"""The write side's internal state format: an aggregate as MessagePack rows, not Avro.

The state changelog and RocksDB hold every aggregate a batch changes, encoded once per batch,
and that encoding was the write path's largest cost (fastavro: ~75 µs for an order of 50 lines).
Nobody outside the worker reads it, so it needs no registry: an aggregate is `0xFF`, then
MessagePack (msgspec) of `[version, row]`, where a row is the state's field values in field
order and nested dataclasses are rows too (~7 µs and the size of Avro for that order).

The older format, `version (8 bytes, big endian) + Avro`, starts with a zero byte (versions are
below 2^56), so both are told apart by their first byte and read alike: a worker started on a
changelog written by an older one restores from it as it is.

Rows are positional: a state class may gain fields at its end (with defaults); a change that
reorders or removes fields needs `streams rebuild` (the changelog is the fold of the log).
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from streams.core.commands import Aggregate
from streams.core.records import RecordField, is_record_class, record_fields
from streams.wire.codec import AvroCodec

ROWS = b"\xff"
_AVRO_VERSION = struct.Struct(">q")
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()

ToRow = Callable[[Any], list[Any]]
FromRow = Callable[[list[Any]], Any]


def _dataclass_of(hint: Any) -> tuple[type | None, bool]:
    """(the dataclass a field holds, whether it holds a tuple of them)."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if args and is_record_class(args[0]):
            return typing.cast(type, args[0]), True
        return None, False
    if is_record_class(hint):
        return typing.cast(type, hint), False
    return None, False


def _compile_to_row(cls: type) -> ToRow:
    hints = typing.get_type_hints(cls)
    scope: dict[str, Any] = {}
    items = []
    for i, f in enumerate(record_fields(cls)):
        nested, many = _dataclass_of(hints[f.name])
        if nested is None:
            items.append(f"o.{f.name}")
            continue
        scope[f"r{i}"] = _compile_to_row(nested)
        items.append(f"[r{i}(v) for v in o.{f.name}]" if many else f"r{i}(o.{f.name})")
    exec(f"def to_row(o):\n    return [{', '.join(items)}]\n", scope)
    return typing.cast(ToRow, scope["to_row"])


def _compile_from_row(cls: type) -> FromRow:
    hints = typing.get_type_hints(cls)
    fields = record_fields(cls)
    scope: dict[str, Any] = {"cls": cls}
    args = []
    for i, f in enumerate(fields):
        nested, many = _dataclass_of(hints[f.name])
        if nested is not None:
            scope[f"r{i}"] = _compile_from_row(nested)
            args.append(f"tuple([r{i}(v) for v in r[{i}]])" if many else f"r{i}(r[{i}])")
        elif typing.get_origin(hints[f.name]) is tuple:
            args.append(f"tuple(r[{i}])")
        else:
            args.append(f"r[{i}]")
    # a row written before the class gained fields is shorter: the defaults fill in
    scope["n"] = len(fields)
    scope["slow"] = lambda r: cls(*[_field(fields, hints, i, v) for i, v in enumerate(r)])
    source = (
        f"def from_row(r):\n    if len(r) != n:\n        return slow(r)\n    return cls({', '.join(args)})\n"
    )
    exec(source, scope)
    return typing.cast(FromRow, scope["from_row"])


def _field(fields: tuple[RecordField, ...], hints: dict[str, Any], i: int, value: Any) -> Any:
    nested, many = _dataclass_of(hints[fields[i].name])
    if nested is not None:
        build = _compile_from_row(nested)
        return tuple(build(v) for v in value) if many else build(value)
    return tuple(value) if typing.get_origin(hints[fields[i].name]) is tuple else value


class StateFormat:
    """Encodes and decodes one context's aggregates for its changelog and RocksDB."""

    def __init__(self, state_type: type, codec: AvroCodec) -> None:
        self.state_type = state_type
        self.codec = codec
        self._to_row = _compile_to_row(state_type)
        self._from_row = _compile_from_row(state_type)

    def encode(self, aggregate: Aggregate[Any]) -> bytes:
        """`0xFF` + MessagePack of `[version, row]`."""
        return ROWS + _ENCODER.encode([aggregate.version, self._to_row(aggregate.state)])

    def decode(self, raw: bytes) -> Aggregate[Any]:
        """An aggregate in either format (the older one: version + Avro)."""
        if raw[:1] == ROWS:
            version, row = _DECODER.decode(memoryview(raw)[1:])
            return Aggregate(version, self._from_row(row))
        (version,) = _AVRO_VERSION.unpack_from(raw)
        return Aggregate(version, self.codec.decode(raw[_AVRO_VERSION.size :]).message)

    def encode_avro(self, aggregate: Aggregate[Any]) -> bytes:
        """The older format (what workers before this one wrote)."""
        return _AVRO_VERSION.pack(aggregate.version) + self.codec.encode(aggregate.state)
