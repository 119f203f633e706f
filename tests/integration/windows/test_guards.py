"""What must not stall or blind the window stage (issue 23): a raw topic that differs from its
declaration, and one device whose clock runs an hour fast."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.client import RecordSender
from streams.contexts.devices import DeviceWentSilent, TelemetryReading
from streams.wire import headers as h
from streams.wire.topics import ContextTopics, partition_for
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.windows.fleet import Fleet, aligned_past, metric_value
from tests.integration.workers import Deployment, wait_until

pytestmark = pytest.mark.integration


def health(url: str) -> tuple[int, dict[str, Any]]:
    """The status and body of a worker's /health."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def settled_health(dep: Deployment) -> tuple[int, dict[str, Any]]:
    """The worker's /health once it says something else than `starting` (the worker's log when
    it exited instead)."""

    def settled() -> tuple[int, dict[str, Any]] | None:
        if dep.workers["w1"].poll() is not None:
            return -1, {"log": dep.log_tail("w1")}
        try:
            status, body = health(dep.url())
        except OSError:
            return None
        return (status, body) if status == 200 or body.get("status") != "starting" else None

    result: tuple[int, dict[str, Any]] = wait_until(
        settled, "the worker's /health to settle", timeout=180, every=0.5
    )
    return result


def with_a_one_partition_topic(
    tmp_path: Path, context: str, topic_of: Callable[[ContextTopics], str]
) -> tuple[Deployment, str]:
    """A deployment of `context` (not started) whose topic `topic_of(...)` exists already with
    one partition, where four are declared."""
    dep = Deployment(
        prefix=f"tpc{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        extra_env={"STREAMS_CONTEXTS": context, "STREAMS_SINKS": "0"},
    )
    settings = dep.settings()
    topic = topic_of(ContextTopics(context, settings.topic_prefix))
    admin = AdminClient(kafka_config(settings.bootstrap))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1)])[topic].result(30)
    return dep, topic


def same_partition(first: str, n: int, partitions: int) -> list[str]:
    """`n` device ids on the partition of `first`."""
    home = partition_for(first.encode(), partitions)
    found = [
        f"{first}-{i}" for i in range(1000) if partition_for(f"{first}-{i}".encode(), partitions) == home
    ]
    return found[:n]


def test_a_raw_topic_with_the_wrong_partition_count_is_a_named_error_not_a_silent_stall(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    # what broker auto-creation does when a device produces before any worker ran: one partition
    dep, raw = with_a_one_partition_topic(tmp_path, "devices", lambda t: t.window_input("telemetry"))
    dep.start("w1")
    try:
        status, body = settled_health(dep)
        assert status == 503, (status, body)
        assert body["status"] == "topic_mismatch"
        problems = [p for p in body["topics"] if p["topic"] == raw]
        assert {"topic": raw, "setting": "partitions", "declared": "4", "actual": "1"} in problems
        assert metric_value(dep.url(), "streams_topic_mismatches", topic=raw) == len(problems)
        named = f"TopicMismatch: topic {raw}: partitions is 1, declared 4"
        wait_until(lambda: named in dep.log_tail("w1", 400), "the window stage's error in the log")
        # and it stays so: no batch is tried on the missing partitions, nothing is retried for ever
        assert health(dep.url())[0] == 503
        assert metric_value(dep.url(), "streams_transaction_retries_total") == 0
    finally:
        dep.stop_all()


def test_one_device_clock_an_hour_fast_does_not_blind_its_partition(fleet: Fleet) -> None:
    run = uuid.uuid4().hex[:6]
    fast, *others = same_partition(f"c{run}", 4, fleet.settings.partitions)
    fleet.register([fast, *others])
    t0 = aligned_past(40)
    now = int(time.time() * 1000)
    with RecordSender(fleet.settings, "devices") as sender:
        # stamped by its own clock, 59 minutes fast (the broker's own bound is an hour)
        ahead = now + 59 * 60_000
        sender.send(fast, TelemetryReading("temp", 1.0, ahead), timestamp_ms=ahead)
        sender.flush()
        for s in range(25):  # then the other devices of its partition, on time
            for d in others:
                sender.send(d, TelemetryReading("temp", 2.0, t0 + s * 1000), timestamp_ms=t0 + s * 1000)
    windows = fleet.wait_windows(others, 9, timeout=90)
    assert sorted(e.count for v in windows.values() for e in v) == [5, 5, 5, 10, 10, 10, 10, 10, 10]
    letters = wait_until(
        lambda: [x for x in fleet.dead_letters(fleet.topics.window_dlq("telemetry")) if x["key"] == fast],
        "the fast reading in the DLQ",
    )
    assert [x[h.DLQ_REASON] for x in letters] == ["timestamp_in_future"]
    late = [x for x in fleet.dead_letters(fleet.topics.window_late("telemetry")) if x["key"] in others]
    assert late == []
    assert not [e for d, _, e in fleet.events() if d in others and isinstance(e, DeviceWentSilent)]
    assert metric_value(fleet.url, "streams_window_records_total", outcome="timestamp_in_future") >= 1


def test_a_metric_name_outside_the_allow_list_is_dead_lettered_and_never_reaches_the_decider(
    fleet: Fleet,
) -> None:
    run = uuid.uuid4().hex[:6]
    device = f"m{run}"
    fleet.register([device])
    now = int(time.time() * 1000)  # not in the past: the idle flush keeps stream time near the clock
    fleet.send(
        [(device, f"made-up-{run}-{i}", 1.0, now + i) for i in range(20)] + [(device, "temp", 2.0, now + 100)]
    )
    letters = wait_until(
        lambda: (
            found
            if len(
                found := [
                    x for x in fleet.dead_letters(fleet.topics.window_dlq("telemetry")) if x["key"] == device
                ]
            )
            >= 20
            else None
        ),
        "20 dead letters",
    )
    assert {x[h.DLQ_REASON] for x in letters} == {"unknown_metric"}
    windows = fleet.wait_windows([device], 1)  # the idle flush closes the temp window
    assert [metric for _, metric, _ in windows] == ["temp"]
    assert metric_value(fleet.url, "streams_window_records_total", outcome="unknown_metric") >= 20
    assert metric_value(fleet.url, "streams_commands_total", reason="too_many_metrics") == 0
