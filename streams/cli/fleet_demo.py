"""The devices part of `streams demo`: a small fleet streams live telemetry; one device runs hot
for two windows (an alert is raised), then cools down (the alert is cleared)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.client import CommandClient, RecordSender
from streams.config import Settings
from streams.contexts.devices import (
    AlertCleared,
    AlertRaised,
    ConfigureThresholds,
    RegisterDevice,
    TelemetryReading,
    TelemetryWindowRecorded,
)
from streams.kafka.fold import events_of
from streams.wire.jsonable import to_json

SITES = {"plant-1": 5, "plant-2": 4, "warehouse": 3}
WINDOW_S = 10
STREAM_S = 34
"""Two hot windows, one cool one, and the window the cool one closes on (10 s windows, 2 s grace)."""


def get_json(settings: Settings, path: str) -> Any:
    """The JSON the demo's worker answers to GET `path` (None for 404, 409 or 503)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}{path}", timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 409, 503):
            return None
        raise


def _table_rows(settings: Settings) -> float:
    """How many join-table events the window stage has read (its metric)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streams_window_records_total{") and 'outcome="table"' in line
    )


def wait_for(check: Any, timeout: float, every: float = 0.5) -> Any:
    """`check()` once it is truthy, asked every `every` seconds (None after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    return None


def run_fleet_demo(settings: Settings, console: Console) -> int:
    """Register a fleet, stream 34 s of telemetry; the number of unexpected outcomes."""
    if get_json(settings, "/devices/views") is None:
        console.print("[red]the worker does not run the devices context (STREAMS_CONTEXTS=orders,devices)[/]")
        return 1
    run = uuid.uuid4().hex[:6]
    fleet = [(f"{site}-{run}-{i}", f"{site}-{run}") for site, n in SITES.items() for i in range(n)]
    hot = fleet[0][0]
    failures = 0
    console.rule("devices: the IoT fleet")
    table_before = _table_rows(settings)
    with CommandClient(settings, "devices") as client:
        futures = [
            client.send(device, RegisterDevice(site, f"probe {i}", 60))[1]
            for i, (device, site) in enumerate(fleet)
        ]
        futures += [client.send(device, ConfigureThresholds("temp", 80.0, 70.0, 2))[1] for device, _ in fleet]
        client.flush()
        results = [f.result(timeout=120) for f in futures if f is not None]
        failures += sum(not r.accepted for r in results)
    console.print(
        f"registered {len(fleet)} devices at {len(SITES)} sites; thresholds on temp: "
        "alert above 80 for 2 consecutive 10 s windows, clear below 70"
    )
    if not wait_for(lambda: _table_rows(settings) >= table_before + len(fleet), 60):
        console.print("[red]the window stage did not read the registrations[/]")
        return failures + 1
    site = fleet[0][1]
    console.print(
        f"watch a site live: http://127.0.0.1:{settings.web_port}/live?context=devices&view=site-summary&key={site}"
    )
    # start on a window boundary, so that the hot device's first two windows are all hot
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)
    started = time.time()
    sent = 0
    with RecordSender(settings, "devices") as sender:
        for second in range(STREAM_S):
            now_ms = int(time.time() * 1000)
            for i, (device, _) in enumerate(fleet):
                running_hot = device == hot and second < 2 * WINDOW_S
                value = 92.0 + second % 3 if running_hot else 55.0 + (i + second) % 7
                sender.send(device, TelemetryReading("temp", value, now_ms), timestamp_ms=now_ms)
                sent += 1
            sender.flush()
            if second % 5 == 4:
                phase = "hot" if second < 2 * WINDOW_S else "cooling"
                console.print(f"  t+{second + 1:2d}s: {sent} readings sent ({hot} {phase})")
            time.sleep(max(0.0, started + second + 1 - time.time()))

    alerts = wait_for(
        lambda: (
            (d := get_json(settings, f"/devices/views/alerts/{hot}")) and d["state"]["state"] == "clear" and d
        ),
        60,
    )
    events = events_of(settings, client.runtime, hot)
    shown = Table(title=f"the event log of {hot} (devices.events)")
    for column in ("version", "event", "data"):
        shown.add_column(column)
    for logged in events:
        data = to_json(logged.event)
        if isinstance(logged.event, TelemetryWindowRecorded):
            data = {k: data[k] for k in ("window_start", "count", "min", "max")}
        shown.add_row(str(logged.version), type(logged.event).__name__, json.dumps(data))
    console.print(shown)
    raised = [e.event for e in events if isinstance(e.event, AlertRaised)]
    cleared = [e.event for e in events if isinstance(e.event, AlertCleared)]
    ok = len(raised) == 1 and len(cleared) == 1 and raised[0].alert_id == cleared[0].alert_id and alerts
    failures += not ok
    console.print(
        f"alert raised after two hot windows and cleared below 70: {'[green]yes[/]' if ok else '[red]no[/]'}"
    )
    summaries = Table(title="site-summary (online / offline / alerting per site)")
    for column in ("site", "devices", "online", "silent", "alerting"):
        summaries.add_column(column)
    for name in SITES:
        doc = get_json(settings, f"/devices/views/site-summary/{urllib.parse.quote(f'{name}-{run}')}")
        state = (doc or {}).get("state") or {}
        summaries.add_row(
            f"{name}-{run}", *(str(state.get(k, "?")) for k in ("total", "online", "silent", "alerting"))
        )
    console.print(summaries)
    if alerts:
        console.print(f"read model devices.alerts (GET /devices/views/alerts/{hot}):")
        console.print_json(json.dumps(alerts["state"]))
    return failures
