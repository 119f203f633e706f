"""The benchmark's traffic and verdicts (no stack needed)."""

from __future__ import annotations

from bench.main import targets
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
    rows = {t: (v, met) for t, _, v, met in targets({"commit_interval_ms": 100.0, "ratio_b_over_a": 0.6})}
    assert rows["b/a ≥ 0.5"] == ("0.60", True)
    assert rows["b/e ≥ 10"] == ("-", None)
    assert "p99 command→result ≤ 150 ms" in rows
