"""`streams demo`: the pipeline working, end to end, on the local stack: orders (commands,
events, state, a read model, a burst), a game round settled by a process manager
(`streams.cli.games_demo`), then a devices fleet (`streams.cli.fleet_demo`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from streams.cli.fleet_demo import run_fleet_demo
from streams.cli.games_demo import run_games_demo
from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import (
    AddItem,
    CancelOrder,
    ConfirmOrder,
    PlaceOrder,
    RemoveItem,
    ShipOrder,
)
from streams.kafka.fold import aggregate_from_changelog, aggregate_from_log, events_of
from streams.wire.jsonable import to_json

DEMO_CONTEXTS = ("orders", "devices", "games", "wallet")
"""The contexts the demo drives: a worker it reuses must host them all."""
READY_TIMEOUT_S = 300
"""How long a worker the demo starts may take to be ready: on a fresh deployment it first
creates the topics of four contexts and their views, slow on a busy machine."""


class WorkerHealth(NamedTuple):
    """What answered on the worker port: nothing, another deployment, or ours (ready or not)."""

    answered: bool
    ours: bool
    ready: bool
    detail: str


def _health(settings: Settings) -> WorkerHealth:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=2) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError:
        return WorkerHealth(False, False, False, "nothing listening")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        return WorkerHealth(True, False, False, f"HTTP {status}, not a streams worker")
    ours = (
        body.get("app") == settings.app_id
        and body.get("topic_prefix", "") == settings.topic_prefix
        and all(c in body.get("contexts", []) for c in DEMO_CONTEXTS)
    )
    detail = (
        f"app {body.get('app')!r}, topic prefix {body.get('topic_prefix')!r}, contexts {body.get('contexts')}"
    )
    return WorkerHealth(True, ours, status == 200, detail)


def _demo_log() -> Path:
    return Path(os.environ.get("STREAMS_STACK_DATA", ".stack")) / "logs" / "demo-worker.log"


def _start_worker(settings: Settings, console: Console) -> subprocess.Popen[bytes] | None:
    found = _health(settings)
    if found.answered and not found.ours:
        console.print(
            f"[red]port {settings.web_port} is taken by something else ({found.detail}); "
            "stop it or set STREAMS_WEB_PORT to a free port[/]"
        )
        raise SystemExit(2)
    if found.ours:
        console.print(f"[green]using the worker already running on port {settings.web_port}[/]")
        proc = None
    else:
        log_path = _demo_log()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        console.print(f"starting a worker (log: {log_path})")
        env = dict(os.environ)
        contexts = [c for c in env.get("STREAMS_CONTEXTS", "orders").split(",") if c]
        env["STREAMS_CONTEXTS"] = ",".join([*contexts, *(c for c in DEMO_CONTEXTS if c not in contexts)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", "info"],
            stdout=open(log_path, "ab"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (found := _health(settings)).ready:
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            where = f"see {_demo_log()}" if proc is not None else found.detail
            console.print(f"[red]worker did not become ready; {where}[/]")
            if proc is not None and proc.poll() is None:  # not left running behind the demo
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
            raise SystemExit(1)
        time.sleep(0.5)
    return proc


def run_demo(settings: Settings, console: Console) -> int:
    """Send a scripted story plus a burst; return 0 when every outcome is the expected one."""
    worker = _start_worker(settings, console)
    failures = 0
    try:
        with CommandClient(settings, "orders") as client:
            run = uuid.uuid4().hex[:6]
            order, other = f"order-{run}-1", f"order-{run}-2"
            story: list[tuple[str, Any, str, dict[str, Any]]] = [
                (order, PlaceOrder("alice", "EUR"), "accepted", {}),
                (order, AddItem("keyboard", 1, 4999), "accepted", {}),
                (order, AddItem("mouse", 2, 1999), "accepted", {}),
                (order, AddItem("mouse", 1, 2500), "price_mismatch", {}),
                (order, ShipOrder("DHL"), "order_not_confirmed", {}),
                (order, RemoveItem("keyboard"), "accepted", {}),
                (order, ConfirmOrder(), "version_conflict", {"expected_version": 2}),
                (order, ConfirmOrder(), "accepted", {"expected_version": 4, "command_id": f"c-{run}"}),
                (order, ConfirmOrder(), "accepted", {"command_id": f"c-{run}"}),  # retry: same result
                (order, AddItem("cable", 1, 500), "order_not_modifiable", {}),
                (order, ShipOrder("DHL"), "accepted", {}),
                (order, CancelOrder("too late"), "order_not_cancellable", {}),
                (other, AddItem("x", 1, 1), "order_not_found", {}),
                (other, PlaceOrder("bob", "usd"), "invalid_currency", {}),
            ]
            table = Table(title="commands → results (orders.command-results)")
            for column in ("aggregate", "command", "status", "version", "reason / duplicate"):
                table.add_column(column)
            console.print("waiting for the worker to own its partitions…")
            client.execute(f"warmup-{run}", PlaceOrder("demo", "EUR"), timeout=120)
            for aggregate_id, command, expected, options in story:
                result = client.execute(aggregate_id, command, **options)
                outcome = "accepted" if result.accepted else result.reason
                ok = outcome == expected
                failures += not ok
                table.add_row(
                    aggregate_id,
                    type(command).__name__,
                    f"[{'green' if result.accepted else 'yellow'}]{result.status}[/]",
                    str(result.aggregate_version),
                    ("duplicate" if result.duplicate else result.reason) + ("" if ok else " [red]✗[/]"),
                )
            console.print(table)

            events = Table(title=f"the event log for {order} (orders.events)")
            for column in ("version", "event", "data"):
                events.add_column(column)
            for logged in events_of(settings, client.runtime, order):
                events.add_row(str(logged.version), type(logged.event).__name__, str(to_json(logged.event)))
            console.print(events)
            folded = aggregate_from_log(settings, client.runtime, order)
            stored = aggregate_from_changelog(settings, client.runtime, order)
            same = folded == stored
            failures += not same
            console.print(
                f"state rebuilt from the log: version {folded.version}, status "
                f"{folded.state.status}, total {folded.state.total_cents / 100:.2f} "
                f"{folded.state.currency} — RocksDB table agrees: {'[green]yes[/]' if same else '[red]no[/]'}"
            )

            url = (
                f"http://127.0.0.1:{settings.web_port}/orders/views/order-summary/{order}"
                f"?min_version={folded.version}&timeout=30"
            )
            with urllib.request.urlopen(url, timeout=40) as response:
                document = json.loads(response.read())
            console.print(f"read model orders.order-summary (GET {url.split('?')[0]}):")
            console.print_json(json.dumps(document))

            burst = 2000
            started = time.perf_counter()
            futures = [
                client.send(
                    f"burst-{run}-{i % 200}", PlaceOrder("load", "EUR") if i < 200 else AddItem("w", 1, 1)
                )[1]
                for i in range(burst)
            ]
            client.flush()
            for future in futures:
                assert future is not None
                future.result(timeout=120)
            elapsed = time.perf_counter() - started
            console.print(
                f"burst: {burst} commands with results in {elapsed:.2f}s = {burst / elapsed:,.0f} commands/s"
            )
        failures += run_games_demo(settings, console)
        failures += run_fleet_demo(settings, console)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    console.print("[green]demo ok[/]" if not failures else f"[red]{failures} unexpected outcomes[/]")
    return 1 if failures else 0
