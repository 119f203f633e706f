"""Avro schema files and the mapping between record classes (dataclasses, msgspec Structs) and Avro records.

A message class `X` of context `ctx` is backed by `schemas/<ctx>/X.v<N>.avsc`; the highest N is
the version written. Conversions are compiled once per class (no `dataclasses.asdict` deep copy
on the hot path).
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streams.core.commands import AggregateSnapshot, CommandResult
from streams.core.decider import BoundedContext
from streams.core.records import is_record_class, record_fields
from streams.core.views import ReadModelDocument, ViewVersions

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_FILE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>\d+)\.avsc$")


class SchemaFileError(Exception):
    """A schema file is missing or does not match its class."""


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one message type's Avro schema."""

    type_name: str
    fullname: str
    version: int
    text: str
    parsed: Any

    @property
    def raw(self) -> dict[str, Any]:
        """The schema as JSON data."""
        return typing.cast(dict[str, Any], json.loads(self.text))


def _fullname(schema: dict[str, Any]) -> str:
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def load_schema_file(path: Path) -> SchemaVersion:
    """Parse one `.avsc` file named `<Type>.v<N>.avsc`."""
    match = SCHEMA_FILE.match(path.name)
    if match is None:
        raise SchemaFileError(f"{path}: expected a name like PlaceOrder.v1.avsc")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SchemaFileError(f"{path}: not readable as JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaFileError(f"{path}: not an Avro record schema")
    if str(raw.get("name", "")).split(".")[-1] != match["name"]:
        raise SchemaFileError(f"{path}: record name {raw.get('name')!r} != {match['name']!r}")
    try:
        parsed = fastavro.parse_schema(raw, named_schemas={})
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise SchemaFileError(f"{path}: not valid Avro: {exc}") from exc
    return SchemaVersion(
        type_name=match["name"],
        fullname=_fullname(raw),
        version=int(match["version"]),
        text=json.dumps(raw, separators=(",", ":"), sort_keys=True),
        parsed=parsed,
    )


Record = dict[str, Any]
Upcaster = Callable[[Record], Record]
"""A pure function from a decoded record of version N of a type to a record of version N + 1."""


class SchemaCatalog:
    """All schema versions of a set of message classes, loaded once, and their upcasters.

    `upcasters` maps `(type name, N)` to the function that turns a version-N record into a
    version-(N + 1) record; both versions must exist as schema files.
    """

    def __init__(
        self,
        directories: Iterable[Path],
        types: Iterable[type],
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self.types: dict[str, type] = {t.__name__: t for t in types}
        self.upcasters: dict[tuple[str, int], Upcaster] = dict(upcasters or {})
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_fullname: dict[str, str] = {}
        for directory in directories:
            for path in sorted(directory.glob("*.avsc")):
                sv = load_schema_file(path)
                if sv.type_name in self.types:
                    self._versions.setdefault(sv.type_name, []).append(sv)
                    self._by_fullname[sv.fullname] = sv.type_name
        for name in self.types:
            if name not in self._versions:
                raise SchemaFileError(f"no schema file for {name} in {list(directories)}")
            self._versions[name].sort(key=lambda v: v.version)
        for type_name, version in self.upcasters:
            known = {v.version for v in self._versions.get(type_name, [])}
            if version not in known or version + 1 not in known:
                raise SchemaFileError(
                    f"upcaster {type_name} v{version} -> v{version + 1}: "
                    f"both versions need a schema file (have {sorted(known)})"
                )

    def version(self, type_name: str, version: int) -> SchemaVersion:
        """One version of a type (KeyError when there is no such file)."""
        for sv in self._versions[type_name]:
            if sv.version == version:
                return sv
        raise KeyError(f"{type_name} v{version}")

    def upcaster_versions(self, type_name: str) -> list[int]:
        """The versions N of `type_name` that have an upcaster N -> N + 1, ascending."""
        return sorted(v for t, v in self.upcasters if t == type_name)

    def latest(self, type_name: str) -> SchemaVersion:
        """The version that writers use."""
        return self._versions[type_name][-1]

    def versions(self, type_name: str) -> list[SchemaVersion]:
        """Every version, oldest first."""
        return list(self._versions[type_name])

    def all_versions(self) -> list[SchemaVersion]:
        """Every version of every type."""
        return [v for vs in self._versions.values() for v in vs]

    def type_for_fullname(self, fullname: str) -> str | None:
        """The class name behind an Avro record full name, if it is one of ours."""
        return self._by_fullname.get(fullname)


# --- dataclass <-> Avro record --------------------------------------------------------------

ToRecord = Callable[[Any], dict[str, Any]]
FromRecord = Callable[[dict[str, Any]], Any]
_to_cache: dict[type, ToRecord] = {}
_from_cache: dict[type, FromRecord] = {}


def _nested_item(hint: Any) -> type | None:
    """The dataclass in `tuple[X, ...]`, if the field holds nested records."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if args and is_record_class(args[0]):
            return typing.cast(type, args[0])
    return None


def _nested_one(hint: Any) -> type | None:
    """The dataclass of a field that holds one nested record (`X`), if it does."""
    if is_record_class(hint):
        return typing.cast(type, hint)
    return None


def to_record(obj: Any) -> dict[str, Any]:
    """A dataclass instance as an Avro-ready dict."""
    return _to_function(type(obj))(obj)


def from_record(cls: type, record: dict[str, Any]) -> Any:
    """Build a dataclass instance from a decoded Avro record (unknown keys are ignored)."""
    return _from_function(cls)(record)


def _to_function(cls: type) -> ToRecord:
    fn = _to_cache.get(cls)
    if fn is None:
        fn = _to_cache[cls] = _compile_to(cls)
    return fn


def _from_function(cls: type) -> FromRecord:
    fn = _from_cache.get(cls)
    if fn is None:
        fn = _from_cache[cls] = _compile_from(cls)
    return fn


# The conversions run for every message on the hot path, so each class gets a function generated
# for its fields (as `dataclasses` generates `__init__`): no per-field loop, getattr or type test.


def _compile_to(cls: type) -> ToRecord:
    hints = typing.get_type_hints(cls)
    scope: dict[str, Any] = {}
    items: list[str] = []
    for i, f in enumerate(record_fields(cls)):
        name = f.name
        many, one = _nested_item(hints[name]), _nested_one(hints[name])
        if many is not None:
            scope[f"c{i}"] = _to_function(many)
            items.append(f"{name!r}: [c{i}(v) for v in o.{name}]")
        elif one is not None:
            scope[f"c{i}"] = _to_function(one)
            items.append(f"{name!r}: c{i}(o.{name})")
        else:
            items.append(f"{name!r}: o.{name}")
    exec(f"def to_record(o):\n    return {{{', '.join(items)}}}\n", scope)
    return typing.cast(ToRecord, scope["to_record"])


def _compile_from(cls: type) -> FromRecord:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in record_fields(cls)]
    nested = {n: _nested_item(hints[n]) for n in names}
    single = {n: one for n in names if (one := _nested_one(hints[n])) is not None}
    tuples = {n for n in names if typing.get_origin(hints[n]) is tuple}

    def build(record: dict[str, Any]) -> Any:
        """Any subset of the fields (the class's defaults fill in the rest)."""
        kwargs: dict[str, Any] = {}
        for n in names:
            if n not in record:
                continue
            item = nested[n]
            value = record[n]
            if item is not None:
                value = tuple(from_record(item, v) for v in value)
            elif n in single:
                value = from_record(single[n], value)
            elif n in tuples:
                value = tuple(value)
            kwargs[n] = value
        return cls(**kwargs)

    # fast path: a record with every field (the usual case after Avro schema resolution)
    scope: dict[str, Any] = {"cls": cls, "build": build}
    args: list[str] = []
    for i, n in enumerate(names):
        if nested[n] is not None:
            scope[f"c{i}"] = _from_function(typing.cast(type, nested[n]))
            args.append(f"{n}=tuple([c{i}(v) for v in r[{n!r}]])")
        elif n in single:
            scope[f"c{i}"] = _from_function(single[n])
            args.append(f"{n}=c{i}(r[{n!r}])")
        elif n in tuples:
            args.append(f"{n}=tuple(r[{n!r}])")
        else:
            args.append(f"{n}=r[{n!r}]")
    source = (
        "def from_record(r):\n"
        "    try:\n"
        f"        return cls({', '.join(args)})\n"
        "    except KeyError:\n"
        "        return build(r)\n"
    )
    exec(source, scope)
    return typing.cast(FromRecord, scope["from_record"])


# --- a context's catalog -----------------------------------------------------------------------

FRAMEWORK_TYPES: tuple[type, ...] = (CommandResult, AggregateSnapshot, ReadModelDocument, ViewVersions)
"""The framework's own records, written by every context (schemas in `schemas/streams/`)."""


def schema_dir(context: BoundedContext[Any]) -> Path:
    """Where a context's schema files (and its `compatibility.json`) live: its declared
    `schema_dir`, or `schemas/<name>/` of this checkout for the contexts shipped with streams."""
    return Path(context.schema_dir) if context.schema_dir else SCHEMAS_DIR / context.name


def catalog_for(context: BoundedContext[Any]) -> SchemaCatalog:
    """Schemas of a context's messages, state and raw window inputs, plus the framework's own records."""
    records = tuple(w.record_type for w in context.windows)  # raw inputs of windowed aggregations
    types = (*context.commands, *context.events, context.state_type, *records, *FRAMEWORK_TYPES)
    return SchemaCatalog([schema_dir(context), SCHEMAS_DIR / "streams"], types, context.upcasters)
