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

Personal fields of a state (`streams.core.records.Personal`) are sealed in the rows as in the
events (`streams.wire.state_sealing`): the generated row functions call the field's sealer and
opener, and the rows of a state without personal fields are built as before. Their cells are
bound to the class and field names: renaming a state class or a personal field of it needs
`streams rebuild` as well.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from streams.core.commands import Aggregate
from streams.core.records import RecordField, is_record_class, record_fields
from streams.privacy.errors import NoMasterKey
from streams.privacy.keys import Keyring
from streams.wire.codec import AvroCodec
from streams.wire.state_sealing import SealedStateField, has_personal, state_fields

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


def _compile_to_row(cls: type, keys: Callable[[], Keyring]) -> ToRow:
    hints = typing.get_type_hints(cls)
    personal = state_fields(cls, keys)
    scope: dict[str, Any] = {}
    items = []
    for i, f in enumerate(record_fields(cls)):
        if i in personal:
            scope[f"s{i}"] = personal[i].seal
            items.append(f"s{i}(o.{personal[i].field.subject_field}, o.{f.name})")
            continue
        nested, many = _dataclass_of(hints[f.name])
        if nested is None:
            items.append(f"o.{f.name}")
            continue
        scope[f"r{i}"] = _compile_to_row(nested, keys)
        items.append(f"[r{i}(v) for v in o.{f.name}]" if many else f"r{i}(o.{f.name})")
    exec(f"def to_row(o):\n    return [{', '.join(items)}]\n", scope)
    return typing.cast(ToRow, scope["to_row"])


def _compile_from_row(cls: type, keys: Callable[[], Keyring]) -> FromRow:
    hints = typing.get_type_hints(cls)
    fields = record_fields(cls)
    personal = state_fields(cls, keys)
    scope: dict[str, Any] = {"cls": cls}
    args = []
    for i, f in enumerate(fields):
        nested, many = _dataclass_of(hints[f.name])
        if i in personal:
            scope[f"p{i}"] = personal[i].open
            args.append(f"p{i}(r[{personal[i].subject_index}], r[{i}])")
        elif nested is not None:
            scope[f"r{i}"] = _compile_from_row(nested, keys)
            args.append(f"tuple([r{i}(v) for v in r[{i}]])" if many else f"r{i}(r[{i}])")
        elif typing.get_origin(hints[f.name]) is tuple:
            args.append(f"tuple(r[{i}])")
        else:
            args.append(f"r[{i}]")
    # a row written before the class gained fields is shorter: the defaults fill in
    scope["n"] = len(fields)
    scope["slow"] = lambda r: cls(*[_field(fields, hints, personal, keys, i, v, r) for i, v in enumerate(r)])
    source = (
        f"def from_row(r):\n    if len(r) != n:\n        return slow(r)\n    return cls({', '.join(args)})\n"
    )
    exec(source, scope)
    return typing.cast(FromRow, scope["from_row"])


def _field(
    fields: tuple[RecordField, ...],
    hints: dict[str, Any],
    personal: dict[int, SealedStateField],
    keys: Callable[[], Keyring],
    i: int,
    value: Any,
    row: list[Any],
) -> Any:
    if i in personal:
        return personal[i].open(row[personal[i].subject_index], value)
    nested, many = _dataclass_of(hints[fields[i].name])
    if nested is not None:
        build = _compile_from_row(nested, keys)
        return tuple(build(v) for v in value) if many else build(value)
    return tuple(value) if typing.get_origin(hints[fields[i].name]) is tuple else value


class StateFormat:
    """Encodes and decodes one context's aggregates for its changelog and RocksDB."""

    def __init__(self, state_type: type, codec: AvroCodec) -> None:
        self.state_type = state_type
        self.codec = codec
        self.sealed = has_personal(state_type)
        """Whether the state has personal fields (sealed in its rows; docs/privacy.md)."""
        keys = lambda: codec.keyring  # noqa: E731 - asked for only when a personal value is sealed or opened
        self._to_row = _compile_to_row(state_type, keys)
        self._from_row = _compile_from_row(state_type, keys)

    def forgets(self) -> int:
        """How many subjects the keyring has evicted so far (0 for a state without personal
        fields): when it changes, decoded states kept in memory may hold a forgotten subject's
        plain values, and must be read again from their sealed rows."""
        if not self.sealed:
            return 0
        try:
            return self.codec.keyring.evictions
        except NoMasterKey:
            return 0

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
