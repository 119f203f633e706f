"""The devices fleet on the real stack: readings -> window stage -> decider -> events and views.

One worker runs the devices context (window stage, write side, read side). Readings carry event
times in the past (a test's own stretch of time, later than the previous test's: stream time is
per partition and only moves forward), so a minute of telemetry takes seconds to send.
"""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import pytest

from streams.client import CommandClient, RecordSender
from streams.contexts.devices import (
    AlertCleared,
    AlertRaised,
    DecommissionDevice,
    DeviceWentSilent,
    TelemetryReading,
)
from streams.wire import headers as h
from streams.wire.topics import partition_for
from tests.integration.windows.fleet import WINDOW_MS, Fleet, aligned_past, metric_value
from tests.integration.workers import Deployment, wait_until

pytestmark = pytest.mark.integration


class Timeline:
    """Stretches of event time for the tests, each later than the one before (and in the past)."""

    def __init__(self) -> None:
        self.lag_s = 3000

    def stretch(self, seconds: int) -> int:
        """The start (a window boundary) of `seconds` of event time after every earlier stretch."""
        self.lag_s -= seconds + 120
        assert self.lag_s > 60, "the module's tests need more time than its timeline holds"
        return aligned_past(self.lag_s)


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return Timeline()


def run_id() -> str:
    return uuid.uuid4().hex[:6]


def test_readings_become_windows_then_an_alert_raised_and_cleared_and_the_views(
    fleet: Fleet, timeline: Timeline
) -> None:
    run = run_id()
    devices = [f"a{run}-{i}" for i in range(6)]
    site = f"site-{run}"
    fleet.register(devices, site=site, high=80.0, clear_below=70.0, for_windows=2)
    t0 = timeline.stretch(60)
    # a minute of readings, one a second per device; device 0 runs hot for 30 s (windows 1-3)
    readings = [
        (d, "temp", 90.0 if i == 0 and 10 <= s < 40 else 60.0 + i, t0 + s * 1000 + i)
        for s in range(60)
        for i, d in enumerate(devices)
    ]
    fleet.send(readings)
    # the last window closes by the idle flush: nothing follows it on its partition
    windows = fleet.wait_windows(devices, 36)
    for (device, _metric, start), recorded in windows.items():
        if device not in devices:
            continue
        assert len(recorded) == 1, f"window {device} {start} recorded {len(recorded)} times"
        i = devices.index(device)
        expected = [v for d, _, v, ts in readings if d == device and start <= ts < start + WINDOW_MS]
        assert recorded[0].count == len(expected) == 10
        assert math.isclose(recorded[0].sum, sum(expected)) and recorded[0].max == max(expected)
        del i
    events = [(d, e) for d, _, e in fleet.events() if d == devices[0]]
    alerts = [e for _, e in events if isinstance(e, AlertRaised | AlertCleared)]
    raised_at = t0 + 2 * WINDOW_MS  # the second hot window (10-20 s, 20-30 s)
    assert alerts == [
        AlertRaised("temp", f"temp@{raised_at}", raised_at, 90.0, 80.0, 2),
        AlertCleared("temp", f"temp@{raised_at}", t0 + 4 * WINDOW_MS, 60.0),
    ]

    status = wait_until(
        lambda: (
            (d := fleet.view("device-status", devices[0]))
            and d["state"]["metrics"]["temp"]["window_start"] == t0 + 5 * WINDOW_MS
            and d
        ),
        "device-status",
    )
    assert status["state"]["open_alerts"] == [] and status["state"]["site"] == site
    assert status["state"]["last_seen"] == t0 + 59_000
    history = wait_until(
        lambda: (d := fleet.view("alerts", devices[0])) and d["state"]["state"] == "clear" and d, "alerts"
    )
    assert [(a["alert_id"], a["status"]) for a in history["state"]["alerts"]] == [
        (f"temp@{raised_at}", "cleared")
    ]
    summary = wait_until(lambda: fleet.view("site-summary", site), "site-summary")
    assert (summary["state"]["total"], summary["state"]["online"], summary["state"]["alerting"]) == (6, 6, 0)
    row = wait_until(
        lambda: fleet.view("telemetry-10s", f"{devices[0]}|temp|{raised_at}"), "telemetry-10s row"
    )
    assert (
        row["state"]["count"] == 10
        and row["state"]["max"] == 90.0
        and row["state"]["device_id"] == devices[0]
    )


