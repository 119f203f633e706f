"""The fleet's telemetry as a windowed aggregation: readings -> 10 s windows -> system commands.

Devices send `TelemetryReading`s to `devices.telemetry` (key = device id), far more often than a
decider should run. The window stage folds them per device and metric into 10-second tumbling
windows (event time, 2 s grace) and sends one `RecordTelemetryWindow` per closed window to
`devices.commands`. Each reading is first joined with the device's row of the `device-config`
table (folded from this context's own events): readings of unknown or decommissioned devices go
to the DLQ with the reason, and so are readings of a metric its device type does not declare
(`METRICS`): an invented name opens no window and never reaches the decider. A heartbeat timer
sends `MarkDeviceSilent` when a device has sent nothing for its `silence_after_s`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from streams.contexts.devices.messages import (
    DeviceDecommissioned,
    DeviceRegistered,
    MarkDeviceSilent,
    RecordTelemetryWindow,
    TelemetryReading,
)
from streams.core.decider import Message
from streams.core.windows import (
    Accumulator,
    BadRecord,
    ClosedWindow,
    Heartbeat,
    JoinTable,
    Row,
    WindowedAggregation,
    WindowSpec,
)

WINDOW = WindowSpec(size_ms=10_000, grace_ms=2_000)

SENSOR = "sensor"
"""The device type of every device until registration names one (`DeviceRegistered` has no type yet)."""
METRICS: Mapping[str, frozenset[str]] = {
    SENSOR: frozenset(
        {"temp", "hum", "humidity", "pressure", "co2", "vibration", "rpm", "power", "voltage", "current",
         "flow", "level", "battery", "signal"}
    ),
}  # fmt: skip
"""The metrics each device type may send (at most the decider's 32 metrics per device): a reading
of another metric is refused at intake (`unknown_metric`), so new names cannot open windows."""


def device_type(row: Row) -> str:
    """A device's type, from its `device-config` row."""
    return str(row.get("type", SENSOR))


def device_row(row: Row | None, event: Message) -> Row | None:
    """`device-config`: what the stage needs to know of a device to accept its readings."""
    match event:
        case DeviceRegistered(site=site, silence_after_s=silence):
            return {"site": site, "silence_after_ms": silence * 1000, "decommissioned": False}
        case DeviceDecommissioned():
            return {**(row or {}), "decommissioned": True}
    return row


def check(reading: TelemetryReading) -> None:
    """A value must be a finite number (JSON readings with a non-number are refused earlier, by
    the stage, against the schema's `double`)."""
    if not math.isfinite(reading.value):
        raise BadRecord("non_numeric_value", f"{reading.metric}: {reading.value!r} is not a finite number")
    if not reading.metric:
        raise BadRecord("missing_metric", "the reading names no metric")


def join(reading: TelemetryReading, row: Row | None) -> None:
    """Unknown and decommissioned devices' readings are refused, and metrics their type lacks."""
    if row is None:
        raise BadRecord(
            "unknown_device", "no registered device has this id (or its registration is not read yet)"
        )
    if row.get("decommissioned"):
        raise BadRecord("decommissioned_device", "the device was decommissioned")
    kind = device_type(row)
    allowed = METRICS.get(kind, frozenset())
    if reading.metric not in allowed:
        raise BadRecord(
            "unknown_metric",
            f"{reading.metric!r} is not a metric of a {kind} device (one of {', '.join(sorted(allowed))})",
        )


def fold(acc: Accumulator | None, reading: TelemetryReading) -> Accumulator:
    """count, sum, min, max and the latest event time of a window."""
    value, ts = reading.value, reading.ts
    if acc is None:
        return {"n": 1, "sum": value, "min": value, "max": value, "last": ts}
    return {
        "n": acc["n"] + 1,
        "sum": acc["sum"] + value,
        "min": min(acc["min"], value),
        "max": max(acc["max"], value),
        "last": max(acc["last"], ts),
    }


def close(window: ClosedWindow) -> RecordTelemetryWindow:
    """The system command of a closed window."""
    acc = window.accumulator
    return RecordTelemetryWindow(
        device_id=window.key, metric=window.group, window_start=window.start, window_end=window.end,
        count=acc["n"], sum=acc["sum"], min=acc["min"], max=acc["max"], last_ts=acc["last"],
    )  # fmt: skip


def silence_after(row: Row | None) -> int | None:
    """A registered, active device's silence time (ms)."""
    if row is None or row.get("decommissioned"):
        return None
    return int(row["silence_after_ms"])


def event_time(reading: TelemetryReading) -> int:
    """The device's clock."""
    return reading.ts


def metric_of(reading: TelemetryReading) -> str:
    """Windows are per device and metric."""
    return reading.metric


def went_quiet(device_id: str, last_seen_ms: int) -> Any:
    """The heartbeat's command."""
    return MarkDeviceSilent(last_seen_ms=last_seen_ms)


TELEMETRY = WindowedAggregation(
    name="telemetry",
    record_type=TelemetryReading,
    spec=WINDOW,
    timestamp=event_time,
    group_by=metric_of,
    check=check,
    table=JoinTable("device-config", (DeviceRegistered, DeviceDecommissioned), device_row),
    join=join,
    fold=fold,
    close=close,
    heartbeat=Heartbeat(after_ms=silence_after, command=went_quiet),
    commands=(RecordTelemetryWindow, MarkDeviceSilent),
)
