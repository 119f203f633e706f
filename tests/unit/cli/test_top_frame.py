"""`streams top`'s frame from two samples of /metrics: rates, quantiles as histogram_quantile
computes them, lags, dead letters, aborts and rebalances; and its rendering."""

from __future__ import annotations

import pytest
from rich.console import Console

from streams.cli.top import render
from streams.cli.top_frame import Sample, bucket_quantile, frame

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2)


def exposition(accepted: int, rejected: int, events: int, latency: dict[float, int], lag: int, dlq: int,
               aborts: int, rebalances: int, cpu: float) -> str:  # fmt: skip
    place, add = 'context="orders",command_type="PlaceOrder"', 'context="orders",command_type="AddItem"'
    lines = [
        "# TYPE streams_commands_total counter",
        f'streams_commands_total{{{place},status="accepted",reason=""}} {accepted}',
        f'streams_commands_total{{{add},status="rejected",reason="not_open"}} {rejected}',
        "# TYPE streams_events_appended_total counter",
        f'streams_events_appended_total{{context="orders",event_type="OrderPlaced"}} {events}',
        "# TYPE streams_command_latency_seconds histogram",
    ]
    cumulative = 0
    for le in BUCKETS:
        cumulative += latency.get(le, 0)
        lines.append(f'streams_command_latency_seconds_bucket{{context="orders",le="{le}"}} {cumulative}')
    cumulative += latency.get(float("inf"), 0)
    lines += [
        f'streams_command_latency_seconds_bucket{{context="orders",le="+Inf"}} {cumulative}',
        f'streams_command_latency_seconds_count{{context="orders"}} {cumulative}',
        f'streams_command_latency_seconds_sum{{context="orders"}} {cumulative * 0.01}',
        "# TYPE streams_consumer_lag_records gauge",
        f'streams_consumer_lag_records{{group="g.view",topic="t.events",partition="2"}} {lag}',
        'streams_consumer_lag_records{group="g.view",topic="t.events",partition="0"} 0',
        "# TYPE streams_dlq_records_total counter",
        f'streams_dlq_records_total{{context="orders",reason="malformed_record"}} {dlq}',
        "# TYPE streams_transaction_retries_total counter",
        f'streams_transaction_retries_total{{context="orders",cause="KafkaException"}} {aborts}',
        "# TYPE streams_consumer_rebalances_total counter",
        f'streams_consumer_rebalances_total{{group="g.view"}} {rebalances}',
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {cpu}",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 104857600",
    ]
    return "\n".join(lines) + "\n"


def test_a_frame_from_two_samples() -> None:
    old = Sample.parse(exposition(100, 10, 100, {0.005: 50}, 7, 1, 2, 1, 3.0), at=10.0)
    # 2 s later: 40 accepted, 4 rejected, 100 latencies (50 <= 5 ms, 40 in (5, 10], 10 in (0.1, 0.15])
    new = Sample.parse(exposition(140, 14, 140, {0.005: 100, 0.01: 40, 0.15: 10}, 30, 5, 3, 2, 4.0), at=12.0)
    shown = frame(old, new)
    assert shown.seconds == 2.0
    assert shown.accepted_per_s == 20.0
    assert shown.rejected_per_s == {"rejected: not_open": 2.0}
    assert shown.events_per_s == {"orders": 20.0}
    # 100 new observations: p50 is the 50th, at the 5 ms edge; p95 in (0.1, 0.15]: 0.1 + 0.05 * 5/10
    assert shown.latency_s[0.5] == pytest.approx(0.005)
    assert shown.latency_s[0.95] == pytest.approx(0.125)
    assert shown.latency_s[0.99] == pytest.approx(0.145)
    assert shown.lag == {("g.view", "t.events", 0): 0.0, ("g.view", "t.events", 2): 30.0}
    assert shown.dlq_per_s == {"orders: malformed_record": 2.0}
    assert shown.aborts == {"orders: KafkaException": 1.0} and shown.aborts_total == 3
    assert shown.rebalances == {"g.view": 1.0} and shown.rebalances_total == 2
    assert shown.accepted_total == 140 and shown.rejected_total == 14
    assert shown.cpu_share == 0.5 and shown.rss_bytes == 100 * 2**20


def test_no_new_observations_leave_the_quantiles_empty_and_a_reset_counter_counts_from_zero() -> None:
    old = Sample.parse(exposition(100, 0, 100, {0.005: 5}, 0, 0, 0, 0, 1.0), at=0.0)
    new = Sample.parse(exposition(6, 0, 100, {0.005: 5}, 0, 0, 0, 0, 1.5), at=1.0)
    shown = frame(old, new)
    assert shown.latency_s == {}
    assert shown.accepted_per_s == 6.0  # went down: the worker restarted, its counter began at 0


def test_bucket_quantile_in_the_infinite_bucket_is_the_last_finite_edge() -> None:
    assert bucket_quantile(0.99, [0.1, 1.0, float("inf")], [0.0, 0.0, 10.0]) == 1.0
    assert bucket_quantile(0.5, [0.1, 1.0, float("inf")], [10.0, 10.0, 10.0]) == pytest.approx(0.05)


def test_the_frame_renders_every_panel() -> None:
    old = Sample.parse(exposition(100, 10, 100, {}, 7, 1, 2, 1, 3.0), at=0.0)
    new = Sample.parse(exposition(110, 11, 110, {0.01: 10}, 9, 2, 2, 1, 3.5), at=1.0)
    console = Console(width=120, record=True)
    console.print(render(frame(old, new), "http://w1"))
    text = console.export_text()
    panels = (
        "Commands/s",
        "Command → result",
        "Events/s",
        "Consumer lag",
        "Dead letters/s",
        "Aborts and rebalances",
    )
    for heading in (*panels, "t.events[2]", "rejected: not_open", "orders: malformed_record"):
        assert heading in text, heading
