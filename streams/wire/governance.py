"""`streams schemas register | check | diff`: the schema files against the registry's rules.

Every command, event and state type of a context is a registry subject (record-name strategy:
the deployment's topic prefix, then the record's full name, e.g. `orders.ItemAdded`;
`streams.wire.topics.subject_name`) with a compatibility level: BACKWARD_TRANSITIVE unless the
context's policy says otherwise. A context declares its policy beside its schemas, in
`<schema dir>/compatibility.json` (`{"default": LEVEL, "subjects": {type or full name: LEVEL}}`),
so a package outside this repository declares its own; `schemas/compatibility.json` of this
checkout gives the default for contexts that declare none. `check` fails when the registry
holds a subject at a level weaker than the declared one, and `register` sets the declared levels.

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
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog, SchemaVersion, schema_dir
from streams.wire.topics import subject_name

POLICY_NAME = "compatibility.json"
DEFAULT_POLICY_FILE = SCHEMAS_DIR / POLICY_NAME
_GUARANTEES: dict[str, frozenset[str]] = {
    "NONE": frozenset(),
    "BACKWARD": frozenset({"backward"}),
    "BACKWARD_TRANSITIVE": frozenset({"backward", "backward-all"}),
    "FORWARD": frozenset({"forward"}),
    "FORWARD_TRANSITIVE": frozenset({"forward", "forward-all"}),
    "FULL": frozenset({"backward", "forward"}),
    "FULL_TRANSITIVE": frozenset({"backward", "backward-all", "forward", "forward-all"}),
}
LEVELS = tuple(_GUARANTEES)


class PolicyError(ValueError):
    """A compatibility policy file that cannot be read or names unknown levels or types."""


def weaker(actual: str, declared: str) -> bool:
    """Whether a registry at level `actual` lets through a version that `declared` refuses."""
    return not _GUARANTEES.get(actual, frozenset()) >= _GUARANTEES[declared]


def _read_policy(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{path}: not a readable JSON policy: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("subjects", {}), dict):
        raise PolicyError(f'{path}: expected {{"default": LEVEL, "subjects": {{type: LEVEL}}}}')
    return raw


def policy_file(context: BoundedContext[Any]) -> Path:
    """Where a context declares its compatibility levels: beside its schema files."""
    return schema_dir(context) / POLICY_NAME


def load_policy(context: BoundedContext[Any], default_file: Path = DEFAULT_POLICY_FILE) -> dict[str, Any]:
    """The context's `{"default": LEVEL, "subjects": {type name: LEVEL}}`: its own
    `compatibility.json` over this checkout's default file (no file: BACKWARD_TRANSITIVE).
    Subjects may be named by type (`ItemAdded`) or record full name (`orders.ItemAdded`)."""
    policy: dict[str, Any] = {"default": "BACKWARD_TRANSITIVE", "subjects": {}}
    own = policy_file(context)
    names = {cls.__name__ for cls in (*context.commands, *context.events, context.state_type)}
    for path in (default_file, own):
        if not path.exists():
            continue
        raw = _read_policy(path)
        policy["default"] = raw.get("default", policy["default"])
        for key, level in raw.get("subjects", {}).items():
            type_name = key.removeprefix(f"{context.name}.")
            if path == own and type_name not in names:
                raise PolicyError(f"{path}: {key!r} is not a command, event or state of {context.name}")
            policy["subjects"][type_name] = level
        for level in (policy["default"], *policy["subjects"].values()):
            if level not in LEVELS:
                raise PolicyError(
                    f"{path}: unknown compatibility level {level!r} (one of {', '.join(LEVELS)})"
                )
    return policy


@dataclass
class Subject:
    """One type's schema history and the rules that govern it."""

    type_name: str
    versions: list[SchemaVersion]
    level: str
    upcasts: list[int]
    """Versions N with an upcaster N -> N + 1."""
    prefix: str = ""
    """The deployment's topic prefix (`subject_name`)."""

    @property
    def name(self) -> str:
        """The registry subject."""
        return subject_name(self.prefix, self.versions[-1].fullname)

    @property
    def registry_level(self) -> str:
        """What the registry is set to: the level, or NONE where upcasters split the history."""
        return "NONE" if self.upcasts and self.level != "NONE" else self.level

    def upcast_between(self, older: int, newer: int) -> bool:
        """Whether an upcaster covers the step from `older` to `newer`."""
        return any(older <= n < newer for n in self.upcasts)


def subjects(
    context: BoundedContext[Any], catalog: SchemaCatalog, policy: dict[str, Any], prefix: str = ""
) -> list[Subject]:
    """The governed subjects of a context (commands, events and the state) in the deployment
    whose topic prefix is `prefix`."""
    out = []
    for cls in (*context.commands, *context.events, context.state_type):
        name = cls.__name__
        level = policy["subjects"].get(name, policy["default"])
        out.append(Subject(name, catalog.versions(name), level, catalog.upcaster_versions(name), prefix))
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


def global_level(client: Any) -> str:
    """The registry's level for subjects without their own."""
    return str(client.get_compatibility())


def check(client: Any, subject: Subject, *, levels: bool = True) -> tuple[list[str], list[str]]:
    """(errors, notes) for one subject: local rules, the registry's level against the declared
    one (unless `levels` is False), then the registry's verdict on new versions."""
    errors = [str(p) for p in local_problems(subject)]
    notes = []
    if subject.upcasts:
        arrows = ", ".join(f"v{n}->v{n + 1}" for n in subject.upcasts)
        notes.append(f"{subject.name}: upcasters {arrows}; {subject.level} enforced locally within epochs")
    if client is None:
        return errors, notes
    exists = bool(_versions(client, subject.name))
    current = registry_level(client, subject.name) if exists else None
    if exists and levels:
        effective = current or global_level(client)
        shown = current or f"{effective} (the registry's global level)"
        if weaker(effective, subject.registry_level):
            errors.append(
                f"{subject.name}: registry level {shown} is weaker than the declared "
                f"{subject.registry_level} (run `streams schemas register`)"
            )
        elif effective != subject.registry_level:
            notes.append(f"{subject.name}: registry level {shown}, declared {subject.registry_level}")
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
