"""`streams schemas check|register|diff|generate`: schema files against the record classes and
the registry's compatibility rules (docs/versioning.md).

Bad input (an unknown context or type, a missing directory, an unreadable schema or policy file,
an unreachable registry) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from streams.config import Settings

console = Console(soft_wrap=True)  # a line per finding, however narrow the terminal

_PREFIX = click.option(
    "--prefix",
    default=None,
    help="The deployment's topic prefix, which its subjects carry (default: STREAMS_TOPIC_PREFIX).",
)


@click.group()
def schemas() -> None:
    """Schema files against the record classes and the registry's compatibility rules."""


@contextmanager
def _bad_input() -> Iterator[None]:
    """Turn the errors of bad input into one line and exit status 1."""
    from streams.wire.derive import UnsupportedType
    from streams.wire.governance import PolicyError
    from streams.wire.schemas import SchemaFileError

    try:
        yield
    except (SchemaFileError, PolicyError, UnsupportedType) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyError as exc:  # the context registry's "unknown context" (a KeyError's str is quoted)
        raise click.ClickException(str(exc.args[0]) if exc.args else "unknown name") from None


def _context(name: str) -> Any:
    from streams.contexts.registry import get_context

    return get_context(name)


def _contexts(name: str | None) -> list[Any]:
    from streams.contexts.registry import contexts

    return [_context(name)] if name else [_context(n) for n in contexts()]


def _schema_subjects(context: Any, prefix: str) -> list[Any]:
    from streams.wire.governance import load_policy, subjects
    from streams.wire.schemas import catalog_for

    return subjects(context, catalog_for(context), load_policy(context), prefix)


@contextmanager
def _registry(settings: Settings, offline: bool = False) -> Iterator[Any]:
    """A registry client (None when offline); an unreachable or failing registry is one line."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    url = settings.registry_url
    try:
        yield None if offline else SchemaRegistryClient({"url": url, "timeout": 10})
    except SchemaRegistryError as exc:
        raise click.ClickException(f"schema registry at {url}: {exc}") from None
    except Exception as exc:  # requests' connection errors: the registry is not there
        name = type(exc).__name__.lower()
        if "connect" in name or "timeout" in name:
            raise click.ClickException(f"schema registry at {url} is not reachable") from None
        raise


@schemas.command("check")
@click.argument("context", required=False)
@click.option("--offline", is_flag=True, help="Only the local rules; do not ask the registry.")
@_PREFIX
def schemas_check(context: str | None, offline: bool, prefix: str | None) -> None:
    """Test every schema version against its subject's rules and the registry's level, and
    every record class against its latest schema; exit 1 if one fails."""
    from streams.wire.derive import agreement
    from streams.wire.governance import check
    from streams.wire.schemas import catalog_for

    settings = Settings()
    prefix = settings.topic_prefix if prefix is None else prefix
    with _bad_input():
        chosen = [(ctx, _schema_subjects(ctx, prefix)) for ctx in _contexts(context)]
        agreements = [agreement(ctx, catalog_for(ctx)) for ctx, _ in chosen]
    problems = [p for found, _ in agreements for p in found]
    notes = [n for _, found in agreements for n in found]
    with _registry(settings, offline) as client:
        for subject in (s for _, subjects in chosen for s in subjects):
            errors, found = check(client, subject)
            problems += errors
            notes += found
    for note in notes:
        console.print(f"[dim]{escape(note)}[/dim]", highlight=False)
    for problem in problems:
        console.print(f"[red]FAILED[/red] {escape(problem)}", highlight=False)
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/red]")
        sys.exit(1)
    console.print("[green]all schema versions are compatible and agree with their classes[/green]")


@schemas.command("register")
@click.argument("context", required=False)
@_PREFIX
def schemas_register(context: str | None, prefix: str | None) -> None:
    """Check, then set each subject's declared compatibility level and register every version."""
    from streams.wire.governance import check, register

    settings = Settings()
    prefix = settings.topic_prefix if prefix is None else prefix
    with _bad_input():
        chosen = [s for ctx in _contexts(context) for s in _schema_subjects(ctx, prefix)]
    with _registry(settings) as client:
        # a level weaker than declared is what `register` repairs: only incompatible versions stop it
        errors = [e for subject in chosen for e in check(client, subject, levels=False)[0]]
        if errors:
            for error in errors:
                console.print(f"[red]INCOMPATIBLE[/red] {escape(error)}", highlight=False)
            sys.exit(1)
        for subject in chosen:
            for line in register(client, subject):
                console.print(f"{line} ({subject.registry_level})", highlight=False)


