"""The chaos checker's windows: every window the stage closed equals a replay of the raw readings
(`streams.core.windows.fold_windows`, the reference the tests use) and was closed once, every
reading is in a closed window or dead-lettered with its reason, and each window's command became
exactly one event."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.check import read_all
from streams.config import Settings
from streams.core.windows import ClosedWindow, WindowedAggregation, fold_windows, window_command_id
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.wire.dlq import source_of


@dataclass
class WindowVerdict:
    """What the window checker read of one aggregation, and its problems (none: passed)."""

    aggregation: str
    readings: int = 0
    dead_lettered: Mapping[str, int] = field(default_factory=dict)
    """Readings the stage refused or found late, by reason."""
    windows: int = 0
    """Windows of the replay."""
    problems: list[str] = field(default_factory=list)


def expected_commands(aggregation: WindowedAggregation, records: list[tuple[str, Any]]) -> dict[str, Any]:
    """The system command of every window of the replay of `records`, by its command id."""
    size = aggregation.spec.size_ms
    return {
        window_command_id(aggregation.name, key, group, start): aggregation.close(
            ClosedWindow(key, group, start, start + size, accumulator)
        )
        for (key, group, start), accumulator in fold_windows(aggregation, records).items()
    }


def window_problems(
    expected: Mapping[str, Any], sent: Mapping[str, list[Any]], events: Mapping[str, int]
) -> list[str]:
    """What differs between the replay's window commands (`expected`), the ones the stage sent
    (by command id, every copy in the commands topic) and the events per command id."""
    problems: list[str] = []

    def problem(what: str, ids: list[str]) -> None:
        if ids:
            problems.append(f"{len(ids)} {what}, e.g. {sorted(ids)[:3]}")

    problem("windows of the replay never closed", [i for i in expected if i not in sent])
    problem("windows closed more than once", [i for i, copies in sent.items() if len(copies) > 1])
    problem("windows closed that the replay does not have", [i for i in sent if i not in expected])
    problem(
        "windows whose figures differ from the replay",
        [i for i, copies in sent.items() if i in expected and copies[0] != expected[i]],
    )
    problem("window commands without exactly one event", [i for i in sent if events.get(i, 0) != 1])
    return problems


def check_windows(settings: Settings, runtime: ContextRuntime, wait_s: float = 240.0) -> list[WindowVerdict]:
    """Each windowed aggregation of the context against its replay, waiting up to `wait_s` for
    the last windows (closed by the idle flush) and their events."""
    topics, codec = runtime.topics, runtime.codec
    verdicts = []
    for aggregation in runtime.context.windows:
        verdict = WindowVerdict(aggregation.name)
        refused: Counter[str] = Counter()
        refused_at: set[str] = set()
        for topic in (topics.window_late(aggregation.name), topics.window_dlq(aggregation.name)):
            for msg in read_all(settings, topic):
                meta = h.as_dict(msg.headers())
                refused[meta[h.DLQ_REASON]] += 1
                refused_at.add(meta[h.DLQ_SOURCE])
        raw_topic = topics.window_input(aggregation.name)
        raw = read_all(settings, raw_topic)
        kept = [
            (m.key().decode(), codec.decode(m.value()).message)
            for m in raw
            if source_of(raw_topic, m.partition(), m.offset()) not in refused_at
        ]
        expected = expected_commands(aggregation, kept)
        verdict.readings, verdict.dead_lettered, verdict.windows = len(raw), dict(refused), len(expected)
        prefix = f"w:{aggregation.name}:"  # window_command_id's (a hashed id is found when expected)
        deadline = time.monotonic() + wait_s
        while True:
            sent: dict[str, list[Any]] = defaultdict(list)
            for msg in read_all(settings, topics.commands):
                command_id = h.as_dict(msg.headers()).get(h.COMMAND_ID, "")
                if command_id in expected or command_id.startswith(prefix):
                    sent[command_id].append(codec.decode(msg.value()).message)
            logged = read_all(settings, topics.events)
            events = Counter(h.as_dict(m.headers()).get(h.COMMAND_ID, "") for m in logged)
            verdict.problems = window_problems(expected, sent, events)
            if not verdict.problems or time.monotonic() > deadline:
                break
            time.sleep(2)
        verdicts.append(verdict)
    return verdicts
