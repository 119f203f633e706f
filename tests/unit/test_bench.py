"""The benchmark's traffic and verdicts (no stack needed)."""

from __future__ import annotations

from bench.report import targets
from bench.traffic import commands
from streams.contexts.orders import context


def test_every_benchmark_command_is_accepted_with_one_event() -> None:
    states: dict[str, object] = {}
    for aggregate_id, command in commands(5000, 100):
        events = context.decide(states.get(aggregate_id, context.initial_state), command)
        assert len(events) == 1
        states[aggregate_id] = context.fold(events, states.get(aggregate_id, context.initial_state))
    assert len(states) == 100
    # each order's n-th item is a new sku: states grow to realistic sizes (49 lines here)
    assert {len(s.lines) for s in states.values()} == {49}  # type: ignore[attr-defined]


def test_targets_report_missing_figures_and_verdicts() -> None:
    figures = {
        "ratio_b_over_g": 2.1,
        "offline_write_us_per_command": 25.0,
        "ratio_scale_2_over_1": 1.4,
    }
    rows = {t: (v, met) for t, _, v, met in targets(figures)}
    assert rows["b ≥ 2.0 x g (Quix Streams)"] == ("2.10", True)
    assert rows["offline: ≤ 15 µs of CPU per command"] == ("25.0 µs", False)
    assert rows["b ≥ 1.5 x h (Kafka Streams, one stream thread)"] == ("-", None)
    assert rows["2 processes / 1 process (reported)"] == ("1.40", None)
    assert "p99 command→result ≤ 50 ms at 1,000/s" in rows
