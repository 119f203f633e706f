"""Devices: the seed's IoT fleet as a bounded context (plain data + pure functions).

A device is registered at a site, configured with alert thresholds per metric, and sends
telemetry far faster than a decider should run: its readings go to `devices.telemetry` and are
folded into 10-second windows by the window stage (`telemetry.TELEMETRY`), which sends one
`RecordTelemetryWindow` system command per closed window. The decider raises an alert after
`for_windows` consecutive windows above `high` and clears it only below `clear_below`.

Schema history: every type is at v1 (`schemas/devices/*.v1.avsc`); `UPCASTERS` is where a
future change Avro defaults cannot express goes (docs/versioning.md).
"""

from __future__ import annotations

from typing import Any

from streams.contexts.devices.messages import (
    AcknowledgeAlert,
    AlertAcknowledged,
    AlertCleared,
    AlertRaised,
    ConfigureThresholds,
    DecommissionDevice,
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceState,
    DeviceStatusChanged,
    DeviceWentSilent,
    MarkDeviceSilent,
    MetricState,
    RecordTelemetryWindow,
    RegisterDevice,
    TelemetryReading,
    TelemetryWindowRecorded,
    ThresholdsConfigured,
    UpdateDeviceStatus,
)
from streams.contexts.devices.rules import decide, evolve
from streams.contexts.devices.telemetry import TELEMETRY
from streams.contexts.devices.views import VIEWS
from streams.core.decider import BoundedContext

UPCASTERS: dict[tuple[str, int], Any] = {}

COMMANDS = (
    RegisterDevice,
    ConfigureThresholds,
    RecordTelemetryWindow,
    UpdateDeviceStatus,
    MarkDeviceSilent,
    AcknowledgeAlert,
    DecommissionDevice,
)
EVENTS = (
    DeviceRegistered,
    ThresholdsConfigured,
    TelemetryWindowRecorded,
    AlertRaised,
    AlertAcknowledged,
    AlertCleared,
    DeviceStatusChanged,
    DeviceWentSilent,
    DeviceDecommissioned,
)

context: BoundedContext[DeviceState] = BoundedContext(
    name="devices",
    aggregate_type="Device",
    commands=COMMANDS,
    events=EVENTS,
    state_type=DeviceState,
    initial_state=DeviceState(),
    decide=decide,
    evolve=evolve,
    views=VIEWS,
    windows=(TELEMETRY,),
    upcasters=UPCASTERS,
)

__all__ = [
    "COMMANDS",
    "EVENTS",
    "AcknowledgeAlert",
    "AlertAcknowledged",
    "AlertCleared",
    "AlertRaised",
    "ConfigureThresholds",
    "DecommissionDevice",
    "DeviceDecommissioned",
    "DeviceRegistered",
    "DeviceState",
    "DeviceStatusChanged",
    "DeviceWentSilent",
    "MarkDeviceSilent",
    "MetricState",
    "RecordTelemetryWindow",
    "RegisterDevice",
    "TelemetryReading",
    "TelemetryWindowRecorded",
    "ThresholdsConfigured",
    "UpdateDeviceStatus",
    "context",
]