@schemas.command("diff")
@click.argument("context")
@click.argument("type_name")
@click.option("--from", "old", type=int, default=None, help="Older version (default: the one before --to).")
@click.option("--to", "new", type=int, default=None, help="Newer version (default: the latest).")
def schemas_diff(context: str, type_name: str, old: int | None, new: int | None) -> None:
    """Field-level differences between two versions of a type, with the Avro verdict."""
    from streams.wire.governance import compatible, diff

    with _bad_input():
        subject = next((s for s in _schema_subjects(_context(context), "") if s.type_name == type_name), None)
    if subject is None:
        raise click.ClickException(f"{type_name} is not a command, event or state of {context}")
    by_number = {v.version: v for v in subject.versions}
    new = new or subject.versions[-1].version
    old = old or new - 1
    if old not in by_number or new not in by_number:
        raise click.ClickException(f"{type_name} has versions {sorted(by_number)}")
    console.print(f"{subject.name} v{old} -> v{new}", highlight=False)
    for line in diff(by_number[old], by_number[new]) or ["(no field changes)"]:
        console.print(f"  {line}", highlight=False, markup=False)
    reasons = compatible(by_number[new], by_number[old])
    if subject.upcast_between(old, new):
        console.print("  read through upcaster(s): " + ", ".join(f"v{n}->v{n + 1}" for n in subject.upcasts))
    elif reasons:
        console.print(f"  v{new} cannot read v{old} data: {reasons[0]}", highlight=False, markup=False)
    else:
        console.print(f"  v{new} reads v{old} data by Avro schema resolution")


@schemas.command("generate")
@click.argument("context")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="An existing directory to compare with and write to (default: the context's schema directory).",
)
@click.option("--check", "check_only", is_flag=True, help="Write nothing; exit 1 if a file would be written.")
def schemas_generate(context: str, directory: Path | None, check_only: bool) -> None:
    """Write the Avro schemas derived from the context's record classes: `<Type>.v1.avsc` for a
    type without a file, `<Type>.v<N+1>.avsc` for one whose class no longer agrees with its
    latest file (existing files are never edited). Review them, then `streams schemas check`."""
    from streams.wire.derive import plan, write
    from streams.wire.schemas import schema_dir

    if directory is not None and not directory.is_dir():
        raise click.ClickException(f"--dir {directory}: no such directory")
    with _bad_input():
        ctx = _context(context)
        target = directory if directory is not None else schema_dir(ctx)
        planned = plan(ctx, target)
    pending = [p for p in planned if p.path is not None]
    for p in planned:
        if p.path is None:
            console.print(f"{p.type_name}: v{p.latest} agrees with the class", highlight=False, markup=False)
            continue
        verb = "would write" if check_only else "wrote"
        if not check_only:
            write(p)
        why = "no schema file yet" if not p.latest else f"the class differs from v{p.latest}"
        console.print(f"{verb} {p.path} ({why})", highlight=False, markup=False)
        for change in p.changes:
            console.print(f"    {change}", highlight=False, markup=False)
    if check_only and pending:
        console.print(f"{len(pending)} schema file(s) out of date: run `streams schemas generate {context}`")
        sys.exit(1)
    if pending:
        console.print("review the new files, then run `streams schemas check` (the compatibility gate)")
