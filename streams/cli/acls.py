"""`streams acls …`: the ACLs of a deployment's worker and device principals on a secured cluster
(docs/operations.md, "Security")."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from streams.cli.inputs import context_named
from streams.config import Settings
from streams.wire.acls import Deployment, Grant, device_grants, worker_grants


def deployment(settings: Settings) -> Deployment:
    """The names the grants derive from: the configured contexts (`STREAMS_CONTEXTS`), the process
    managers whose contexts are all among them, and their windowed aggregations' raw inputs."""
    from streams.contexts.registry import process_managers

    contexts = {name: context_named(name) for name in settings.contexts}
    return Deployment(
        app_id=settings.app_id,
        prefix=settings.topic_prefix,
        contexts=tuple(contexts),
        processes=tuple(name for name, pm in process_managers().items() if set(pm.contexts) <= set(contexts)),
        raw_inputs=tuple((name, w.name) for name, context in contexts.items() for w in context.windows),
    )


def _grants(settings: Settings, worker: str | None, device: str | None) -> list[tuple[str, list[Grant]]]:
    names = deployment(settings)
    out = []
    if worker:
        out.append((worker, worker_grants(names)))
    if device:
        out.append((device, device_grants(names)))
    return out


@click.group()
def acls() -> None:
    """A deployment's Kafka ACLs: what a worker and a device principal may do."""


_principals = [
    click.option("--worker", help="The workers' principal, e.g. User:worker"),
    click.option("--device", help="The devices' principal, e.g. User:device"),
]


def _with_principals(f):  # type: ignore[no-untyped-def]
    for option in reversed(_principals):
        f = option(f)
    return f


@acls.command("show")
@_with_principals
def show(worker: str | None, device: str | None) -> None:
    """Print the grants (JSON) for the configured contexts; nothing is changed."""
    rows = [
        {"principal": principal, **asdict(grant)}
        for principal, grants in _grants(Settings(), worker, device)
        for grant in grants
    ]
    click.echo(json.dumps(rows, indent=2))


@acls.command("apply")
@_with_principals
def apply(worker: str | None, device: str | None) -> None:
    """Create the ACLs on the cluster (as a super user: KAFKA_SASL_USERNAME/… of an operator)."""
    from streams.kafka import acls as kafka_acls

    settings = Settings()
    created = 0
    for principal, grants in _grants(settings, worker, device):
        created += kafka_acls.apply(settings, kafka_acls.bindings(principal, grants))
    click.echo(json.dumps({"acls": created}))
