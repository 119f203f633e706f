"""Avro binary encoders and decoders generated per schema, for the hot path.

fastavro interprets a parsed schema for every record (~4 µs to write and ~3 µs to read a small
record here); a function generated once per schema, as `dataclasses` generates `__init__`, does
the same work in straight-line code: attribute reads, a table of pre-encoded small varints, one
`b"".join`. Encoders read a message object (or its record dict); decoders build the message
class directly, with no intermediate dict.

They are accelerators, not a second definition of Avro: the codec falls back to fastavro whenever
a generated function raises (a value of an unexpected type, a number outside the small-varint
table's fast path that is out of range, a truncated or malformed record), so errors and edge
cases keep fastavro's behaviour, and a property test checks that both give the same bytes and the
same messages. Schemas with logical types or unions other than `["null", T]` are not compiled.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any

from streams.core.records import is_record_class

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int], Any]

_SMALL = 8192
"""Varints of -_SMALL.._SMALL-1 come from a table (two bytes at most)."""
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Unsupported(Exception):
    """The schema (or its class) uses something the generator does not compile."""


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    if n.__class__ is not int and not isinstance(n, int):
        raise TypeError(f"{n!r} is not an integer")
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit a long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _int32(n: int) -> bytes:
    if not _INT_MIN <= n <= _INT_MAX:
        raise OverflowError(f"{n} does not fit an int")
    return zigzag(n)


_TABLE = [zigzag(n) for n in range(-_SMALL, _SMALL)]


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at `pos`: (value, next position)."""
    shift = z = 0
    while True:
        byte = data[pos]
        pos += 1
        z |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _bad(value: Any) -> bytes:
    raise TypeError(f"{value!r} has the wrong type for its Avro field")


def _fields_of(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls) if is_record_class(cls) else {}