def test_bad_readings_are_dead_lettered_with_their_reason_and_the_stage_goes_on(
    fleet: Fleet, timeline: Timeline, deployment: Deployment
) -> None:
    run = run_id()
    ok, gone = f"b{run}-ok", f"b{run}-gone"
    fleet.register([ok, gone])
    table = metric_value(fleet.url, "streams_window_records_total", outcome="table")
    with CommandClient(fleet.settings, "devices") as client:
        assert client.execute(gone, DecommissionDevice("scrapped")).accepted
    wait_until(
        lambda: metric_value(fleet.url, "streams_window_records_total", outcome="table") > table, "table"
    )
    late_before = metric_value(fleet.url, "streams_window_late_records_total")
    t0 = timeline.stretch(60)
    now = int(time.time() * 1000)
    with RecordSender(fleet.settings, "devices") as sender:
        codec = sender.runtime.codec

        def reading(value: float, ts: int) -> bytes:
            return codec.encode(TelemetryReading("temp", value, ts))

        sender.send_raw(None, reading(1.0, t0))  # no key
        sender.send(f"ghost-{run}", TelemetryReading("temp", 1.0, t0), timestamp_ms=t0)
        sender.send(gone, TelemetryReading("temp", 1.0, t0), timestamp_ms=t0)
        sender.send_raw(
            ok.encode(), f'{{"metric": "temp", "value": "hot", "ts": {t0}}}'.encode(), timestamp_ms=t0
        )
        sender.send(ok, TelemetryReading("temp", math.nan, t0), timestamp_ms=t0)
        sender.send(ok, TelemetryReading("temp", 1.0, now + 3_600_000), timestamp_ms=now)  # far in the future
        sender.send(
            ok, TelemetryReading("temp", 1.0, now - 8 * 86_400_000), timestamp_ms=now
        )  # past retention
        sender.send_raw(ok.encode(), b"\x07 not a reading", timestamp_ms=t0)
        # good readings around a late one: the window [t0, t0 + 10 s) closes at stream time t0 + 12 s
        sender.send(ok, TelemetryReading("temp", 5.0, t0 + 1000), timestamp_ms=t0 + 1000)
        sender.send(ok, TelemetryReading("temp", 6.0, t0 + 25_000), timestamp_ms=t0 + 25_000)
        sender.send(ok, TelemetryReading("temp", 99.0, t0 + 2000), timestamp_ms=t0 + 2000)  # late
        json_reading = f'{{"metric": "temp", "value": 7, "ts": {t0 + 26_000}, "unit": "C"}}'
        sender.send_raw(ok.encode(), json_reading.encode(), timestamp_ms=t0 + 26_000)

    def ours() -> list[dict[str, str]] | None:
        found = fleet.dead_letters(fleet.topics.window_dlq("telemetry"))
        found = [x for x in found if run in x["key"] or x["key"] == ""]
        return found if len(found) >= 8 else None

    letters = wait_until(ours, "8 dead letters")
    assert sorted(x[h.DLQ_REASON] for x in letters) == sorted(
        [
            "missing_key", "unknown_device", "decommissioned_device", "non_numeric_value",
            "non_numeric_value", "timestamp_in_future", "timestamp_too_old", "malformed_record",
        ]
    )  # fmt: skip
    assert all(x["dlq_stage"] == "windows" and x[h.DLQ_SOURCE] for x in letters)
    late = [x for x in fleet.dead_letters(fleet.topics.window_late("telemetry")) if x["key"] == ok]
    assert [x[h.DLQ_REASON] for x in late] == ["late_record"]
    assert late[0]["late_windows"] == f"{t0}-{t0 + 10_000}"
    assert metric_value(fleet.url, "streams_window_late_records_total") == late_before + 1
    # the stage went on: the good readings (Avro and JSON) are in their windows, the late one is not
    windows = fleet.wait_windows([ok], 2)
    assert windows[(ok, "temp", t0)][0].count == 1 and windows[(ok, "temp", t0)][0].max == 5.0
    assert windows[(ok, "temp", t0 + 20_000)][0].count == 2
    assert metric_value(fleet.url, "streams_window_records_total", outcome="unknown_device") >= 1
    assert deployment.workers["w1"].poll() is None


