"""The devices decider: `decide` checks a command against a device's rules, `evolve` folds events.

Rules:
- unknown (never registered) and decommissioned devices are rejected;
- a telemetry window at or before the metric's last folded window is ignored (no event);
- an alert is raised after `for_windows` consecutive windows whose maximum is above `high`, and
  cleared only by a window whose maximum is below `clear_below` (hysteresis); at most one open
  alert per device and metric; maintenance suppresses raising (streaks restart after it);
- events only on state changes: a command that changes nothing is accepted with no event.
"""

from __future__ import annotations

import math

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
    TelemetryWindowRecorded,
    ThresholdsConfigured,
    UpdateDeviceStatus,
)
from streams.core.decider import Message, Rejected

STATUSES = ("online", "offline", "maintenance")
"""What an operator may set (`UpdateDeviceStatus`)."""
DECOMMISSIONED = "decommissioned"
MAX_METRICS = 32
"""Metrics per device (bounds the state)."""
MAX_FOR_WINDOWS = 100
MIN_SILENCE_S = 30
"""The silence time must exceed a window plus its grace: a device's last window then always
reaches the decider before its silence (see `streams.contexts.devices.telemetry`)."""
MAX_SILENCE_S = 7 * 24 * 3600


def alert_id(metric: str, window_start: int) -> str:
    """An alert's id: the metric and the start of the window that raised it."""
    return f"{metric}@{window_start}"


def _require_device(state: DeviceState) -> None:
    if state.status == "none":
        raise Rejected("unknown_device", "no device with this id is registered")
    if state.status == DECOMMISSIONED:
        raise Rejected("device_decommissioned", "the device was decommissioned")


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def decide(state: DeviceState, command: Message) -> list[Message]:
    """The events a command causes, or `Rejected`."""
    match command:
        case RegisterDevice(site=site, name=name, silence_after_s=silence):
            if state.status == DECOMMISSIONED:
                raise Rejected("device_decommissioned", "a decommissioned device id is not reused")
            if state.status != "none":
                raise Rejected("device_already_registered", f"the device is {state.status}")
            if not site.strip():
                raise Rejected("missing_site", "site must not be empty")
            if not MIN_SILENCE_S <= silence <= MAX_SILENCE_S:
                raise Rejected(
                    "invalid_silence_after",
                    f"silence_after_s must be between {MIN_SILENCE_S} and {MAX_SILENCE_S}, got {silence}",
                )
            return [DeviceRegistered(site=site, name=name, silence_after_s=silence)]
        case ConfigureThresholds(metric=metric, high=high, clear_below=clear, for_windows=n):
            _require_device(state)
            if not metric.strip():
                raise Rejected("missing_metric", "metric must not be empty")
            if not _finite(high, clear) or clear > high:
                raise Rejected("invalid_threshold", f"need finite clear_below <= high, got {clear} / {high}")
            if not 1 <= n <= MAX_FOR_WINDOWS:
                raise Rejected("invalid_for_windows", f"for_windows must be 1..{MAX_FOR_WINDOWS}, got {n}")
            current = state.metric(metric)
            if current is None and len(state.metrics) >= MAX_METRICS:
                raise Rejected("too_many_metrics", f"a device has at most {MAX_METRICS} metrics")
            if current is not None and (current.high, current.clear_below, current.for_windows) == (
                high, clear, n,
            ):  # fmt: skip
                return []
            return [ThresholdsConfigured(metric=metric, high=high, clear_below=clear, for_windows=n)]
        case RecordTelemetryWindow():
            return _record_window(state, command)
        case UpdateDeviceStatus(status=status, reason=reason):
            _require_device(state)
            if status not in STATUSES:
                raise Rejected("invalid_status", f"status must be one of {', '.join(STATUSES)}")
            if status == state.status:
                return []
            return [DeviceStatusChanged(status=status, previous=state.status, reason=reason)]
        case MarkDeviceSilent(last_seen_ms=last_seen):
            _require_device(state)
            if state.silent or state.status != "online" or state.last_seen_ms > last_seen:
                return []  # already silent, silence expected, or heard from since
            return [DeviceWentSilent(last_seen_ms=last_seen)]
        case AcknowledgeAlert(metric=metric, by=by, note=note):
            _require_device(state)
            current = state.metric(metric)
            if current is None or not current.alert_id:
                raise Rejected("no_open_alert", f"{metric} has no open alert")
            if current.acknowledged:
                raise Rejected("alert_already_acknowledged", f"{current.alert_id} is acknowledged")
            return [AlertAcknowledged(metric=metric, alert_id=current.alert_id, by=by, note=note)]
        case DecommissionDevice(reason=reason):
            _require_device(state)
            return [DeviceDecommissioned(reason=reason)]
    raise Rejected("unknown_command", type(command).__name__)


