"""`streams replay <ctx> <view>`: rebuild a view from offset 0 beside the live version.

The new version gets its own consumer groups, stores and topic suffix (`<ctx>.<view>.vN`).
Workers start it when the control record says `building: N`; this command follows its
progress from the group's committed offsets and, once it has caught up with the log, makes it
the active version (workers switch the query API and drop the old version's stores), then
deletes the old version's topics and groups. The live version serves until the switch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from streams.config import Settings
from streams.core.clock import utc_now
from streams.core.views import View, ViewVersions
from streams.kafka import clients
from streams.kafka.clients import take, watermarks
from streams.kafka.runtime import ContextRuntime
from streams.read.readside import read_versions
from streams.read.replay_helpers import ReplayHelpers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One progress line of a replay."""

    version: int
    events_done: int
    events_total: int
    lag: int
    events_per_s: float
    elapsed_s: float


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did and how fast."""

    old_version: int
    new_version: int
    events: int
    seconds: float
    events_per_s: float
    helpers: int = 0
    """Helper processes that joined in building the new version beside the workers (`--processes`)."""


def publish_versions(settings: Settings, runtime: ContextRuntime, record: ViewVersions) -> None:
    """Write a control record (compacted, key = view name)."""
    producer = clients.producer(settings)
    producer.produce(runtime.topics.views_control, runtime.codec.encode(record), record.view.encode())
    if producer.flush(30):
        raise TimeoutError("control record not acknowledged")


def _ends(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {p: watermarks(consumer, TopicPartition(topic, p))[1] for p in range(partitions)}


def _committed(group: str, topic: str, partitions: int, settings: Settings) -> dict[int, int]:
    tps = clients.committed_offsets(settings, group, [TopicPartition(topic, p) for p in range(partitions)])
    return {tp.partition: max(tp.offset, 0) for tp in tps}


def raw_consume_rate(settings: Settings, topic: str, partitions: int) -> tuple[int, float]:
    """Records and records/s of a bare confluent-kafka read of `topic` from 0 to its current end."""
    consumer = clients.reader(settings, eof=True)
    ends = _ends(consumer, topic, partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    start = time.perf_counter()
    count = 0
    positions = dict.fromkeys(ends, 0)
    while any(positions[p] < ends[p] for p in ends):
        eof: set[tuple[str, int]] = set()
        # take(), not consume(): consume() would wait 1 s on the last partial batch
        for msg in clients.records(take(consumer, 10000, 1.0), "raw consume", eof=eof):
            count += 1
            positions[msg.partition()] = msg.offset() + 1
        for _, partition in eof:
            positions[partition] = max(positions[partition], ends[partition])
    seconds = time.perf_counter() - start
    consumer.close()
    return count, count / seconds if seconds > 0 else 0.0


def replay(
    settings: Settings,
    runtime: ContextRuntime,
    view_name: str,
    *,
    on_progress: Callable[[Progress], None] = lambda _: None,
    max_lag: int = 0,
    timeout_s: float = 3600.0,
    drop_after_s: float = 5.0,
    processes: int = 0,
) -> ReplayReport:
    """Build a new version of `view_name` from offset 0, switch to it once caught up, drop the old.
    `processes` helper processes join the workers in building it (`streams.read.replay_helpers`)
    and leave before the switch."""
    views = {v.name: v for v in runtime.context.views}
    if view_name not in views:
        raise KeyError(f"unknown view {view_name!r}; known: {', '.join(views)}")
    if processes < 0:
        raise ValueError(f"processes must be 0 or more, not {processes}")
    view = views[view_name]
    current = read_versions(settings, runtime)[0].get(view_name) or ViewVersions(view_name, 1)
    if current.building:
        raise RuntimeError(f"{view_name} v{current.building} is already being built")
    old, new = current.active, current.active + 1
    started = time.perf_counter()
    helpers = ReplayHelpers(settings, runtime, view_name, new, view.repartitioned)
    try:
        helpers.start(processes)  # members before the workers start the version: they take part
        publish_versions(settings, runtime, ViewVersions(view_name, old, new, utc_now()))
        processed = _follow(settings, runtime, view, new, started, on_progress, max_lag, timeout_s, helpers)
    finally:
        helpers.stop()
    seconds = time.perf_counter() - started
    publish_versions(settings, runtime, ViewVersions(view_name, new, 0, utc_now()))
    time.sleep(drop_after_s)  # let workers switch and leave the old groups before deleting them
    drop_version(settings, runtime, view_name, old, repartitioned=view.repartitioned)
    return ReplayReport(old, new, processed, seconds, processed / seconds if seconds else 0.0, helpers.joined)


def _follow(
    settings: Settings,
    runtime: ContextRuntime,
    view: View,
    new: int,
    started: float,
    on_progress: Callable[[Progress], None],
    max_lag: int,
    timeout_s: float,
    helpers: ReplayHelpers,
) -> int:
    """Follow the new version's committed offsets until it is at most `max_lag` events behind;
    the events it has folded."""
    n = settings.partitions
    events = runtime.topics.events
    group = runtime.groups.view(view.name, new)
    first_group = runtime.groups.repartition(view.name, new) if view.repartitioned else group
    watcher = clients.reader(settings)
    try:
        while True:
            time.sleep(1.0)
            elapsed = time.perf_counter() - started
            ends = _ends(watcher, events, n)
            done = _committed(first_group, events, n, settings)
            lag = sum(max(ends[p] - done.get(p, 0), 0) for p in ends)
            if view.repartitioned:
                topic = runtime.topics.repartition(view.name, new)
                rends = _ends(watcher, topic, n)
                rdone = _committed(group, topic, n, settings)
                lag += sum(max(rends[p] - rdone.get(p, 0), 0) for p in rends)
            processed = sum(done.values())
            on_progress(Progress(new, processed, sum(ends.values()), lag, processed / elapsed, elapsed))
            if (lag <= max_lag and processed > 0) or (sum(ends.values()) == 0):
                return processed
            if failed := helpers.failed():
                log.warning(
                    "%d replay helper(s) ended early (exit codes %s): the workers take over",
                    len(failed),
                    failed,
                )
            if elapsed > timeout_s:
                raise TimeoutError(f"{view.name} v{new} did not catch up within {timeout_s}s (lag {lag})")
    finally:
        watcher.close()


def drop_version(
    settings: Settings, runtime: ContextRuntime, view_name: str, version: int, *, repartitioned: bool
) -> None:
    """Delete a version's topics and consumer groups (best effort: groups still in use stay)."""
    admin = clients.admin(settings)
    topics = [runtime.topics.view_version(view_name, version)]
    groups = [runtime.groups.view(view_name, version)]
    if repartitioned:
        topics += [
            runtime.topics.repartition(view_name, version),
            runtime.topics.repartition_keys(view_name, version),
        ]
        groups.append(runtime.groups.repartition(view_name, version))
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # already gone
            future.result()
    for _ in range(10):
        pending = []
        for name, future in admin.delete_consumer_groups(groups, request_timeout=10).items():
            try:
                future.result()
            except Exception as exc:
                if "NOT_EMPTY" in str(exc):
                    pending.append(name)
        if not pending:
            return
        groups = pending
        time.sleep(2.0)
