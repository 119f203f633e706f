"""`streams`: the command line (click)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from streams.cli.acls import acls
from streams.cli.errors import OneLineErrors
from streams.cli.inputs import (
    checked_version,
    command_from_json,
    context_named,
    existing_topic,
    identifier,
    topic_named,
    view_named,
)
from streams.cli.privacy import privacy
from streams.cli.scaffold import new
from streams.cli.schemas import schemas
from streams.cli.top import top
from streams.cli.trace import trace_command
from streams.config import Settings
from streams.core.decider import BoundedContext

ROOT = Path(__file__).resolve().parents[2]
console = Console()


def _runtime(settings: Settings, name: str | BoundedContext[Any]) -> Any:
    """The named context wired to the stack (its schemas registered)."""
    from streams.kafka.runtime import ContextRuntime

    context = context_named(name) if isinstance(name, str) else name
    return ContextRuntime.connect(settings, context)


@click.group(cls=OneLineErrors)
def main() -> None:
    """Kafka-native CQRS / event sourcing: stack, worker, commands, the log.

    Errors are one line on stderr and a non-zero exit (2: bad input); STREAMS_DEBUG=1 shows
    tracebacks."""


# --- stack ----------------------------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("action", type=click.Choice(["up", "down", "status", "logs", "env", "prepare"]))
@click.argument("args", nargs=-1)
def stack(action: str, args: tuple[str, ...]) -> None:
    """Start, stop or inspect the local stack (Kafka, registry, Connect, PostgreSQL; Prometheus when
    named: `stack up prometheus`)."""
    sys.exit(subprocess.call(["bash", str(ROOT / "ops" / "stack.sh"), action, *args]))


# --- worker ---------------------------------------------------------------------------------


@main.command()
@click.option("--loglevel", "-l", default="info")
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this host (one per core): ports STREAMS_WEB_PORT, +1, …",
)
def worker(loglevel: str, processes: int) -> None:
    """Run workers (command handlers + web API). With one process, the same as
    `faust -A streams.app worker`; with more, a launcher that supervises them."""
    from streams.cli import processes as launcher

    for name in Settings().contexts:  # STREAMS_CONTEXTS: refused here in one line, not by a traceback
        context_named(name)
    command = launcher.worker_command(loglevel)
    if processes == 1:
        os.execvp(command[0], command)
    try:
        specs = launcher.process_specs(Settings(), processes, launcher.environ())
    except launcher.LauncherError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(launcher.supervise(specs, command, lambda line: console.print(f"[launcher] {line}")))


# --- commands -------------------------------------------------------------------------------


@main.command()
@click.argument("context")
@click.argument("command_type")
@click.option("--id", "aggregate_id", required=True, help="Aggregate id (the record key).")
@click.option("--data", default="{}", help="Command fields as a JSON object.")
@click.option("--expected-version", type=int, default=None)
@click.option("--command-id", default=None, help="Idempotency key (default: a new uuid).")
@click.option("--wait/--no-wait", default=False, help="Wait for and print the result.")
@click.option("--timeout", default=30.0)
def send(
    context: str,
    command_type: str,
    aggregate_id: str,
    data: str,
    expected_version: int | None,
    command_id: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Send a command, e.g. `streams send orders PlaceOrder --id o-1 --data '{"customer_id":"c"}'`.

    `--data` is checked against the command's latest schema as the HTTP API checks `data`."""
    from streams.client import CommandClient
    from streams.wire.jsonable import to_json

    bounded_context = context_named(context)
    command = command_from_json(bounded_context, command_type, data)
    identifier("aggregate_id", aggregate_id)
    identifier("command_id", command_id or "", required=False)
    expected_version = checked_version(expected_version)
    with CommandClient(Settings(), bounded_context, wait=wait) as client:
        if wait:
            result = client.execute(
                aggregate_id,
                command,
                timeout=timeout,
                command_id=command_id,
                expected_version=expected_version,
            )
            console.print_json(json.dumps(to_json(result)))
            sys.exit(0 if result.accepted else 1)
        sent_id, _ = client.send(
            aggregate_id, command, command_id=command_id, expected_version=expected_version
        )
        console.print(f"sent {command_type} {sent_id}")