def _record_window(state: DeviceState, w: RecordTelemetryWindow) -> list[Message]:
    _require_device(state)
    if w.count <= 0 or w.window_end <= w.window_start or not _finite(w.sum, w.min, w.max):
        raise Rejected("invalid_window", "a window needs count > 0, end > start and finite values")
    if not w.device_id or not w.metric:
        raise Rejected("invalid_window", "a window names its device and metric")
    current = state.metric(w.metric)
    if current is not None and w.window_start <= current.last_window_start:
        return []  # a replay, or older than the last window folded
    if current is None and len(state.metrics) >= MAX_METRICS:
        raise Rejected("too_many_metrics", f"a device has at most {MAX_METRICS} metrics")
    recorded = TelemetryWindowRecorded(
        device_id=w.device_id, metric=w.metric, window_start=w.window_start, window_end=w.window_end,
        count=w.count, sum=w.sum, min=w.min, max=w.max, last_ts=w.last_ts,
    )  # fmt: skip
    events: list[Message] = [recorded]
    after = evolve(state, recorded).metric(w.metric)
    assert after is not None
    if after.alert_id:
        if w.max < after.clear_below:
            events.append(AlertCleared(w.metric, after.alert_id, w.window_start, w.max))
    elif after.for_windows and after.streak >= after.for_windows:
        events.append(
            AlertRaised(
                metric=w.metric, alert_id=alert_id(w.metric, w.window_start), window_start=w.window_start,
                value=w.max, high=after.high, windows=after.streak,
            )
        )  # fmt: skip
    return events


def evolve(state: DeviceState, event: Message) -> DeviceState:
    """Fold one event into the device; unknown events leave it unchanged."""
    match event:
        case DeviceRegistered(site=site, name=name, silence_after_s=silence):
            return DeviceState("online", site, name, silence, False, state.last_seen_ms, state.metrics)
        case ThresholdsConfigured(metric=metric, high=high, clear_below=clear, for_windows=n):
            m = state.metric(metric) or MetricState(metric)
            return state.with_metric(
                MetricState(metric, m.last_window_start, high, clear, n, m.streak, m.alert_id, m.acknowledged)
            )
        case TelemetryWindowRecorded():
            m = state.metric(event.metric) or MetricState(event.metric)
            counting = m.for_windows > 0 and not m.alert_id and state.status != "maintenance"
            streak = m.streak + 1 if counting and event.max > m.high else 0
            seen = max(state.last_seen_ms, event.last_ts)
            heard = DeviceState(
                state.status, state.site, state.name, state.silence_after_s, False, seen, state.metrics
            )
            return heard.with_metric(
                MetricState(m.metric, event.window_start, m.high, m.clear_below, m.for_windows, streak,
                            m.alert_id, m.acknowledged)
            )  # fmt: skip
        case AlertRaised(metric=metric, alert_id=raised):
            m = state.metric(metric) or MetricState(metric)
            return state.with_metric(
                MetricState(
                    metric, m.last_window_start, m.high, m.clear_below, m.for_windows, 0, raised, False
                )
            )
        case AlertAcknowledged(metric=metric):
            m = state.metric(metric) or MetricState(metric)
            return state.with_metric(
                MetricState(metric, m.last_window_start, m.high, m.clear_below, m.for_windows, m.streak,
                            m.alert_id, True)
            )  # fmt: skip
        case AlertCleared(metric=metric):
            m = state.metric(metric) or MetricState(metric)
            return state.with_metric(
                MetricState(metric, m.last_window_start, m.high, m.clear_below, m.for_windows, 0, "", False)
            )
        case DeviceStatusChanged(status=status):
            metrics = state.metrics
            if status == "maintenance":  # streaks restart after maintenance
                metrics = tuple(
                    MetricState(m.metric, m.last_window_start, m.high, m.clear_below, m.for_windows, 0,
                                m.alert_id, m.acknowledged)
                    for m in metrics
                )  # fmt: skip
            return DeviceState(
                status,
                state.site,
                state.name,
                state.silence_after_s,
                state.silent,
                state.last_seen_ms,
                metrics,
            )
        case DeviceWentSilent():
            return DeviceState(
                state.status, state.site, state.name, state.silence_after_s, True, state.last_seen_ms,
                state.metrics,
            )  # fmt: skip
        case DeviceDecommissioned():
            return DeviceState(
                DECOMMISSIONED, state.site, state.name, state.silence_after_s, state.silent,
                state.last_seen_ms, state.metrics,
            )  # fmt: skip
    return state
