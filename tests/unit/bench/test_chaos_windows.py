"""The chaos checker's comparison of the window stage's commands with a replay (no Kafka)."""

from __future__ import annotations

from bench.chaos.load import reading_for
from bench.chaos.windows import expected_commands, window_problems
from streams.contexts.devices import TelemetryReading
from streams.contexts.devices.telemetry import TELEMETRY
from streams.core.windows import window_command_id

T0 = 1_767_225_600_000


def test_the_replay_gives_one_command_per_window_with_its_figures() -> None:
    records = [("d1", TelemetryReading("temp", v, T0 + i * 3000)) for i, v in enumerate([1.0, 3.0, 2.0, 8.0])]
    expected = expected_commands(TELEMETRY, records)
    first = expected[window_command_id("telemetry", "d1", "temp", T0)]
    assert (first.count, first.sum, first.min, first.max, first.last_ts) == (4, 14.0, 1.0, 8.0, T0 + 9000)
    assert (first.window_start, first.window_end) == (T0, T0 + 10_000)
    assert len(expected) == 1


def test_every_difference_is_named() -> None:
    records = [(f"d{i}", TelemetryReading("temp", 1.0, T0)) for i in range(5)]
    expected = expected_commands(TELEMETRY, records)
    ids = sorted(expected)
    other = expected_commands(TELEMETRY, [("d2", TelemetryReading("temp", 2.0, T0))])
    sent = {
        ids[0]: [expected[ids[0]]],  # as the replay
        ids[1]: [expected[ids[1]], expected[ids[1]]],  # closed twice
        ids[2]: list(other.values()),  # other figures
        "w:telemetry:x:temp:0": [expected[ids[0]]],  # not in the replay
    }  # ids[3], ids[4]: never closed
    events = {ids[0]: 1, ids[1]: 1, ids[2]: 2}
    assert window_problems(expected, sent, events) == [
        f"2 windows of the replay never closed, e.g. {[ids[3], ids[4]]}",
        f"1 windows closed more than once, e.g. {[ids[1]]}",
        "1 windows closed that the replay does not have, e.g. ['w:telemetry:x:temp:0']",
        f"1 windows whose figures differ from the replay, e.g. {[ids[2]]}",
        f"2 window commands without exactly one event, e.g. {sorted([ids[2], 'w:telemetry:x:temp:0'])}",
    ]
    assert window_problems(expected, {i: [expected[i]] for i in ids}, dict.fromkeys(ids, 1)) == []


def test_readings_are_round_robin_and_exact_in_halves() -> None:
    devices = ["a", "b", "c"]
    made = [reading_for(n, devices, T0 + n) for n in range(30)]
    assert [d for d, _ in made[:4]] == ["a", "b", "c", "a"]
    assert all((r.value * 2).is_integer() and r.metric == "temp" for _, r in made)
