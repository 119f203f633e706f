"""`streams schemas register | check | diff`: the schema files against the registry's rules.

Every command, event and state type of a context is a registry subject (record-name strategy:
the record's full name, e.g. `orders.ItemAdded`) with a compatibility level: BACKWARD_TRANSITIVE
unless `schemas/compatibility.json` says otherwise for the subject.

A registry level applies to all versions of a subject; upcasters split a subject's history into
epochs (an upcaster `vN -> vN+1` exists precisely because vN+1 cannot read vN by Avro rules). So:

- a subject without upcasters gets its configured level in the registry, which enforces it on
  every registration, and `check` asks the registry (`test_compatibility`) about each version it
  does not hold yet;
- a subject with upcasters gets level NONE in the registry, and `check` enforces the configured
  level locally (Apache Avro's reader/writer compatibility checker) between versions of the same
  epoch; across an epoch boundary the upcaster answers for it, and the compatibility gate
  (tests/unit/test_versioning.py) proves it on stored samples.

In both cases `check` also runs the local check, which explains an incompatibility field by
field (the registry only answers yes or no).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import avro.compatibility as avro_compat
import avro.schema

from streams.core.decider import BoundedContext
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog, SchemaVersion

POLICY_FILE = SCHEMAS_DIR / "compatibility.json"
LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)


def load_policy(path: Path = POLICY_FILE) -> dict[str, Any]:
    """`{"default": LEVEL, "subjects": {subject: LEVEL}}` (missing file: BACKWARD_TRANSITIVE)."""
    policy: dict[str, Any] = {"default": "BACKWARD_TRANSITIVE", "subjects": {}}
    if path.exists():
        policy.update(json.loads(path.read_text()))
    for level in (policy["default"], *policy["subjects"].values()):
        if level not in LEVELS:
            raise ValueError(f"{path}: unknown compatibility level {level!r} (one of {', '.join(LEVELS)})")
    return policy


@dataclass
class Subject:
    """One type's schema history and the rules that govern it."""

    type_name: str
    versions: list[SchemaVersion]
    level: str
    upcasts: list[int]
    """Versions N with an upcaster N -> N + 1."""

    @property
    def name(self) -> str:
        return self.versions[-1].subject

    @property
    def registry_level(self) -> str:
        """What the registry is set to: the level, or NONE where upcasters split the history."""
        return "NONE" if self.upcasts and self.level != "NONE" else self.level

    def upcast_between(self, older: int, newer: int) -> bool:
        """Whether an upcaster covers the step from `older` to `newer`."""
        return any(older <= n < newer for n in self.upcasts)


def subjects(context: BoundedContext[Any], catalog: SchemaCatalog, policy: dict[str, Any]) -> list[Subject]:
    """The governed subjects of a context: commands, events and the state."""
    out = []
    for cls in (*context.commands, *context.events, context.state_type):
        versions = catalog.versions(cls.__name__)
        level = policy["subjects"].get(versions[-1].subject, policy["default"])
        out.append(Subject(cls.__name__, versions, level, catalog.upcaster_versions(cls.__name__)))
    return out


# --- local checks and diffs -----------------------------------------------------------------------


@dataclass
class Problem:
    """An incompatibility between a reader and a writer version, explained."""

    subject: str
    reader: int
    writer: int
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.subject}: v{self.reader} cannot read data written with v{self.writer}"
        return "\n".join([head, *(f"    {d}" for d in self.details)])


def _pairs(level: str, newest: int, versions: list[int]) -> Iterator[tuple[int, int]]:
    """(reader, writer) pairs the level requires when `newest` is added."""
    older = [v for v in versions if v < newest]
    if not older:
        return
    checked = older if level.endswith("_TRANSITIVE") else older[-1:]
    for v in checked:
        if level.startswith(("BACKWARD", "FULL")):
            yield newest, v
        if level.startswith(("FORWARD", "FULL")):
            yield v, newest


def compatible(reader: SchemaVersion, writer: SchemaVersion) -> list[str]:
    """Why `reader` cannot read `writer` data under Avro resolution rules (empty: it can)."""
    result = avro_compat.ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(reader.text), avro.schema.parse(writer.text)
    )
    if result.compatibility is avro_compat.SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(k.value for k in result.incompatibilities))
    where = ", ".join(sorted(result.locations))
    reasons = [f"{kinds} at {where}: {', '.join(sorted(result.messages))}"]
    return reasons + diff(writer, reader)


