"""Avro schemas derived from record classes (frozen dataclasses, msgspec Structs).

A context writes its messages once, as classes; `derive_schemas(context)` gives the Avro record
schema of each command, event, state and raw window record, which `streams schemas generate`
writes as `.avsc` files for review and which `streams schemas check` and the conformance kit
compare with the files. The files stay what the workers load and register: a generated file is
reviewed and versioned like a hand-written one, and goes through the same compatibility gate.

| Python | Avro |
|---|---|
| `str`, `int`, `float`, `bool`, `bytes` | `string`, `long`, `double`, `boolean`, `bytes` |
| `Literal["a", "b"]` / `Literal[1, 2]` | `string` / `long` |
| `X \\| None` | `["null", X]` (`[X, "null"]` when the default is not None) |
| `tuple[X, ...]` | array of X (`list[X]` is refused: arrays are read as tuples) |
| `dict[str, X]` | map of X |
| a record class `R`, `tuple[R, ...]` | a nested record (named once, then referred to by name) |

The record's `doc` is the class docstring (whitespace collapsed); a field's default is the
class default; `Annotated[str, msgspec.Meta(max_length=N, description=...)]` adds the field's
`maxLength` (the command limits of `streams.wire.limits`) and `doc`; `Annotated[X, Personal(...)]`
makes the field personal (`streams.wire.personal`): `bytes` on the wire, with `streams.pii`,
`streams.subject`, `streams.erased` and `confluent:tags`. Anything else (enums,
datetimes, decimals, other unions) is refused with `UnsupportedType`, naming the field: keep
such a type's schema hand-written, or use `str` (ISO-8601 time, `streams.core.clock`) or integer
minor units.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from streams.core.decider import BoundedContext
from streams.core.records import is_record_class, personal_of, record_fields
from streams.wire.limits import MAX_LENGTH
from streams.wire.personal import ERASED, PII, SUBJECT, TAGS
from streams.wire.schemas import SCHEMA_FILE, SchemaCatalog, load_schema_file

Schema = dict[str, Any]
_PRIMITIVES: dict[Any, str] = {str: "string", int: "long", float: "double", bool: "boolean", bytes: "bytes"}
_NO_DEFAULT = object()


class UnsupportedType(TypeError):
    """A record class field whose type has no Avro mapping here; the message names the field."""


def context_types(context: BoundedContext[Any]) -> list[type]:
    """The classes a context's schemas are derived for: commands, events, the state and the raw
    records of its windowed aggregations."""
    records = [w.record_type for w in context.windows]
    return [*context.commands, *context.events, context.state_type, *records]


def derive_schemas(context: BoundedContext[Any]) -> dict[str, Schema]:
    """`{type name: Avro record schema}` for every class of `context`, namespace = its name.

    Raises `UnsupportedType` for the first field that cannot be mapped.
    """
    return {cls.__name__: derive_schema(cls, context.name) for cls in context_types(context)}


def derive_schema(cls: type, namespace: str) -> Schema:
    """The Avro record schema of one record class."""
    return _Deriver(namespace).record(cls)


def record_doc(cls: type) -> str | None:
    """A class's docstring on one line (None when it has none of its own)."""
    doc = cls.__dict__.get("__doc__")
    if not doc or (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")):
        return None  # dataclasses make up a signature when there is no docstring
    return " ".join(doc.split())


class _Deriver:
    """One schema's derivation: named records are defined once, then referred to by full name."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.defined: set[str] = set()

    def record(self, cls: type) -> Schema:
        fullname = f"{self.namespace}.{cls.__name__}"
        self.defined.add(fullname)
        schema: Schema = {"type": "record", "name": cls.__name__, "namespace": self.namespace}
        doc = record_doc(cls)
        if doc:
            schema["doc"] = doc
        hints = typing.get_type_hints(cls, include_extras=True)
        schema["fields"] = [self.field(cls, name, hints[name], default) for name, default in _defaults(cls)]
        return schema

    def field(self, cls: type, name: str, hint: Any, default: Any) -> Schema:
        where = f"{cls.__name__}.{name}"
        metas = list(_metas(hint))
        avro_type = self.type_of(_strip(hint), where, nullable_first=default is None)
        personal = personal_of(hint)
        if personal is not None:  # sealed on the wire (streams.wire.personal)
            avro_type = (
                [b if b == "null" else "bytes" for b in avro_type] if isinstance(avro_type, list) else "bytes"
            )
        out: Schema = {"name": name, "type": avro_type}
        if default is not _NO_DEFAULT:
            out["default"] = _json_default(default, where)
        for meta in metas:
            if meta.description:
                out["doc"] = " ".join(meta.description.split())
            if meta.max_length is not None:
                out[MAX_LENGTH] = meta.max_length
        if personal is not None:
            out[PII] = True
            out[SUBJECT] = personal.subject
            if personal.erased is not None:
                out[ERASED] = personal.erased
            if personal.tags:
                out[TAGS] = list(personal.tags)
        return out

    def type_of(self, hint: Any, where: str, *, nullable_first: bool = True) -> Any:
        """The Avro type of a (stripped) hint."""
        if hint in _PRIMITIVES:
            return _PRIMITIVES[hint]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Literal:
            kinds = {type(a) for a in args}
            if kinds in ({str}, {int}):
                return _PRIMITIVES[kinds.pop()]
            raise UnsupportedType(f"{where}: a Literal must hold only strings or only integers")
        if origin in (typing.Union, types.UnionType):
            others = [a for a in args if a is not type(None)]
            if len(others) != 1 or len(args) != 2:
                raise UnsupportedType(f"{where}: {_show(hint)}: only `X | None` unions are supported")
            inner = _strip(others[0])
            if is_record_class(inner):
                raise UnsupportedType(
                    f"{where}: an optional nested record is not supported (use `{inner.__name__}` or a tuple)"
                )
            branch = self.type_of(inner, where)
            return ["null", branch] if nullable_first else [branch, "null"]
        if origin is list or hint is list:
            # the decoders read arrays as tuples: a list field would not come back equal
            raise UnsupportedType(f"{where}: {_show(hint)}: use `tuple[X, ...]` (records are immutable)")
        if origin is tuple:
            if not (len(args) == 2 and args[1] is Ellipsis):
                raise UnsupportedType(f"{where}: {_show(hint)}: use `tuple[X, ...]` (fixed tuples are not)")
            return {"type": "array", "items": self.type_of(_strip(args[0]), where)}
        if origin in (dict, Mapping):
            if len(args) != 2 or args[0] is not str:
                raise UnsupportedType(f"{where}: {_show(hint)}: map keys must be `str`")
            value = _strip(args[1])
            if is_record_class(value):
                raise UnsupportedType(f"{where}: records as map values are not supported")
            return {"type": "map", "values": self.type_of(value, where)}
        if is_record_class(hint):
            fullname = f"{self.namespace}.{hint.__name__}"
            return fullname if fullname in self.defined else self.record(hint)
        raise UnsupportedType(f"{where}: {_show(hint)} has no Avro mapping; {_advice(hint)}")


def _defaults(cls: type) -> Iterator[tuple[str, Any]]:
    """(field name, default or _NO_DEFAULT) in declaration order."""
    rows: list[tuple[str, Any, Any]]
    if dataclasses.is_dataclass(cls):
        missing: Any = dataclasses.MISSING
        rows = [(f.name, f.default, f.default_factory) for f in dataclasses.fields(cls)]
    else:
        missing = msgspec.NODEFAULT
        rows = [(f.name, f.default, f.default_factory) for f in msgspec.structs.fields(cls)]
    for name, default, factory in rows:
        if default is not missing:
            yield name, default
        elif factory is not missing:
            yield name, factory()
        else:
            yield name, _NO_DEFAULT


def _json_default(value: Any, where: str) -> Any:
    """A Python default as Avro's JSON form of it."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro's JSON encoding of bytes defaults
    if isinstance(value, tuple | list):
        return [_json_default(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_default(v, where) for k, v in value.items()}
    if is_record_class(type(value)):
        names = [f.name for f in record_fields(type(value))]
        return {name: _json_default(getattr(value, name), where) for name in names}
    raise UnsupportedType(f"{where}: default {value!r} has no Avro JSON form")


def _metas(hint: Any) -> Iterator[msgspec.Meta]:
    """The msgspec.Meta annotations of a field, including those of the X in `X | None`."""
    if typing.get_origin(hint) is typing.Annotated:
        yield from (m for m in hint.__metadata__ if isinstance(m, msgspec.Meta))
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is typing.Annotated:
                yield from (m for m in arg.__metadata__ if isinstance(m, msgspec.Meta))


def _strip(hint: Any) -> Any:
    """The hint without `Annotated[...]`, inside unions too."""
    if typing.get_origin(hint) is typing.Annotated:
        return _strip(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.Union[tuple(_strip(a) for a in typing.get_args(hint))]  # noqa: UP007
    return hint


def _show(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _advice(hint: Any) -> str:
    name = getattr(hint, "__name__", "")
    if name in ("datetime", "date", "time"):
        return "use `str` (ISO-8601, streams.core.clock) or `int` epoch milliseconds"
    if name == "Decimal":
        return "use `int` minor units (cents)"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "use `str` or a `Literal[...]` of its values"
    return "keep this class's schema hand-written, or use a supported type"


# --- comparing a derived schema with a schema file -------------------------------------------------


def wire_form(schema: Any, namespace: str | None = None) -> Any:
    """A schema without what does not change the wire format or the rules (`doc`), with every
    named type's namespace spelled out: two schemas agree when their wire forms are equal."""
    if isinstance(schema, list):
        return [wire_form(s, namespace) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k != "doc"}
    if out.get("type") in ("record", "enum", "fixed"):
        name = str(out["name"])
        if "." in name:
            namespace, out["name"] = name.rsplit(".", 1)
        else:
            namespace = out.get("namespace", namespace)
        out["namespace"] = namespace
    if out.get("type") == "record":
        out["fields"] = [
            {**{k: v for k, v in f.items() if k != "doc"}, "type": wire_form(f["type"], namespace)}
            for f in out["fields"]
        ]
    for key in ("items", "values"):
        if key in out:
            out[key] = wire_form(out[key], namespace)
    return out


def disagreement(derived: Schema, written: Schema) -> list[str]:
    """How a schema file differs from the class's derived schema, field by field (empty: agree)."""
    a, b = wire_form(derived), wire_form(written)
    if a == b:
        return []
    lines = []
    if {k: v for k, v in a.items() if k != "fields"} != {k: v for k, v in b.items() if k != "fields"}:
        lines.append(f"record {b.get('namespace')}.{b.get('name')} != {a.get('namespace')}.{a.get('name')}")
    ours = {f["name"]: f for f in a.get("fields", [])}
    theirs = {f["name"]: f for f in b.get("fields", [])}
    for name, f in ours.items():
        if name not in theirs:
            lines.append(f"+ {name}: {_compact(f)} (in the class, not in the file)")
        elif theirs[name] != f:
            lines.append(f"~ {name}: file {_compact(theirs[name])}, class {_compact(f)}")
    lines += [
        f"- {name}: {_compact(f)} (in the file, not in the class)"
        for name, f in theirs.items()
        if name not in ours
    ]
    if not lines and list(ours) != list(theirs):
        lines.append(f"field order: file {list(theirs)}, class {list(ours)}")
    return lines


def _compact(f: Schema) -> str:
    return json.dumps({k: v for k, v in f.items() if k != "name"}, separators=(",", ":"), sort_keys=True)


# --- generated files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """What `streams schemas generate` does for one type: `path` is the file to write (None: the
    latest file agrees with the class), `changes` how the class differs from that file."""

    type_name: str
    latest: int
    """The highest version on disk (0: none)."""
    schema: Schema
    path: Path | None
    changes: tuple[str, ...] = ()


def latest_files(directory: Path) -> dict[str, tuple[int, Path]]:
    """`{type name: (highest version, its file)}` of the `.avsc` files in a directory."""
    out: dict[str, tuple[int, Path]] = {}
    for path in directory.glob("*.avsc"):
        match = SCHEMA_FILE.match(path.name)
        if match is not None:
            version = int(match["version"])
            if version > out.get(match["name"], (0, path))[0]:
                out[match["name"]] = (version, path)
    return out


def plan(context: BoundedContext[Any], directory: Path) -> list[Planned]:
    """The files that bring `directory` in line with the context's classes: a v1 for a type with
    no file, a v(N+1) for one whose class no longer agrees with its vN (never an edit of an
    existing version: records written with it are in the log). Raises `UnsupportedType`,
    and `SchemaFileError` for an unreadable file."""
    existing = latest_files(directory) if directory.is_dir() else {}
    out = []
    for type_name, schema in derive_schemas(context).items():
        version, path = existing.get(type_name, (0, None))
        if path is None:
            out.append(Planned(type_name, 0, schema, directory / f"{type_name}.v1.avsc"))
            continue
        changes = disagreement(schema, load_schema_file(path).raw)
        target = directory / f"{type_name}.v{version + 1}.avsc" if changes else None
        out.append(Planned(type_name, version, schema, target, tuple(changes)))
    return out


def write(planned: Planned) -> None:
    """Write a planned file (indented JSON, as the hand-written files are)."""
    assert planned.path is not None
    planned.path.parent.mkdir(parents=True, exist_ok=True)
    planned.path.write_text(json.dumps(planned.schema, indent=2) + "\n")


def agreement(context: BoundedContext[Any], catalog: SchemaCatalog) -> tuple[list[str], list[str]]:
    """(problems, notes): each class against the latest version of its schema in `catalog`.
    A class whose types cannot be derived keeps a hand-written schema: a note, not a problem."""
    problems, notes = [], []
    for cls in context_types(context):
        try:
            derived = derive_schema(cls, context.name)
        except UnsupportedType as exc:
            notes.append(f"{cls.__name__}: hand-written schema, not derivable ({exc})")
            continue
        latest = catalog.latest(cls.__name__)
        changes = disagreement(derived, latest.raw)
        if changes:
            head = (
                f"{cls.__name__}: the class and {cls.__name__}.v{latest.version}.avsc disagree "
                "(`streams schemas generate` writes the next version)"
            )
            problems.append("\n".join([head, *(f"    {c}" for c in changes)]))
    return problems, notes
