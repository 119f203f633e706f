"""The checker, in the shape of Kafka's `transactions_test.py`: after the scenarios, read the logs
and say what was lost, duplicated or half-visible."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.client import read_topic
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import take
from streams.wire import headers as h
from streams.wire.topics import ContextTopics


@dataclass(frozen=True)
class Event:
    """What the checker needs of an event record."""

    command_id: str
    aggregate: str
    version: int


@dataclass
class Verdict:
    """The checker's counts, and every problem it found (none: passed)."""

    accepted: int
    results: int
    events: int
    aborted_records: int
    seen_by_reader: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def judge(
    accepted: Iterable[str],
    results: Counter[str],
    events: list[Event],
    committed: set[tuple[int, int]],
    uncommitted: set[tuple[int, int]],
    seen: set[tuple[int, int]],
) -> Verdict:
    """Every accepted command id has exactly one result and its event exactly once; versions
    per aggregate are 1..n; what the concurrent read_committed reader `seen` (partition,
    offset) was committed, never one of the aborted records (read_uncommitted less committed)."""
    accepted = set(accepted)
    per_command = Counter(e.command_id for e in events)
    aborted = uncommitted - committed
    problems: list[str] = []

    def problem(what: str, items: Iterable[Any]) -> None:
        listed = sorted(items, key=str)
        if listed:
            problems.append(f"{len(listed)} {what}, e.g. {listed[:3]}")

    problem("accepted commands without a result", accepted - set(results))
    problem("commands with more than one result", (c for c, n in results.items() if n > 1))
    problem("accepted commands without an event", accepted - set(per_command))
    problem("commands whose event was appended twice", (c for c, n in per_command.items() if n > 1))
    problem("events of commands never accepted", set(per_command) - accepted)
    versions: dict[str, list[int]] = defaultdict(list)
    for e in events:
        versions[e.aggregate].append(e.version)
    problem(
        "aggregates whose versions are not 1..n",
        (a for a, v in versions.items() if v != list(range(1, len(v) + 1))),
    )
    problem("aborted records seen by the read_committed reader", seen & aborted)
    problem("records seen by the read_committed reader that are not in the log", seen - uncommitted)
    return Verdict(len(accepted), sum(results.values()), len(events), len(aborted), len(seen), problems)


def positions(settings: Settings, topic: str, isolation: str) -> set[tuple[int, int]]:
    """(partition, offset) of every data record of `topic` under `isolation`."""
    consumer = clients.reader(settings, overrides={"isolation.level": isolation})
    consumer.subscribe([topic])
    found: set[tuple[int, int]] = set()
    idle = 0.0
    try:
        while idle < 3.0:
            batch = take(consumer, 1000, 0.25)
            idle = idle + 0.25 if not batch else 0.0
            found.update((m.partition(), m.offset()) for m in batch if m.error() is None)
    finally:
        consumer.close()
    return found


def check(settings: Settings, seen: set[tuple[int, int]], wait_s: float = 300.0) -> Verdict:
    """Read the orders context's logs (waiting up to `wait_s` for the last results) and judge."""
    topics = ContextTopics("orders", settings.topic_prefix)
    accepted = {
        h.as_dict(m.headers())[h.COMMAND_ID] for m in read_topic(settings, topics.commands, idle_timeout=3.0)
    }
    deadline = time.monotonic() + wait_s
    while True:
        results: Counter[str] = Counter(
            m.key().decode()
            for m in read_topic(settings, topics.results, idle_timeout=3.0)
            if m.value() is not None
        )
        if accepted <= set(results) or time.monotonic() > deadline:
            break
        time.sleep(2)
    events = []
    for m in read_topic(settings, topics.events, idle_timeout=3.0):
        meta = h.as_dict(m.headers())
        events.append(Event(meta[h.COMMAND_ID], m.key().decode(), int(meta[h.AGGREGATE_VERSION])))
    committed = positions(settings, topics.events, "read_committed")
    uncommitted = positions(settings, topics.events, "read_uncommitted")
    return judge(accepted, results, events, committed, uncommitted, seen)