def local_problems(subject: Subject, only_version: int | None = None) -> list[Problem]:
    """The subject's level, enforced between versions not separated by an upcaster."""
    if subject.level == "NONE":
        return []
    numbers = [v.version for v in subject.versions]
    by_number = {v.version: v for v in subject.versions}
    problems = []
    for newest in numbers:
        if only_version is not None and newest != only_version:
            continue
        for reader, writer in _pairs(subject.level, newest, numbers):
            if subject.upcast_between(min(reader, writer), max(reader, writer)):
                continue
            reasons = compatible(by_number[reader], by_number[writer])
            if reasons:
                problems.append(Problem(subject.name, reader, writer, reasons))
    return problems


def _fields(sv: SchemaVersion) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json.loads(sv.text)["fields"]}


def _type(f: dict[str, Any]) -> str:
    return json.dumps(f["type"], separators=(",", ":"), sort_keys=True)


def diff(old: SchemaVersion, new: SchemaVersion) -> list[str]:
    """Field-level differences from `old` to `new`."""
    before, after = _fields(old), _fields(new)
    lines = []
    for name, f in after.items():
        if name not in before:
            default = f"default {json.dumps(f['default'])}" if "default" in f else "NO DEFAULT"
            lines.append(f"+ {name}: {_type(f)} ({default})")
    for name, f in before.items():
        if name not in after:
            lines.append(f"- {name}: {_type(f)}")
    for name in before.keys() & after.keys():
        b, a = before[name], after[name]
        if _type(b) != _type(a):
            lines.append(f"~ {name}: {_type(b)} -> {_type(a)}")
        if b.get("default", ...) != a.get("default", ...):
            lines.append(
                f"~ {name}: default {json.dumps(b.get('default', '(none)'))} -> "
                f"{json.dumps(a.get('default', '(none)'))}"
            )
    return sorted(lines, key=lambda line: line[2:])


# --- registry --------------------------------------------------------------------------------------


def registered(client: Any, subject: str, sv: SchemaVersion) -> bool:
    """Whether the registry holds this exact schema under the subject."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        client.lookup_schema(subject, Schema(sv.text, "AVRO"))
        return True
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return False
        raise


def registry_level(client: Any, subject: str) -> str | None:
    """The subject's own level in the registry (None: not set, the global level applies)."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return str(client.get_compatibility(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise


def check(client: Any, subject: Subject) -> tuple[list[str], list[str]]:
    """(errors, notes) for one subject: local rules, then the registry's verdict on new versions."""
    errors = [str(p) for p in local_problems(subject)]
    notes = []
    if subject.upcasts:
        arrows = ", ".join(f"v{n}->v{n + 1}" for n in subject.upcasts)
        notes.append(f"{subject.name}: upcasters {arrows}; {subject.level} enforced locally within epochs")
    if client is None:
        return errors, notes
    exists = bool(_versions(client, subject.name))
    current = registry_level(client, subject.name) if exists else None
    if exists and current != subject.registry_level:
        notes.append(
            f"{subject.name}: registry level is {current or 'unset (global)'}, "
            f"expected {subject.registry_level} (run `streams schemas register`)"
        )
    if not exists:
        notes.append(f"{subject.name}: new subject, {len(subject.versions)} version(s) to register")
        return errors, notes
    from confluent_kafka.schema_registry import Schema

    for sv in subject.versions:
        if registered(client, subject.name, sv):
            continue
        if subject.registry_level == "NONE":
            notes.append(f"{subject.name} v{sv.version}: new (registry level NONE)")
            continue
        if current == subject.registry_level:  # the registry enforces what we mean: ask it
            ok = client.test_compatibility(subject.name, Schema(sv.text, "AVRO"))
            if not ok:
                previous = subject.versions[subject.versions.index(sv) - 1]
                lines = [f"{subject.name} v{sv.version}: the registry ({current}) refuses it"]
                lines += [f"    {d}" for d in diff(previous, sv)]
                errors.append("\n".join(lines))
                continue
        notes.append(f"{subject.name} v{sv.version}: new, compatible")
    return errors, notes


def _versions(client: Any, subject: str) -> list[int]:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return list(client.get_versions(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return []
        raise


def register(client: Any, subject: Subject) -> list[str]:
    """Set the subject's registry level, then register its versions oldest first."""
    from confluent_kafka.schema_registry import Schema

    done = []
    if not _versions(client, subject.name):  # the level can only be set on an existing subject
        client.register_schema(subject.name, Schema(subject.versions[0].text, "AVRO"))
    client.set_compatibility(subject.name, subject.registry_level)
    for sv in subject.versions:
        schema_id = client.register_schema(subject.name, Schema(sv.text, "AVRO"))
        done.append(f"{subject.name} v{sv.version}: id {schema_id}")
    return done