# --- reading the log ------------------------------------------------------------------------


@main.command()
@click.argument("topic")
@click.option("--follow/--no-follow", "-f", default=False, help="Keep waiting for new records.")
def tail(topic: str, follow: bool) -> None:
    """Print a topic's committed records, decoded (read_committed). TOPIC is its logical name,
    e.g. `orders.events` (the deployment's STREAMS_TOPIC_PREFIX is added), or its full name."""
    from streams.client import read_topic
    from streams.wire.codec import DecodeError
    from streams.wire.headers import as_dict
    from streams.wire.jsonable import to_json

    settings = Settings()
    context, name = topic_named(settings, topic)
    existing_topic(settings, name)
    runtime = _runtime(settings, context)
    idle = float("inf") if follow else 2.0
    for msg in read_topic(settings, name, idle_timeout=idle):
        try:
            decoded = runtime.codec.decode(msg.value())
            value: Any = {"type": decoded.type_name, "data": to_json(decoded.message)}
        except DecodeError as exc:
            value = {"undecodable": str(exc), "bytes": len(msg.value() or b"")}
        record = {
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": (msg.key() or b"").decode("utf-8", "replace"),
            "headers": as_dict(msg.headers()),
            "value": value,
        }
        console.print_json(json.dumps(record))


@main.command()
@click.argument("context")
@click.argument("aggregate_id")
def state(context: str, aggregate_id: str) -> None:
    """An aggregate rebuilt by folding the log, beside the handler table's state."""
    from streams.kafka.fold import aggregate_from_changelog, aggregate_from_log
    from streams.wire.jsonable import to_json

    identifier("aggregate_id", aggregate_id)
    settings = Settings()
    runtime = _runtime(settings, context)
    folded = aggregate_from_log(settings, runtime, aggregate_id)
    table = aggregate_from_changelog(settings, runtime, aggregate_id)
    console.print_json(
        json.dumps(
            {
                "aggregate_id": aggregate_id,
                "from_log": {"version": folded.version, "state": to_json(folded.state)},
                "from_table": None
                if table is None
                else {"version": table.version, "state": to_json(table.state)},
                "equal": table == folded if table is not None else folded.version == 0,
            }
        )
    )


@main.command()
@click.argument("name")
@click.argument("correlation_id")
def process(name: str, correlation_id: str) -> None:
    """A process manager's instance: its state, deadlines and the commands it sent."""
    from streams.processes.inspect import as_json, committed_instance

    identifier("correlation_id", correlation_id)
    found = committed_instance(Settings(), name, correlation_id)
    if found is None:
        raise click.ClickException(f"process {name} has no instance {correlation_id!r}")
    console.print_json(json.dumps(as_json(found)))


@main.command()
def demo() -> None:
    """Start a worker, send sample orders traffic, show results, events and state."""
    from streams.cli.demo import run_demo

    sys.exit(run_demo(Settings(), console))


# --- Kafka Connect sinks ----------------------------------------------------------------------


@main.group()
def connect() -> None:
    """The PostgreSQL sinks (connectors/*.json) through the Kafka Connect REST API."""


@connect.command("deploy")
def connect_deploy() -> None:
    """Create the seed's tables (connectors/sql) and create or update every sink connector."""
    from streams.sinks.connect import deploy

    for name in deploy(Settings()):
        console.print(f"deployed {name}")