class _Generator:
    """Source text of the functions of one top-level schema (records nest as functions)."""

    def __init__(self, by_object: bool) -> None:
        self.by_object = by_object
        self.scope: dict[str, Any] = {
            "T": _TABLE, "S": _SMALL, "Z": zigzag, "I": _int32, "RL": read_long, "BAD": _bad,
            "D": struct.Struct("<d"), "F": struct.Struct("<f"), "tuple": tuple,
        }  # fmt: skip
        self.functions: list[str] = []
        self.names: dict[tuple[str, str], str] = {}
        self.named: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.fresh("k")
        self.scope[name] = value
        return name

    def resolve(self, schema: Any) -> Any:
        """A type reference by name, replaced by its definition."""
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        if isinstance(schema, dict):
            if "logicalType" in schema:
                raise Unsupported(f"logical type {schema['logicalType']}")
            if schema.get("type") in ("record", "enum", "fixed"):
                name = schema["name"]
                namespace = schema.get("namespace")
                full = name if "." in name or not namespace else f"{namespace}.{name}"
                self.named[full] = schema
                self.named[name] = schema
            elif isinstance(schema.get("type"), str) and schema["type"] in self.named:
                return self.named[schema["type"]]
        return schema

    # --- encoding: statements that append the value of expression `v` through `a` -----------

    def encode(self, schema: Any, v: str, hint: Any, indent: str) -> list[str]:
        schema = self.resolve(schema)
        kind = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
        if isinstance(schema, list):
            return self._encode_union(schema, v, hint, indent)
        if isinstance(kind, (dict, list)):
            return self.encode(kind, v, hint, indent)
        if kind == "null":
            return [f"{indent}if {v} is not None: BAD({v})"]
        if kind == "boolean":
            return [f"{indent}a((b'\\x01' if {v} else b'\\x00') if {v}.__class__ is bool else BAD({v}))"]
        if kind in ("long", "int"):
            slow = "Z" if kind == "long" else "I"
            return [f"{indent}a(T[{v} + S] if -S <= {v} < S else {slow}({v}))"]
        if kind in ("double", "float"):
            return [f"{indent}a({'D' if kind == 'double' else 'F'}.pack({v}))"]
        if kind in ("string", "bytes"):
            s = self.fresh("s")
            to_bytes = f"{v}.encode()" if kind == "string" else f"bytes({v})"
            if kind == "bytes":
                return [
                    f"{indent}if not isinstance({v}, (bytes, bytearray)): BAD({v})",
                    f"{indent}{s} = {to_bytes}",
                    f"{indent}a(T[len({s}) + S] if len({s}) < S else Z(len({s}))); a({s})",
                ]
            return [
                f"{indent}{s} = {v}.encode()",
                f"{indent}a(T[len({s}) + S] if len({s}) < S else Z(len({s}))); a({s})",
            ]
        if kind == "enum":
            index = self.constant({s: zigzag(i) for i, s in enumerate(schema["symbols"])})
            return [f"{indent}a({index}[{v}])"]
        if kind == "fixed":
            size = int(schema["size"])
            return [f"{indent}if len({v}) != {size}: BAD({v})", f"{indent}a(bytes({v}))"]
        if kind == "array":
            return self._encode_array(schema["items"], v, hint, indent)
        if kind == "map":
            return self._encode_map(schema["values"], v, hint, indent)
        if kind == "record":
            fn = self.record_encoder(schema, self._record_class(hint))
            return [f"{indent}{fn}({v}, a)"]
        raise Unsupported(f"Avro type {schema!r}")

    def _encode_union(self, branches: list[Any], v: str, hint: Any, indent: str) -> list[str]:
        resolved = [self.resolve(b) for b in branches]
        kinds = [b if isinstance(b, str) else b.get("type") for b in resolved]
        if len(branches) != 2 or "null" not in kinds:
            raise Unsupported(f"union {branches!r}")
        null_at = kinds.index("null")
        other = resolved[1 - null_at]
        if isinstance(other, list) or (isinstance(other, dict) and other.get("type") == "record"):
            raise Unsupported(f"union {branches!r}")
        inner = _optional_inner(hint)
        body = self.encode(other, v, inner, indent + "    ")
        return [
            f"{indent}if {v} is None: a({zigzag(null_at)!r})",
            f"{indent}else:",
            f"{indent}    a({zigzag(1 - null_at)!r})",
            *body,
        ]

    def _encode_array(self, items: Any, v: str, hint: Any, indent: str) -> list[str]:
        x = self.fresh("x")
        n = self.fresh("n")
        body = self.encode(items, x, _item_hint(hint), indent + "        ")
        return [
            f"{indent}{n} = len({v})",
            f"{indent}if {n}:",
            f"{indent}    a(T[{n} + S] if {n} < S else Z({n}))",
            f"{indent}    for {x} in {v}:",
            *body,
            f"{indent}a(b'\\x00')",
        ]

    def _encode_map(self, values: Any, v: str, hint: Any, indent: str) -> list[str]:
        key, x, n, s = self.fresh("key"), self.fresh("x"), self.fresh("n"), self.fresh("s")
        value_hint = typing.get_args(hint)[1] if len(typing.get_args(hint)) == 2 else None
        body = self.encode(values, x, value_hint, indent + "        ")
        return [
            f"{indent}{n} = len({v})",
            f"{indent}if {n}:",
            f"{indent}    a(T[{n} + S] if {n} < S else Z({n}))",
            f"{indent}    for {key}, {x} in {v}.items():",
            f"{indent}        {s} = {key}.encode()",
            f"{indent}        a(T[len({s}) + S] if len({s}) < S else Z(len({s}))); a({s})",
            *body,
            f"{indent}a(b'\\x00')",
        ]

    def record_encoder(self, schema: dict[str, Any], cls: type | None) -> str:
        """The name of the function appending one record of `schema` (generated once)."""
        key = ("enc", schema["name"])
        if key in self.names:
            return self.names[key]
        fn = self.names[key] = self.fresh("enc")
        hints = _fields_of(cls) if cls is not None else {}
        if self.by_object and cls is not None:
            missing = [f["name"] for f in schema["fields"] if f["name"] not in hints]
            if missing:
                raise Unsupported(f"{cls.__name__} lacks fields {missing}")
        lines = [f"def {fn}(o, a):"]
        for field in schema["fields"]:
            name = field["name"]
            access = f"o.{name}" if self.by_object else f"o[{name!r}]"
            v = self.fresh("v")
            lines.append(f"    {v} = {access}")
            lines += self.encode(field["type"], v, hints.get(name), "    ")
        if len(lines) == 1:
            lines.append("    pass")
        self.functions.append("\n".join(lines))
        return fn

    def _record_class(self, hint: Any) -> type | None:
        if is_record_class(hint):
            return typing.cast(type, hint)
        if self.by_object:
            raise Unsupported(f"nested record without a dataclass ({hint!r})")
        return None

    # --- decoding: statements that read a value into variable `v` from `b` at `p` ------------

    def decode(self, schema: Any, v: str, hint: Any, indent: str) -> list[str]:
        schema = self.resolve(schema)
        kind = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
        if isinstance(schema, list):
            return self._decode_union(schema, v, hint, indent)
        if isinstance(kind, (dict, list)):
            return self.decode(kind, v, hint, indent)
        if kind == "null":
            return [f"{indent}{v} = None"]
        if kind == "boolean":
            return [
                f"{indent}{v} = b[p]; p += 1",
                f"{indent}if {v} > 1: BAD({v})",
                f"{indent}{v} = {v} == 1",
            ]
        if kind in ("long", "int"):
            return self._read_long(v, indent)
        if kind in ("double", "float"):
            s = "D" if kind == "double" else "F"
            size = 8 if kind == "double" else 4
            return [f"{indent}{v}, = {s}.unpack_from(b, p); p += {size}"]
        if kind in ("string", "bytes"):
            n = self.fresh("n")
            convert = ".decode()" if kind == "string" else ""
            return [
                *self._read_long(n, indent),
                f"{indent}if {n} < 0 or p + {n} > len(b): BAD({n})",
                f"{indent}{v} = b[p:p + {n}]{convert}; p += {n}",
            ]
        if kind == "enum":
            symbols = self.constant(tuple(schema["symbols"]))
            i = self.fresh("i")
            checked = f"{indent}if {i} < 0: BAD({i})"
            return [*self._read_long(i, indent), checked, f"{indent}{v} = {symbols}[{i}]"]
        if kind == "fixed":
            size = int(schema["size"])
            return [
                f"{indent}if p + {size} > len(b): BAD(p)",
                f"{indent}{v} = b[p:p + {size}]; p += {size}",
            ]
        if kind == "array":
            return self._decode_blocks(schema["items"], None, v, _item_hint(hint), indent)
        if kind == "map":
            value_hint = typing.get_args(hint)[1] if len(typing.get_args(hint)) == 2 else None
            return self._decode_blocks(schema["values"], "string", v, value_hint, indent)
        if kind == "record":
            cls = self._record_class(hint)
            if cls is None:
                raise Unsupported("decoding needs a dataclass for every record")
            fn = self.record_decoder(schema, cls)
            return [f"{indent}{v}, p = {fn}(b, p)"]
        raise Unsupported(f"Avro type {schema!r}")

    def _read_long(self, v: str, indent: str) -> list[str]:
        return [
            f"{indent}{v} = b[p]",
            f"{indent}if {v} < 128: {v} = ({v} >> 1) ^ -({v} & 1); p += 1",
            f"{indent}else: {v}, p = RL(b, p)",
        ]

    def _decode_union(self, branches: list[Any], v: str, hint: Any, indent: str) -> list[str]:
        resolved = [self.resolve(b) for b in branches]
        kinds = [b if isinstance(b, str) else b.get("type") for b in resolved]
        if len(branches) != 2 or "null" not in kinds:
            raise Unsupported(f"union {branches!r}")
        null_at = kinds.index("null")
        other = resolved[1 - null_at]
        if isinstance(other, list) or (isinstance(other, dict) and other.get("type") == "record"):
            raise Unsupported(f"union {branches!r}")
        i = self.fresh("i")
        return [
            *self._read_long(i, indent),
            f"{indent}if {i} == {null_at}: {v} = None",
            f"{indent}elif {i} == {1 - null_at}:",
            *self.decode(other, v, _optional_inner(hint), indent + "    "),
            f"{indent}else: BAD({i})",
        ]

    def _decode_blocks(self, item: Any, key: str | None, v: str, hint: Any, indent: str) -> list[str]:
        out, count, x, k, ignored = (self.fresh(s) for s in ("out", "c", "x", "kk", "bs"))
        inner = indent + "    "
        lines = [
            f"{indent}{out} = {{}}" if key else f"{indent}{out} = []",
            f"{indent}while True:",
            *self._read_long(count, inner),
            f"{inner}if not {count}: break",
            f"{inner}if {count} < 0:",
            f"{inner}    {count} = -{count}",
            *self._read_long(ignored, inner + "    "),
            f"{inner}for _ in range({count}):",
        ]
        if key:
            lines += self.decode("string", k, None, inner + "    ")
        lines += self.decode(item, x, hint, inner + "    ")
        lines.append(f"{inner}    {out}[{k}] = {x}" if key else f"{inner}    {out}.append({x})")
        lines.append(f"{indent}{v} = {out}" if key else f"{indent}{v} = tuple({out})")
        return lines

    def record_decoder(self, schema: dict[str, Any], cls: type) -> str:
        """The name of the function reading one record of `schema` into `cls` (generated once)."""
        key = ("dec", schema["name"])
        if key in self.names:
            return self.names[key]
        fn = self.names[key] = self.fresh("dec")
        hints = _fields_of(cls)
        names = [f["name"] for f in schema["fields"]]
        if set(names) != set(hints):
            raise Unsupported(f"{cls.__name__}'s fields differ from {schema['name']}'s")
        self.scope[f"C{fn}"] = cls
        lines = [f"def {fn}(b, p):"]
        args = []
        for field in schema["fields"]:
            v = self.fresh("v")
            lines += self.decode(field["type"], v, hints[field["name"]], "    ")
            if typing.get_origin(hints[field["name"]]) is tuple:
                pass  # arrays are read as tuples already
            args.append(f"{field['name']}={v}")
        lines.append(f"    return C{fn}({', '.join(args)}), p")
        self.functions.append("\n".join(lines))
        return fn

    def build(self, entry: str) -> Any:
        exec("\n\n".join(self.functions) + "\n\n" + entry, self.scope)  # our own generated source
        return self.scope


def _item_hint(hint: Any) -> Any:
    args = typing.get_args(hint)
    return args[0] if args else None


def _optional_inner(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def compile_encoder(schema: dict[str, Any], cls: type | None, header: bytes) -> Encoder:
    """`header` + the Avro body of a message of `cls` (or, with `cls` None, of a record dict)."""
    gen = _Generator(by_object=cls is not None)
    fn = gen.record_encoder(schema, cls)
    gen.scope["HEADER"] = header
    entry = f"def encode(o):\n    parts = [HEADER]\n    {fn}(o, parts.append)\n    return b''.join(parts)\n"
    return typing.cast(Encoder, gen.build(entry)["encode"])


def compile_decoder(schema: dict[str, Any], cls: type) -> Decoder:
    """The message of `cls` whose Avro body (written with `schema`) starts at `pos` of `data`.

    Raises on anything but a record that ends exactly at the end of `data`.
    """
    gen = _Generator(by_object=True)
    fn = gen.record_decoder(schema, cls)
    entry = f"def decode(b, p):\n    m, p = {fn}(b, p)\n    if p != len(b): BAD(p)\n    return m\n"
    return typing.cast(Decoder, gen.build(entry)["decode"])
