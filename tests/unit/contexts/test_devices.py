"""The devices rules, read as given/when/then, and the conformance check."""

from __future__ import annotations

from pathlib import Path

from streams.contexts.devices import (
    AcknowledgeAlert,
    AlertAcknowledged,
    AlertCleared,
    AlertRaised,
    ConfigureThresholds,
    DecommissionDevice,
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceStatusChanged,
    DeviceWentSilent,
    MarkDeviceSilent,
    RecordTelemetryWindow,
    RegisterDevice,
    TelemetryWindowRecorded,
    ThresholdsConfigured,
    UpdateDeviceStatus,
    context,
)
from streams.core.views import EventMeta, fold_view
from streams.testing import assert_conformant, given
from tests.compat.samples_tool import SAMPLES

T0 = 1_767_225_600_000
REGISTERED = DeviceRegistered(site="plant-1", name="probe", silence_after_s=120)
THRESHOLDS = ThresholdsConfigured(metric="temp", high=80.0, clear_below=70.0, for_windows=2)


def window(i: int, peak: float, metric: str = "temp") -> RecordTelemetryWindow:
    """The command for window number `i` (10 s windows from T0) peaking at `peak`."""
    start = T0 + i * 10_000
    return RecordTelemetryWindow(
        "dev-1", metric, start, start + 10_000, 5, peak * 5, peak, peak, start + 9_000
    )


def recorded(i: int, peak: float, metric: str = "temp") -> TelemetryWindowRecorded:
    w = window(i, peak, metric)
    return TelemetryWindowRecorded(
        w.device_id, w.metric, w.window_start, w.window_end, w.count, w.sum, w.min, w.max, w.last_ts
    )


def test_a_device_is_registered_once_at_a_site() -> None:
    state = given(context).when(RegisterDevice("plant-1", "probe", 120)).then(REGISTERED)
    assert state.status == "online" and state.site == "plant-1"
    given(context, REGISTERED).when(RegisterDevice("plant-1")).then_rejected("device_already_registered")
    given(context).when(RegisterDevice(" ")).then_rejected("missing_site")
    given(context).when(RegisterDevice("p", silence_after_s=5)).then_rejected("invalid_silence_after")


def test_unknown_and_decommissioned_devices_are_rejected() -> None:
    gone = (REGISTERED, DeviceDecommissioned("replaced"))
    for command in (
        window(0, 50.0),
        ConfigureThresholds("temp", 80.0, 70.0),
        UpdateDeviceStatus("offline"),
        MarkDeviceSilent(T0),
        AcknowledgeAlert("temp"),
        DecommissionDevice(),
    ):
        given(context).when(command).then_rejected("unknown_device")
        given(context, *gone).when(command).then_rejected("device_decommissioned")
    given(context, *gone).when(RegisterDevice("plant-1")).then_rejected("device_decommissioned")


def test_thresholds_need_hysteresis_and_a_window_count() -> None:
    given(context, REGISTERED).when(ConfigureThresholds("temp", 80.0, 70.0, 2)).then(THRESHOLDS)
    given(context, REGISTERED).when(ConfigureThresholds("temp", 80.0, 90.0)).then_rejected(
        "invalid_threshold"
    )
    given(context, REGISTERED).when(ConfigureThresholds("temp", float("nan"), 1.0)).then_rejected(
        "invalid_threshold"
    )
    given(context, REGISTERED).when(ConfigureThresholds("temp", 80.0, 70.0, 0)).then_rejected(
        "invalid_for_windows"
    )
    given(context, REGISTERED, THRESHOLDS).when(ConfigureThresholds("temp", 80.0, 70.0, 2)).then()


def test_every_new_window_is_recorded_and_older_ones_are_ignored() -> None:
    given(context, REGISTERED).when(window(3, 50.0)).then(recorded(3, 50.0))
    given(context, REGISTERED, recorded(3, 50.0)).when(window(3, 50.0)).then()  # a replay
    given(context, REGISTERED, recorded(3, 50.0)).when(window(2, 99.0)).then()  # older
    given(context, REGISTERED, recorded(3, 50.0)).when(window(3, 50.0, "hum")).then(recorded(3, 50.0, "hum"))