@connect.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the raw report.")
def connect_status(as_json: bool) -> None:
    """Connector and task states, task errors and sink lag; exit 1 unless all are RUNNING."""
    from streams.sinks.connect import status

    report = status(Settings())
    if as_json:
        console.print_json(json.dumps(report))
    healthy = True
    for entry in report:
        tasks = entry.get("tasks", [])
        ok = entry["state"] == "RUNNING" and bool(tasks) and all(t["state"] == "RUNNING" for t in tasks)
        healthy &= ok
        if as_json:
            continue
        lag = entry.get("lag", {}).get("lag", "?")
        dlq = entry["dlq"]
        console.print(
            f"{entry['name']}: {entry['state']}  lag={lag}  topic={entry['topic']}  "
            f"dlq: connect={dlq['connect']} deriver={dlq['deriver']}",
            soft_wrap=True,
        )
        for task in tasks:
            console.print(f"  task {task['id']}: {task['state']} on {task['worker']}", soft_wrap=True)
            if task.get("trace"):
                console.print(f"    error: {task['trace'][:1500]}", markup=False, soft_wrap=True)
    sys.exit(0 if healthy else 1)


@connect.command("remove")
def connect_remove() -> None:
    """Delete the sink connectors (the tables and their rows stay)."""
    from streams.sinks.connect import remove

    for name in remove(Settings()):
        console.print(f"removed {name}")


# --- read side ------------------------------------------------------------------------------


@main.command()
@click.argument("context")
@click.argument("view")
@click.option("--max-lag", default=0, help="Switch once the new version is at most this many events behind.")
@click.option(
    "--timeout", default=3600.0, help="Give up (and keep the live version) after this many seconds."
)
@click.option("--compare-raw/--no-compare-raw", default=True, help="Also time a bare consume of the log.")
@click.option(
    "--processes",
    default=0,
    type=click.IntRange(0, 64),
    help="Helper processes that build the new version beside the workers (one core each).",
)
def replay(context: str, view: str, max_lag: int, timeout: float, compare_raw: bool, processes: int) -> None:
    """Rebuild a view from offset 0 beside the live one, switch to it when caught up, drop the old."""
    from streams.read.replay import raw_consume_rate
    from streams.read.replay import replay as run_replay

    view_named(context_named(context), view)
    settings = Settings()
    runtime = _runtime(settings, context)

    def show(p: Any) -> None:
        console.print(
            f"v{p.version}: {p.events_done}/{p.events_total} events, lag {p.lag}, "
            f"{p.events_per_s:,.0f} events/s, {p.elapsed_s:.1f}s"
        )

    report = run_replay(
        settings, runtime, view, on_progress=show, max_lag=max_lag, timeout_s=timeout, processes=processes
    )
    out: dict[str, Any] = dict(report.__dict__)
    if compare_raw:
        count, rate = raw_consume_rate(settings, runtime.topics.events, settings.partitions)
        out.update(
            raw_records=count, raw_events_per_s=rate, ratio=report.events_per_s / rate if rate else None
        )
    console.print_json(json.dumps(out))


@main.command()
@click.argument("context")
def rebuild(context: str) -> None:
    """Rebuild the aggregate state changelog from the event log alone (stop the workers first)."""
    from streams.read.rebuild import rebuild as run_rebuild

    settings = Settings()
    report = run_rebuild(settings, _runtime(settings, context))
    console.print_json(json.dumps(report.__dict__))


@main.command()
@click.argument("context")
def verify(context: str) -> None:
    """Check every aggregate: the state table equals the fold of the log; list mismatches."""
    from streams.read.rebuild import verify as run_verify

    settings = Settings()
    checked, mismatches = run_verify(settings, _runtime(settings, context))
    console.print_json(json.dumps({"checked": checked, "mismatches": [m.__dict__ for m in mismatches]}))
    sys.exit(1 if mismatches else 0)


# --- schemas: streams/cli/schemas.py -------------------------------------------------------

main.add_command(schemas)

# --- privacy: streams/cli/privacy.py --------------------------------------------------------

main.add_command(privacy)

# --- acls: streams/cli/acls.py ---------------------------------------------------------------

main.add_command(acls)

# --- new: streams/cli/scaffold.py ------------------------------------------------------------

main.add_command(new)


# --- top: streams/cli/top.py ------------------------------------------------------------------

main.add_command(top)
main.add_command(trace_command, "trace")


if __name__ == "__main__":
    main()
