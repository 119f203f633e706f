"""The devices context's read models (pure folds of its events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.contexts.devices.messages import (
    AlertAcknowledged,
    AlertCleared,
    AlertRaised,
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceStatusChanged,
    DeviceWentSilent,
    TelemetryWindowRecorded,
    ThresholdsConfigured,
)
from streams.core.decider import Message
from streams.core.views import EventMeta, State, View

MAX_ALERTS_KEPT = 20
"""The `alerts` document keeps a device's latest alerts only."""


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC (`...Z`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def device_status(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`device-status`: one document per device: status, silence, last seen, open alerts and the
    latest window of each metric."""
    doc: dict[str, Any] = dict(state) if state is not None else {"open_alerts": [], "metrics": {}}
    match event:
        case DeviceRegistered(site=site, name=name, silence_after_s=silence):
            doc.update(site=site, name=name, status="online", silent=False, silence_after_s=silence)
            doc.setdefault("last_seen", 0)
        case DeviceStatusChanged(status=status):
            doc["status"] = status
        case DeviceWentSilent():
            doc["silent"] = True
        case DeviceDecommissioned():
            doc["status"] = "decommissioned"
        case ThresholdsConfigured(metric=metric, high=high, clear_below=clear, for_windows=n):
            metrics = dict(doc["metrics"])
            metrics[metric] = {
                **metrics.get(metric, {}),
                "high": high,
                "clear_below": clear,
                "for_windows": n,
            }
            doc["metrics"] = metrics
        case TelemetryWindowRecorded(metric=metric):
            metrics = dict(doc["metrics"])
            metrics[metric] = {
                **metrics.get(metric, {}),
                "window_start": event.window_start,
                "count": event.count,
                "max": event.max,
                "mean": event.sum / event.count,
            }
            doc["metrics"] = metrics
            doc["silent"] = False
            if event.last_ts > doc.get("last_seen", 0):
                doc.update(last_seen=event.last_ts, last_seen_at=iso(event.last_ts))
        case AlertRaised(metric=metric):
            doc["open_alerts"] = sorted({*doc["open_alerts"], metric})
        case AlertCleared(metric=metric):
            doc["open_alerts"] = [m for m in doc["open_alerts"] if m != metric]
    doc["version"] = meta.aggregate_version
    return doc


# --- site-summary: online / offline / alerting per site (re-keyed by site) ------------------------


def site_of(event: Message, previous: str | None) -> str | None:
    """`site-summary` is keyed by the site a device was registered at."""
    return event.site if isinstance(event, DeviceRegistered) else previous


_COUNTED = ("online", "offline", "maintenance", "silent", "alerting")


def site_summary(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`site-summary`: per site, each device as `[status, silent (0/1), open alerts]` and the
    counts: online (and not silent), offline, maintenance, silent, alerting, total."""
    devices: dict[str, list[Any]] = dict((state or {}).get("devices", {}))
    device = meta.aggregate_id
    entry = list(devices.get(device, ["online", 0, 0]))
    match event:
        case DeviceRegistered():
            entry = ["online", 0, 0]
        case DeviceStatusChanged(status=status):
            entry[0] = status
        case DeviceWentSilent():
            entry[1] = 1
        case TelemetryWindowRecorded():
            if entry[1] == 0 and device in devices:
                return state  # nothing a site counts changed
            entry[1] = 0
        case AlertRaised():
            entry[2] += 1
        case AlertCleared():
            entry[2] = max(0, entry[2] - 1)
        case DeviceDecommissioned():
            devices.pop(device, None)
            return _site_counts(devices, state, event)
        case _:
            if device in devices:
                return state
    devices[device] = entry
    return _site_counts(devices, state, event)


def _site_counts(devices: dict[str, list[Any]], state: State | None, event: Message) -> State | None:
    if not devices:
        return None
    counts = dict.fromkeys(_COUNTED, 0)
    for status, silent, alerts in devices.values():
        if silent and status == "online":
            counts["silent"] += 1
        elif status in counts:
            counts[status] += 1
        counts["alerting"] += alerts > 0
    site = event.site if isinstance(event, DeviceRegistered) else (state or {}).get("site", "")
    return {"site": site, "devices": devices, "total": len(devices), **counts}


# --- alerts: per device, its open alert per metric and its latest alerts --------------------------


def alerts(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`alerts`: per device, `state` (open / acknowledged / clear: the worst of its alerts) and
    the latest alerts with their history (raised, acknowledged, cleared)."""
    doc: dict[str, Any] = dict(state) if state is not None else {"alerts": [], "state": "clear", "site": ""}
    match event:
        case DeviceRegistered(site=site):
            doc["site"] = site
        case AlertRaised():
            raised = {
                "alert_id": event.alert_id, "metric": event.metric, "status": "open",
                "raised_window": event.window_start, "raised_at": iso(event.window_start),
                "value": event.value, "high": event.high, "windows": event.windows,
            }  # fmt: skip
            doc["alerts"] = [*doc["alerts"], raised][-MAX_ALERTS_KEPT:]
        case AlertAcknowledged(alert_id=aid, by=by, note=note):
            doc["alerts"] = _update(doc["alerts"], aid, status="acknowledged", acknowledged_by=by, note=note)
        case AlertCleared(alert_id=aid, window_start=start, value=value):
            doc["alerts"] = _update(
                doc["alerts"], aid, status="cleared", cleared_window=start, cleared_value=value
            )
        case DeviceDecommissioned():
            doc["alerts"] = [
                {**a, "status": "closed"} if a["status"] in ("open", "acknowledged") else a
                for a in doc["alerts"]
            ]
        case _:
            if state is not None:
                return state
    statuses = {a["status"] for a in doc["alerts"]}
    doc["state"] = "open" if "open" in statuses else "acknowledged" if "acknowledged" in statuses else "clear"
    doc["open"] = sum(a["status"] in ("open", "acknowledged") for a in doc["alerts"])
    return doc


def _update(items: list[dict[str, Any]], alert_id: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**a, **changes} if a["alert_id"] == alert_id else a for a in items]


# --- telemetry-10s: one row per device, metric and window ------------------------------------------


def window_key(event: Message, previous: str | None) -> str | None:
    """`telemetry-10s` is keyed by device, metric and window start."""
    if isinstance(event, TelemetryWindowRecorded):
        return f"{event.device_id}|{event.metric}|{event.window_start}"
    return None


def telemetry_row(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`telemetry-10s`: a window's summary (upserted into PostgreSQL by the JDBC sink)."""
    if not isinstance(event, TelemetryWindowRecorded):
        return state
    return {
        "device_id": event.device_id,
        "metric": event.metric,
        "window_start": event.window_start,
        "window_end": event.window_end,
        "start": iso(event.window_start),
        "count": event.count,
        "sum": event.sum,
        "min": event.min,
        "max": event.max,
        "mean": event.sum / event.count,
    }


VIEWS = (
    View("device-status", device_status, list_fields=("site", "status")),
    View("site-summary", site_summary, key_by=site_of),
    View("alerts", alerts, list_fields=("site", "state")),
    View(
        "telemetry-10s",
        telemetry_row,
        key_by=window_key,
        list_fields=("device_id", "metric"),
        keep_on_move=True,  # a row per window: the next window does not retract the last one
    ),
)