def test_an_alert_is_raised_after_n_consecutive_breaching_windows() -> None:
    state = given(context, REGISTERED, THRESHOLDS).when(window(0, 85.0)).then(recorded(0, 85.0))
    assert state.metric("temp").streak == 1
    raised = AlertRaised("temp", f"temp@{T0 + 10_000}", T0 + 10_000, 86.0, 80.0, 2)
    given(context, REGISTERED, THRESHOLDS, recorded(0, 85.0)).when(window(1, 86.0)).then(
        recorded(1, 86.0), raised
    )
    # a window at or below `high` breaks the streak
    history = (REGISTERED, THRESHOLDS, recorded(0, 85.0), recorded(1, 80.0))
    state = given(context, *history).when(window(2, 85.0)).then(recorded(2, 85.0))
    assert state.metric("temp").streak == 1


def test_an_alert_clears_only_below_clear_below_and_never_opens_twice() -> None:
    raised = AlertRaised("temp", f"temp@{T0 + 10_000}", T0 + 10_000, 86.0, 80.0, 2)
    open_alert = (REGISTERED, THRESHOLDS, recorded(0, 85.0), recorded(1, 86.0), raised)
    # still high or between the thresholds: the alert stays open, and no second one is raised
    given(context, *open_alert).when(window(2, 95.0)).then(recorded(2, 95.0))
    given(context, *open_alert, recorded(2, 95.0)).when(window(3, 75.0)).then(recorded(3, 75.0))
    cleared = AlertCleared("temp", raised.alert_id, T0 + 40_000, 69.0)
    state = given(context, *open_alert).when(window(4, 69.0)).then(recorded(4, 69.0), cleared)
    assert state.metric("temp").alert_id == "" and state.metric("temp").streak == 0


def test_acknowledging_an_alert() -> None:
    raised = AlertRaised("temp", "temp@1", T0, 86.0, 80.0, 2)
    history = (REGISTERED, THRESHOLDS, raised)
    given(context, *history).when(AcknowledgeAlert("temp", "op", "on it")).then(
        AlertAcknowledged("temp", "temp@1", "op", "on it")
    )
    given(context, *history, AlertAcknowledged("temp", "temp@1", "op", "")).when(
        AcknowledgeAlert("temp")
    ).then_rejected("alert_already_acknowledged")
    given(context, REGISTERED, THRESHOLDS).when(AcknowledgeAlert("temp")).then_rejected("no_open_alert")


def test_maintenance_suppresses_alerts_and_restarts_streaks() -> None:
    maintenance = DeviceStatusChanged("maintenance", "online", "")
    history = (REGISTERED, THRESHOLDS, recorded(0, 85.0), maintenance)
    given(context, *history).when(window(1, 99.0)).then(recorded(1, 99.0))
    back = DeviceStatusChanged("online", "maintenance", "")
    state = given(context, *history, recorded(1, 99.0), back).when(window(2, 99.0)).then(recorded(2, 99.0))
    assert state.metric("temp").streak == 1  # counting starts again after maintenance


def test_status_changes_only_when_it_changes() -> None:
    given(context, REGISTERED).when(UpdateDeviceStatus("maintenance", "x")).then(
        DeviceStatusChanged("maintenance", "online", "x")
    )
    given(context, REGISTERED).when(UpdateDeviceStatus("online")).then()
    given(context, REGISTERED).when(UpdateDeviceStatus("broken")).then_rejected("invalid_status")


def test_silence_is_news_only_for_an_online_device_not_heard_from_since() -> None:
    given(context, REGISTERED, recorded(0, 1.0)).when(MarkDeviceSilent(T0 + 9_000)).then(
        DeviceWentSilent(T0 + 9_000)
    )
    given(context, REGISTERED, recorded(1, 1.0)).when(MarkDeviceSilent(T0 + 9_000)).then()  # heard since
    silent = (REGISTERED, recorded(0, 1.0), DeviceWentSilent(T0 + 9_000))
    given(context, *silent).when(MarkDeviceSilent(T0 + 9_000)).then()
    offline = DeviceStatusChanged("offline", "online", "")
    given(context, REGISTERED, offline).when(MarkDeviceSilent(T0)).then()
    state = given(context, *silent).when(window(5, 1.0)).then(recorded(5, 1.0))
    assert not state.silent and state.last_seen_ms == T0 + 59_000


def test_decommissioning() -> None:
    given(context, REGISTERED).when(DecommissionDevice("gone")).then(DeviceDecommissioned("gone"))


