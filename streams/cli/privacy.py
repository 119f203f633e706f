"""`streams privacy …`: forget a data subject, make a master key, rotate it (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streams.cli.inputs import identifier
from streams.config import Settings


@click.group()
def privacy() -> None:
    """Crypto-shredding of personal fields: erasure and the master key."""


@privacy.command()
@click.argument("subject")
def forget(subject: str) -> None:
    """Delete SUBJECT's data key (its personal fields read as their replacement everywhere from
    now on) and append SubjectForgotten to the audited privacy topic."""
    from streams.kafka.forgetting import forget_subject

    done = forget_subject(Settings(), identifier("subject", subject), "cli")
    click.echo(
        json.dumps(
            {"subject": done.subject, "key_deleted": done.key_deleted, "audit": f"{done.topic}@{done.offset}"}
        )
    )


@privacy.command()
def keygen() -> None:
    """Print a new master key (base64) for STREAMS_MASTER_KEY or STREAMS_MASTER_KEY_FILE."""
    from streams.privacy.master import LocalMasterKey

    click.echo(LocalMasterKey.generate())


@privacy.command()
@click.option(
    "--new-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The new master key (base64); the current one comes from the environment.",
)
def rotate(new_key_file: Path) -> None:
    """Rewrap every data key with a new master key (the log is not rewritten)."""
    from streams.privacy.deployment import keyring_for
    from streams.privacy.master import LocalMasterKey

    new = LocalMasterKey.parse(new_key_file.read_text())
    count = keyring_for(Settings().pg_dsn).rotate(new)
    click.echo(json.dumps({"rewrapped": count, "master_key": new.key_id}))
