"""The devices context's messages: commands, events, state and the raw telemetry reading.

Every class is backed by `schemas/devices/<Class>.v<N>.avsc`. Times are epoch milliseconds
(event time, from the devices' clocks); thresholds and values are doubles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

# string limits (the schemas' `maxLength`, checked on commands before `decide` runs)
Metric = Annotated[str, Meta(max_length=64)]
AlertId = Annotated[str, Meta(max_length=128)]
Status = Annotated[str, Meta(max_length=32)]
Name = Annotated[str, Meta(max_length=255)]
"""A site, a device name or id, a person."""
Text = Annotated[str, Meta(max_length=1024)]
"""A free-text reason or note."""

# --- the raw input (not a command: folded into windows first) --------------------------------


@dataclass(frozen=True)
class TelemetryReading:
    """One measurement of one metric by a device, on `devices.telemetry` (key = device id)."""

    metric: Metric
    value: float
    ts: int
    """When the device measured it (epoch ms)."""


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterDevice:
    """Add a device to the fleet, at a site."""

    site: Name
    name: Name = ""
    silence_after_s: int = 300
    """A device with no reading for this long (event time) is marked silent."""


@dataclass(frozen=True)
class ConfigureThresholds:
    """Alert on `metric` above `high` for `for_windows` consecutive windows; clear below
    `clear_below` (hysteresis: `clear_below <= high`)."""

    metric: Metric
    high: float
    clear_below: float
    for_windows: int = 1


@dataclass(frozen=True)
class RecordTelemetryWindow:
    """A system command: the summary of one closed telemetry window (sent by the window stage,
    command id `w:telemetry:<device>:<metric>:<window start>`)."""

    device_id: Name
    metric: Metric
    window_start: int
    window_end: int
    count: int
    sum: float
    min: float
    max: float
    last_ts: int
    """The latest reading's event time in the window."""


@dataclass(frozen=True)
class UpdateDeviceStatus:
    """An operator sets a device online, offline or in maintenance (the seed's command)."""

    status: Status
    reason: Text = ""


@dataclass(frozen=True)
class MarkDeviceSilent:
    """A system command from the heartbeat timer: no reading since `last_seen_ms` for the
    device's `silence_after_s`."""

    last_seen_ms: int


@dataclass(frozen=True)
class AcknowledgeAlert:
    """Someone has seen the open alert of a metric (it stays open until the value clears)."""

    metric: Metric
    by: Name = ""
    note: Text = ""


@dataclass(frozen=True)
class DecommissionDevice:
    """Take a device out of the fleet for good; its readings are refused from then on."""

    reason: Text = ""


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRegistered:
    """A device joined the fleet."""

    site: Name
    name: Name
    silence_after_s: int


@dataclass(frozen=True)
class ThresholdsConfigured:
    """A metric's alert thresholds were set."""

    metric: Metric
    high: float
    clear_below: float
    for_windows: int


@dataclass(frozen=True)
class TelemetryWindowRecorded:
    """A window newer than the metric's last one was folded: it moves the metric's last window
    and breach streak, and it is the `telemetry-10s` row."""

    device_id: Name
    metric: Metric
    window_start: int
    window_end: int
    count: int
    sum: float
    min: float
    max: float
    last_ts: int


@dataclass(frozen=True)
class AlertRaised:
    """`windows` consecutive windows of `metric` went above `high` (the last one peaked at `value`)."""

    metric: Metric
    alert_id: AlertId
    window_start: int
    value: float
    high: float
    windows: int


@dataclass(frozen=True)
class AlertAcknowledged:
    """Someone acknowledged an open alert."""

    metric: Metric
    alert_id: AlertId
    by: Name
    note: Text


@dataclass(frozen=True)
class AlertCleared:
    """A window of the metric stayed below `clear_below`: the alert is closed."""

    metric: Metric
    alert_id: AlertId
    window_start: int
    value: float


@dataclass(frozen=True)
class DeviceStatusChanged:
    """The operator status changed from `previous` to `status`."""

    status: Status
    previous: Status
    reason: Text


@dataclass(frozen=True)
class DeviceWentSilent:
    """No reading since `last_seen_ms` for the device's silence time."""

    last_seen_ms: int


@dataclass(frozen=True)
class DeviceDecommissioned:
    """The device left the fleet."""

    reason: Text


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricState:
    """What the device's decider keeps per metric."""

    metric: Metric
    last_window_start: int = -1
    """The start of the last window folded (older or equal windows are ignored)."""
    high: float = 0.0
    clear_below: float = 0.0
    for_windows: int = 0
    """0: no thresholds configured."""
    streak: int = 0
    """Consecutive windows above `high` (while no alert is open and not in maintenance)."""
    alert_id: AlertId = ""
    """The open alert ("" : none)."""
    acknowledged: bool = False


@dataclass(frozen=True)
class DeviceState:
    """A device as its events made it. `status` is `none` until it is registered."""

    status: Status = "none"
    site: Name = ""
    name: Name = ""
    silence_after_s: int = 300
    silent: bool = False
    last_seen_ms: int = 0
    metrics: tuple[MetricState, ...] = ()

    def metric(self, name: str) -> MetricState | None:
        """The state of one metric, if the device has any."""
        for m in self.metrics:
            if m.metric == name:
                return m
        return None

    def with_metric(self, m: MetricState) -> DeviceState:
        """The state with `m` replacing (or added as) its metric."""
        metrics = tuple(x for x in self.metrics if x.metric != m.metric)
        return DeviceState(
            self.status, self.site, self.name, self.silence_after_s, self.silent, self.last_seen_ms,
            (*metrics, m) if len(metrics) == len(self.metrics) else _replaced(self.metrics, m),
        )  # fmt: skip


def _replaced(metrics: tuple[MetricState, ...], m: MetricState) -> tuple[MetricState, ...]:
    return tuple(m if x.metric == m.metric else x for x in metrics)