def test_a_device_has_at_most_32_metrics() -> None:
    history = [REGISTERED, *(recorded(0, 1.0, f"m{i}") for i in range(32))]
    given(context, *history).when(window(1, 1.0, "m99")).then_rejected("too_many_metrics")
    given(context, *history).when(window(1, 1.0, "m0")).then(recorded(1, 1.0, "m0"))


def _meta(i: int, event: object) -> EventMeta:
    return EventMeta("dev-1", i, type(event).__name__, "2026-01-01T00:00:00Z")


def test_views_follow_an_alert_from_raise_to_clear() -> None:
    raised = AlertRaised("temp", f"temp@{T0}", T0, 86.0, 80.0, 2)
    history = [
        REGISTERED,
        THRESHOLDS,
        recorded(0, 86.0),
        raised,
        AlertAcknowledged("temp", raised.alert_id, "op", ""),
    ]
    history += [recorded(1, 60.0), AlertCleared("temp", raised.alert_id, T0 + 10_000, 60.0)]
    events = [(e, _meta(i + 1, e)) for i, e in enumerate(history)]
    views = {v.name: v for v in context.views}
    opened = fold_view(views["alerts"], events[:4])["dev-1"].state
    assert opened is not None and opened["state"] == "open" and opened["open"] == 1
    doc = fold_view(views["alerts"], events)["dev-1"].state
    assert doc is not None and doc["state"] == "clear" and doc["alerts"][0]["status"] == "cleared"
    status = fold_view(views["device-status"], events)["dev-1"].state
    assert status is not None and status["open_alerts"] == [] and status["metrics"]["temp"]["max"] == 60.0
    site = fold_view(views["site-summary"], events[:4])["plant-1"].state
    assert site == {
        "site": "plant-1", "devices": {"dev-1": ["online", 0, 1]}, "total": 1,
        "online": 1, "offline": 0, "maintenance": 0, "silent": 0, "alerting": 1,
    }  # fmt: skip
    rows = fold_view(views["telemetry-10s"], events)
    assert set(rows) == {f"dev-1|temp|{T0}", f"dev-1|temp|{T0 + 10_000}"}
    assert rows[f"dev-1|temp|{T0}"].state["max"] == 86.0  # type: ignore[index]


def test_site_summary_counts_silent_offline_and_decommissioned_devices() -> None:
    view = next(v for v in context.views if v.name == "site-summary")
    events = []
    for i, device in enumerate(("a", "b", "c")):
        events.append((REGISTERED, EventMeta(device, 1, "DeviceRegistered", "")))
        events.append((recorded(0, 1.0), EventMeta(device, 2, "TelemetryWindowRecorded", "")))
        del i
    events.append((DeviceWentSilent(T0), EventMeta("a", 3, "DeviceWentSilent", "")))
    events.append(
        (DeviceStatusChanged("offline", "online", ""), EventMeta("b", 3, "DeviceStatusChanged", ""))
    )
    events.append((DeviceDecommissioned(""), EventMeta("c", 3, "DeviceDecommissioned", "")))
    doc = fold_view(view, events)["plant-1"].state
    assert doc is not None
    assert (doc["total"], doc["online"], doc["silent"], doc["offline"]) == (2, 0, 1, 1)
    events.append((recorded(1, 1.0), EventMeta("a", 4, "TelemetryWindowRecorded", "")))
    doc = fold_view(view, events)["plant-1"].state
    assert doc is not None and (doc["online"], doc["silent"]) == (1, 0)


def test_devices_is_conformant() -> None:
    assert_conformant(context, Path(SAMPLES / "devices"))


def test_the_conformance_check_covers_the_windows() -> None:
    from dataclasses import replace

    from streams.contexts.devices.telemetry import TELEMETRY
    from streams.testing import conformance

    wrong = replace(context, windows=(replace(TELEMETRY, close=lambda window: DeviceWentSilent(0)),))
    failures = conformance(wrong, Path(SAMPLES / "devices"))
    assert any("closes into ['DeviceWentSilent'" in f for f in failures), failures
    broken = replace(context, windows=(replace(TELEMETRY, fold=lambda acc, r: 1 / 0),))
    assert any(
        "window telemetry fails on the record samples" in f for f in conformance(broken, SAMPLES / "devices")
    )
