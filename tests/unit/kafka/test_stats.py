"""Consumer lag and rebalances read from librdkafka's statistics (streams.kafka.stats)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from prometheus_client import REGISTRY

from streams.config import Settings
from streams.kafka.clients import prefetch_bounds
from streams.kafka.stats import EXPIRE_INTERVALS, PartitionLag, StatsCollector, parse, partition_lag


def partition(**fields: Any) -> dict[str, Any]:
    base = {"fetch_state": "active", "desired": True, "app_offset": -1001, "committed_offset": -1001,
            "ls_offset": -1001, "hi_offset": -1001, "consumer_lag": -1}  # fmt: skip
    return {**base, **fields}


def report(client: str, partitions: dict[str, dict[str, Any]], rebalances: int = 1, topic: str = "t") -> str:
    """A statistics JSON as librdkafka writes it (the fields the parser reads, and some it skips)."""
    unassigned = partition(desired=False, fetch_state="none")
    return json.dumps(
        {
            "name": client,
            "type": "consumer",
            "brokers": {"localhost:9092/1": {"rtt": {"avg": 100}}},
            "topics": {topic: {"topic": topic, "partitions": {**partitions, "-1": unassigned}}},
            "cgrp": {"state": "up", "rebalance_cnt": rebalances, "assignment_size": len(partitions)},
        }
    )


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_lag_is_the_last_stable_offset_minus_the_committed_offset() -> None:
    """Records handed over but not committed yet (a batch being folded) still count."""
    assert partition_lag(partition(committed_offset=10, app_offset=20, ls_offset=25, hi_offset=30)) == 15


def test_a_transactional_member_counts_from_the_records_handed_over() -> None:
    """Its offsets are committed in the producer's transaction: the consumer's committed offset
    stays where it was at the assignment."""
    part = partition(committed_offset=10, app_offset=20, ls_offset=25)
    assert partition_lag(part, commits=False) == 5


def test_without_a_stable_offset_the_high_watermark_is_the_end() -> None:
    assert partition_lag(partition(committed_offset=10, hi_offset=12)) == 2


def test_each_position_falls_back_on_the_other() -> None:
    assert partition_lag(partition(app_offset=4, ls_offset=9)) == 5
    assert partition_lag(partition(committed_offset=4, ls_offset=9), commits=False) == 5


def test_a_lag_is_unknown_until_both_ends_are_known() -> None:
    assert partition_lag(partition(app_offset=3)) is None
    assert partition_lag(partition(ls_offset=3)) is None


def test_a_position_past_the_end_is_no_lag() -> None:
    assert partition_lag(partition(committed_offset=12, ls_offset=10)) == 0


def test_parse_reads_assigned_partitions_only() -> None:
    raw = report(
        "rdkafka#consumer-1",
        {
            "1": partition(app_offset=1, ls_offset=4),
            "0": partition(app_offset=5, ls_offset=5),
            "2": partition(desired=False, fetch_state="none", app_offset=0, ls_offset=9),
        },
        rebalances=3,
    )
    stats = parse(raw)
    assert stats.client == "rdkafka#consumer-1"
    assert stats.lags == (PartitionLag("t", 0, 0), PartitionLag("t", 1, 3))
    assert (stats.rebalances, stats.assigned) == (3, 3)


def test_the_collector_sets_lag_and_counts_rebalances_once() -> None:
    group, collector = f"g-{uuid.uuid4().hex[:6]}", StatsCollector(interval_s=5)
    collector.apply(group, parse(report("c1", {"0": partition(app_offset=2, ls_offset=9)})), now=0)
    collector.apply(group, parse(report("c1", {"0": partition(app_offset=9, ls_offset=9)})), now=5)
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="0") == 0
    assert value("streams_consumer_rebalances_total", group=group) == 1
    again = {"0": partition(app_offset=9, ls_offset=9)}
    collector.apply(group, parse(report("c1", again, rebalances=2)), now=10)
    assert value("streams_consumer_rebalances_total", group=group) == 2
    assert value("streams_consumer_assigned_partitions", group=group) == 1


def test_a_revoked_partition_loses_its_series() -> None:
    group, collector = f"g-{uuid.uuid4().hex[:6]}", StatsCollector(interval_s=5)
    both = {"0": partition(app_offset=1, ls_offset=2), "1": partition(app_offset=1, ls_offset=7)}
    collector.apply(group, parse(report("c1", both)), now=0)
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="1") == 6
    collector.apply(group, parse(report("c1", {"0": both["0"]}, rebalances=2)), now=5)
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="1") is None
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="0") == 1


def test_a_silent_client_expires_but_not_the_series_its_successor_took_over() -> None:
    group, collector = f"g-{uuid.uuid4().hex[:6]}", StatsCollector(interval_s=5)
    collector.apply(group, parse(report("old", {"0": partition(app_offset=1, ls_offset=2)})), now=0)
    collector.apply(group, parse(report("old", {"1": partition(app_offset=1, ls_offset=2)})), now=1)
    collector.apply(group, parse(report("new", {"1": partition(app_offset=1, ls_offset=5)})), now=2)
    collector.expire(now=1 + EXPIRE_INTERVALS * 5 + 0.1)
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="1") == 4
    collector.expire(now=2 + EXPIRE_INTERVALS * 5 + 0.1)
    assert value("streams_consumer_lag_records", group=group, topic="t", partition="1") is None
    assert value("streams_consumer_assigned_partitions", group=group) is None


def test_the_callback_queues_and_the_thread_applies() -> None:
    group, collector = f"g-{uuid.uuid4().hex[:6]}", StatsCollector(interval_s=0.05)
    collector.callback(group)(report("cb", {"3": partition(app_offset=0, ls_offset=8)}))
    collector.callback(group)("not json")  # logged, the thread goes on
    collector.callback(group)(report("cb", {"3": partition(app_offset=1, ls_offset=8)}))

    deadline = time.monotonic() + 5
    while value("streams_consumer_lag_records", group=group, topic="t", partition="3") != 7:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_fetch_queue_is_the_members_one_queue_not_a_sum_over_partitions() -> None:
    """A group member's partitions all forward to its one consumer queue, and librdkafka reports
    that queue's size as every partition's fetchq_size (seen on a member of 8 partitions: 8 times
    the same 2,122,766 bytes): summing them counted the queue once per partition."""
    raw = report("c-queue", {str(p): partition(fetchq_size=1000) for p in range(8)})
    assert parse(raw).queued_bytes == 1000
    group = f"g-{uuid.uuid4().hex[:6]}"
    StatsCollector().apply(group, parse(raw), time.monotonic())
    assert value("streams_consumer_fetch_queue_bytes", group=group) == 1000


def test_group_members_prefetch_a_bounded_queue() -> None:
    """librdkafka's defaults (64 MiB of payloads, 100,000 records, 1 MiB fetched per partition at
    once) are replaced by the settings' byte, record and fetch bounds."""
    settings = Settings(
        consumer_queue_bytes=8 * 1024 * 1024, consumer_queue_records=5000, consumer_fetch_bytes=32768
    )
    assert prefetch_bounds(settings) == {
        "queued.max.messages.kbytes": 8192,
        "queued.min.messages": 5000,
        "max.partition.fetch.bytes": 32768,
    }
    defaults = prefetch_bounds(Settings(consumer_queue_bytes=100))
    assert defaults == {
        "queued.max.messages.kbytes": 1,
        "queued.min.messages": 10000,
        "max.partition.fetch.bytes": 65536,
    }


def test_the_fetch_queue_records_are_exported() -> None:
    raw = report("c-records", {str(p): partition(fetchq_cnt=15000, fetchq_size=900) for p in range(4)})
    assert parse(raw).queued_records == 15000
    group = f"g-{uuid.uuid4().hex[:6]}"
    StatsCollector().apply(group, parse(raw), time.monotonic())
    assert value("streams_consumer_fetch_queue_records", group=group) == 15000