def test_a_burst_from_one_device_is_accepted_and_does_not_hold_the_others_back(
    fleet: Fleet, timeline: Timeline
) -> None:
    run = run_id()
    hot, cold = f"h{run}-hot", f"h{run}-cold"
    fleet.register([hot, cold])
    t0 = timeline.stretch(30)
    burst = [(hot, "temp", float(i % 50), t0 + i % WINDOW_MS) for i in range(20_000)]
    fleet.send(
        [
            *burst,
            (cold, "temp", 1.0, t0 + 5),
            (hot, "temp", 1.0, t0 + 15_000),
            (cold, "temp", 1.0, t0 + 15_000),
        ]
    )
    windows = fleet.wait_windows([hot, cold], 4)
    assert windows[(hot, "temp", t0)][0].count == 20_000 and windows[(hot, "temp", t0)][0].max == 49.0
    assert windows[(cold, "temp", t0)][0].count == 1


def test_a_quiet_partition_closes_its_windows_by_the_wall_clock(fleet: Fleet, timeline: Timeline) -> None:
    run = run_id()
    device = f"q{run}"
    fleet.register([device])
    t0 = timeline.stretch(20)
    fleet.send([(device, "temp", 3.0, t0 + 500)])
    sent = time.monotonic()
    # nothing else arrives on its partition: the idle flush closes the window (2 s idle, then 12 s
    # of wall clock to reach end + grace)
    windows = wait_until(
        lambda: w if (device, "temp", t0) in (w := fleet.windows()) else None, "the idle flush"
    )
    assert windows[(device, "temp", t0)][0].count == 1
    assert time.monotonic() - sent < 60
    assert metric_value(fleet.url, "streams_windows_closed_total", trigger="idle") >= 1
    # its stream time trails the wall clock by about the timeline's lag (readings sent in the past)
    partition = str(partition_for(device.encode(), fleet.settings.partitions))
    behind = metric_value(fleet.url, "streams_window_stream_time_behind_seconds", partition=partition)
    assert behind > 60


def test_a_device_that_stops_sending_is_marked_silent(fleet: Fleet, timeline: Timeline) -> None:
    run = run_id()
    quiet, chatty = f"s{run}-quiet", f"s{run}-chatty"
    fleet.register([quiet], silence_after_s=30)
    # a device on the same partition keeps the stream time moving
    i = 0
    while partition_for(f"s{run}-chatty{i}".encode(), fleet.settings.partitions) != partition_for(
        quiet.encode(), fleet.settings.partitions
    ):
        i += 1
    chatty = f"s{run}-chatty{i}"
    fleet.register([chatty])
    t0 = timeline.stretch(90)
    readings = [(quiet, "temp", 1.0, t0 + s * 1000) for s in range(5)]
    readings += [(chatty, "temp", 1.0, t0 + s * 1000) for s in range(0, 80, 2)]
    fleet.send(readings)
    silent = wait_until(
        lambda: [e for d, _, e in fleet.events() if d == quiet and isinstance(e, DeviceWentSilent)], "silence"
    )
    assert len(silent) == 1 and t0 + 4000 <= silent[0].last_seen_ms < t0 + 4000 + WINDOW_MS
    status = wait_until(
        lambda: (d := fleet.view("device-status", quiet)) and d["state"]["silent"] and d, "view"
    )
    assert status["state"]["status"] == "online"
    # it speaks again: the next window clears the silence
    fleet.send([(quiet, "temp", 1.0, t0 + 81_000), (chatty, "temp", 1.0, t0 + 95_000)])
    wait_until(lambda: (d := fleet.view("device-status", quiet)) and not d["state"]["silent"], "back")
    assert metric_value(fleet.url, "streams_window_timers_fired_total") >= 1


def test_the_window_stage_survives_a_restart_without_emitting_a_window_twice(
    fleet: Fleet, timeline: Timeline, deployment: Deployment, tmp_path: Path
) -> None:
    run = run_id()
    devices = [f"r{run}-{i}" for i in range(8)]
    fleet.register(devices)
    t0 = timeline.stretch(40)
    fleet.send([(d, "temp", 1.0, t0 + s * 1000) for s in range(0, 15) for d in devices])
    deployment.kill("w1")  # kill -9 with windows open
    deployment.start("w1")
    deployment.wait_healthy("w1")
    fleet.send([(d, "temp", 1.0, t0 + s * 1000) for s in range(15, 30) for d in devices])
    windows = fleet.wait_windows(devices, 24)
    counts = {k: [e.count for e in v] for k, v in windows.items() if k[0] in devices}
    assert all(c == [10] for c in counts.values()), counts
