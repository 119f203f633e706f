"""Exactly once under kill -9: the worker, with its window stage, decider and projectors, dies at
random moments while 100,000 telemetry readings stream in.

Afterwards every closed window must have been folded exactly once, with the count and sum of the
readings produced for it; the window stage must have sent each window's command exactly once
(not merely had it deduplicated by the decider); the alerts raised and cleared must be exactly
those the decider gives for the expected windows (none raised twice); and every view must equal
a replay of the event log.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from streams.client import CommandClient, RecordSender, read_topic
from streams.contexts.devices import (
    AlertCleared,
    AlertRaised,
    DeviceRegistered,
    RecordTelemetryWindow,
    TelemetryReading,
    ThresholdsConfigured,
    context,
)
from streams.core.views import fold_view
from streams.read.stage import event_meta
from streams.wire import headers as h
from streams.wire.jsonable import json_bytes
from tests.conftest import StackEndpoints
from tests.integration.windows.fleet import WINDOW_MS, Fleet, aligned_past
from tests.integration.workers import Deployment, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

DEVICES = int(os.environ.get("FAULT_DEVICES", "200"))
SECONDS = int(os.environ.get("FAULT_SECONDS", "500"))
"""Simulated seconds of telemetry: one reading per device and second (DEVICES x SECONDS readings)."""
KILLS = int(os.environ.get("FAULT_KILLS", "12"))
PRODUCE_S = float(os.environ.get("FAULT_PRODUCE_S", "150"))
HIGH, CLEAR, FOR = 80.0, 70.0, 2


def value(device: int, second: int) -> float:
    """Every fourth device runs hot twice (30-40 s each: an alert raised, then cleared)."""
    base = 60.0 + (second * 7 + device) % 9 * 0.5
    if device % 4 == 0:
        start = 50 + device % 40
        if start <= second < start + 30 or 250 <= second < 290:
            return 90.0 + device % 3
    return base


def test_kill_minus_nine_folds_every_window_exactly_once(stack: StackEndpoints, tmp_path: Path) -> None:
    seed = int(os.environ.get("FAULT_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    dep = Deployment(
        prefix=f"wfault{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        extra_env={"STREAMS_CONTEXTS": "devices", "STREAMS_SINKS": "0"},
    )
    dep.start("w1")
    dep.wait_healthy("w1")
    settings = dep.settings()
    fleet = Fleet(settings, dep.url())
    devices = [f"dev-{i:04d}" for i in range(DEVICES)]
    fleet.register(devices, site="plant", silence_after_s=3600, high=HIGH, clear_below=CLEAR, for_windows=FOR)
    t0 = aligned_past(SECONDS + int(PRODUCE_S) + 300)
    produced = 0

    def produce() -> None:
        nonlocal produced
        started = time.monotonic()
        with RecordSender(settings, "devices") as sender:
            for second in range(SECONDS):
                for i, device in enumerate(devices):
                    ts = t0 + second * 1000 + i % 1000
                    sender.send(device, TelemetryReading("temp", value(i, second), ts), timestamp_ms=ts)
                    produced += 1
                ahead = started + PRODUCE_S * (second + 1) / SECONDS - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # the load's pace, not a wait

    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    kills = 0
    while_producing = 0
    try:
        while kills < KILLS or producer.is_alive():
            time.sleep(rng.uniform(1.0, 8.0))  # when the next kill lands: a fault's timing, not a wait
            if kills >= KILLS:
                continue
            while_producing += producer.is_alive()
            dep.kill("w1")
            kills += 1
            dep.start("w1")
            if rng.random() < 0.6:  # otherwise killed again while it is still starting
                dep.wait_healthy("w1")
        producer.join()
        dep.wait_healthy("w1")
        assert produced == DEVICES * SECONDS

        expected_windows = len(devices) * (SECONDS * 1000 // WINDOW_MS)
        events = wait_until(
            lambda: ev if len(fleet.windows(ev := fleet.events())) >= expected_windows else None,
            f"{expected_windows} windows",
            timeout=600,
            every=5,
        )
        elapsed = time.monotonic() - started
        windows = fleet.windows(events)

        # 1. every window folded exactly once, with exactly the readings produced for it
        wrong = []
        for (device, _metric, start), recorded in windows.items():
            i = devices.index(device)
            seconds = range((start - t0) // 1000, (start - t0) // 1000 + WINDOW_MS // 1000)
            values = [value(i, s) for s in seconds]
            if (
                len(recorded) != 1
                or recorded[0].count != len(values)
                or not math.isclose(recorded[0].sum, sum(values))
            ):
                wrong.append((device, start, [(e.count, e.sum) for e in recorded], len(values)))
        assert not wrong, f"{len(wrong)} windows folded wrongly, e.g. {wrong[:5]}"
        assert len(windows) == expected_windows

        # 2. the window stage sent each window's command exactly once
        sent: Counter[str] = Counter()
        for msg in read_topic(settings, fleet.topics.commands, idle_timeout=2.0):
            if (msg.headers() or []) and h.as_dict(msg.headers()).get(h.ACTOR) == "windows:telemetry":
                sent[h.as_dict(msg.headers())[h.COMMAND_ID]] += 1
        repeated = {c: n for c, n in sent.items() if n > 1 and c.startswith("w:")}
        assert not repeated, f"window commands sent more than once: {list(repeated.items())[:5]}"
        assert sum(1 for c in sent if c.startswith("w:")) == expected_windows

        # 3. alerts: exactly those the decider gives for the expected windows, none raised twice
        actual: dict[str, list[Any]] = defaultdict(list)
        for device, _, event in events:
            if isinstance(event, AlertRaised | AlertCleared):
                actual[device].append(event)
        expected: dict[str, list[Any]] = {}
        for i, device in enumerate(devices):
            state = context.fold(
                [DeviceRegistered("plant", device, 3600), ThresholdsConfigured("temp", HIGH, CLEAR, FOR)]
            )
            out = []
            for w in range(SECONDS * 1000 // WINDOW_MS):
                values = [value(i, s) for s in range(w * 10, w * 10 + 10)]
                start = t0 + w * WINDOW_MS
                command = RecordTelemetryWindow(
                    device, "temp", start, start + WINDOW_MS, 10, sum(values), min(values), max(values),
                    start + 9000 + i % 1000,
                )  # fmt: skip
                decided = context.decide(state, command)
                state = context.fold(decided, state)
                out += [e for e in decided if isinstance(e, AlertRaised | AlertCleared)]
            if out:
                expected[device] = out
        raised = Counter(
            (d, e.alert_id) for d, evs in actual.items() for e in evs if isinstance(e, AlertRaised)
        )
        assert not [k for k, n in raised.items() if n > 1], "an alert was raised twice"
        assert {d: [(type(e).__name__, e.alert_id) for e in evs] for d, evs in actual.items()} == {
            d: [(type(e).__name__, e.alert_id) for e in evs] for d, evs in expected.items()
        }
        alerts = sum(len(v) for v in expected.values())

        # 4. every view equals a replay of the log
        views = _views_equal_a_replay(fleet, settings)

        late = fleet.dead_letters(fleet.topics.window_late("telemetry"))
        refused = fleet.dead_letters(fleet.topics.window_dlq("telemetry"))
        print(
            f"\nwindow fault injection (seed {seed}): {kills} kills ({while_producing} while readings "
            f"were arriving), {produced} readings over "
            f"{DEVICES} devices, {len(windows)} windows checked (each folded once, counts and sums "
            f"exact), {len(sent)} stage commands (none repeated), {alerts} alert events as expected "
            f"({sum(raised.values())} raised), {views} view documents equal to a replay, "
            f"{len(late)} late, {len(refused)} refused, {elapsed:.0f}s"
        )
        assert not late and not refused
        assert while_producing >= 10
    finally:
        dep.stop_all()


def _views_equal_a_replay(fleet: Fleet, settings: Any) -> int:
    """Wait until every view topic holds the replay of the log; the documents compared."""
    with CommandClient(settings, "devices", wait=False) as client:
        codec = client.runtime.codec
        log = [
            (codec.decode(msg.value()).message, event_meta(msg.headers(), msg.key().decode()))
            for msg in read_topic(settings, fleet.topics.events, idle_timeout=2.0)
        ]

        def published(view: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for msg in read_topic(settings, fleet.topics.view(view), idle_timeout=2.0):
                key = msg.key().decode()
                if msg.value() is None:
                    out.pop(key, None)
                else:
                    out[key] = json.loads(codec.decode(msg.value()).message.state)
            return out

        compared = 0
        for view in context.views:
            replay = {
                key: json.loads(json_bytes(doc.state))
                for key, doc in fold_view(view, log).items()
                if doc.state is not None
            }
            wait_until(
                lambda v=view.name, r=replay: published(v) == r, f"{view.name} = replay", timeout=300, every=5
            )
            compared += len(replay)
        return compared
