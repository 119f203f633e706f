"""`streams schemas check|register|diff`: schema files against the registry's compatibility
rules (docs/versioning.md)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from streams.config import Settings

console = Console()


@click.group()
def schemas() -> None:
    """Schema files against the registry's compatibility rules (docs/versioning.md)."""


def _schema_subjects(context: str | None) -> list[Any]:
    from streams.contexts.registry import contexts, get_context
    from streams.wire.governance import load_policy, subjects
    from streams.wire.schemas import catalog_for

    policy = load_policy()
    names = [context] if context else list(contexts())
    out = []
    for name in names:
        ctx = get_context(name)
        out += subjects(ctx, catalog_for(ctx), policy)
    return out


def _registry() -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": Settings().registry_url, "timeout": 10})


@schemas.command("check")
@click.argument("context", required=False)
@click.option("--offline", is_flag=True, help="Only the local rules; do not ask the registry.")
def schemas_check(context: str | None, offline: bool) -> None:
    """Test every schema version against its subject's compatibility rules; exit 1 if one fails."""
    from streams.wire.governance import check

    client = None if offline else _registry()
    failed = 0
    for subject in _schema_subjects(context):
        errors, notes = check(client, subject)
        for note in notes:
            console.print(f"[dim]{note}[/dim]", highlight=False)
        for error in errors:
            failed += 1
            console.print(f"[red]INCOMPATIBLE[/red] {error}", highlight=False)
    if failed:
        console.print(f"[red]{failed} incompatible schema version(s)[/red]")
        sys.exit(1)
    console.print("[green]all schema versions are compatible[/green]")


@schemas.command("register")
@click.argument("context", required=False)
def schemas_register(context: str | None) -> None:
    """Check, then set each subject's compatibility level and register every version."""
    from streams.wire.governance import check, register

    client = _registry()
    chosen = _schema_subjects(context)
    errors = [e for subject in chosen for e in check(client, subject)[0]]
    if errors:
        for error in errors:
            console.print(f"[red]INCOMPATIBLE[/red] {error}", highlight=False)
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

    subject = next((s for s in _schema_subjects(context) if s.type_name == type_name), None)
    if subject is None:
        raise click.UsageError(f"{type_name} is not a command, event or state of {context}")
    by_number = {v.version: v for v in subject.versions}
    new = new or subject.versions[-1].version
    old = old or new - 1
    if old not in by_number or new not in by_number:
        raise click.UsageError(f"{type_name} has versions {sorted(by_number)}")
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
