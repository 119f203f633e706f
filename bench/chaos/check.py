"""The checker, in the shape of Kafka's `transactions_test.py`: after the scenarios, read the logs
and say what was lost, duplicated or half-visible."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

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


def read_all(
    settings: Settings, topic: str, isolation: str = "read_committed", timeout_s: float = 300.0
) -> list[Any]:
    """Every data record of `topic`, up to each partition's end (its last stable offset under
    read_committed), through assigned partitions: no group to join and no idle timeout (on a
    starved machine a subscribing reader once got nothing within its 3 s idle timeout, and the
    checker saw no command at all)."""
    consumer = clients.reader(settings, eof=True, overrides={"isolation.level": isolation})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ends: set[tuple[str, int]] = set()
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: {len(ends)} of {len(partitions)} partitions read within {timeout_s:.0f}s"
                )
            found += clients.records(take(consumer, 1000, 0.5), f"reading {topic}", eof=ends)
        return found
    finally:
        consumer.close()


def positions(settings: Settings, topic: str, isolation: str) -> set[tuple[int, int]]:
    """(partition, offset) of every data record of `topic` under `isolation`."""
    return {(m.partition(), m.offset()) for m in read_all(settings, topic, isolation)}


def check(settings: Settings, seen: set[tuple[int, int]], wait_s: float = 300.0) -> Verdict:
    """Read the orders context's logs (waiting up to `wait_s` for the last results) and judge."""
    topics = ContextTopics("orders", settings.topic_prefix)
    accepted = {h.as_dict(m.headers())[h.COMMAND_ID] for m in read_all(settings, topics.commands)}
    deadline = time.monotonic() + wait_s
    while True:
        results: Counter[str] = Counter(
            m.key().decode() for m in read_all(settings, topics.results) if m.value() is not None
        )
        if accepted <= set(results) or time.monotonic() > deadline:
            break
        time.sleep(2)
    events = []
    for m in read_all(settings, topics.events):
        meta = h.as_dict(m.headers())
        events.append(Event(meta[h.COMMAND_ID], m.key().decode(), int(meta[h.AGGREGATE_VERSION])))
    committed = positions(settings, topics.events, "read_committed")
    uncommitted = positions(settings, topics.events, "read_uncommitted")
    return judge(accepted, results, events, committed, uncommitted, seen)
