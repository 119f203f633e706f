"""The bench's verdicts and its table of figures (printed, and generated into BENCHMARKS.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table

Verdict = tuple[str, str, str, bool | None]


def targets(results: dict[str, Any]) -> list[Verdict]:
    """(target, key, figure, met?) for each target of issue 28 that `make bench` measures (the
    HTTP and real-time targets are in their own result files)."""
    rows: list[Verdict] = []

    def add(target: str, key: str, fmt: str, ok: Callable[[float], bool] | None) -> None:
        value = results.get(key)
        met = None if value is None or ok is None else ok(value)
        rows.append((target, key, "-" if value is None else fmt.format(value), met))

    add("offline: ≤ 15 µs of CPU per command", "offline_write_us_per_command", "{:.1f} µs", lambda v: v <= 15)
    add(
        "offline: projector ≤ 10 µs of CPU per event",
        "offline_read_us_per_event",
        "{:.1f} µs",
        lambda v: v <= 10,
    )
    add("b ≥ 2.0 x g (Quix Streams)", "ratio_b_over_g", "{:.2f}", lambda v: v >= 2)
    add("b ≥ 1.5 x h (Kafka Streams, one stream thread)", "ratio_b_over_h", "{:.2f}", lambda v: v >= 1.5)
    add("at least once no slower than exactly once (c/b ≥ 1)", "ratio_c_over_b", "{:.2f}", lambda v: v >= 1)
    add("replay ≥ 0.25 x raw consume", "ratio_d_replay_over_raw", "{:.2f}", lambda v: v >= 0.25)
    add(
        "replay with helper processes ≥ 0.25 x raw consume",
        "ratio_d_replay_parallel_over_raw",
        "{:.2f}",
        lambda v: v >= 0.25,
    )
    add("p99 command→result ≤ 50 ms at 1,000/s", "latency_p99_ms", "{:.0f} ms", lambda v: v <= 50)
    add("p99 command→result ≤ 150 ms at 5,000/s", "latency_5000_p99_ms", "{:.0f} ms", lambda v: v <= 150)
    add("b/e reported (the seed's design, a pool per core)", "ratio_b_over_e", "{:.1f}", None)
    add("b/f reported (eventsourcing)", "ratio_b_over_f", "{:.1f}", None)
    add("2 processes / 1 process (reported)", "ratio_scale_2_over_1", "{:.2f}", None)
    add(
        "telemetry ≥ 10,000 readings/s (stage + decider)",
        "telemetry_end_to_end_rps",
        "{:,.0f}",
        lambda v: v >= 10_000,
    )
    add(
        "telemetry: window close → AlertRaised p99 ≤ 1 s",
        "telemetry_alert_p99_after_close_ms",
        "{:,.0f} ms",
        lambda v: v <= 1000,
    )
    offered = results.get("telemetry_offered_rps", 0)
    add(
        "telemetry sustained: folds what is offered (≥ 10,000/s)",
        "telemetry_sustained_folded_rps",
        "{:,.0f}",
        lambda v: v >= 0.98 * offered and offered >= 9_900,
    )
    return rows


_ROWS = [
    ("offline: write path, CPU per command (no Kafka)", "offline_write_us_per_command", "{:.1f} µs"),
    ("offline: projector, CPU per event (no Kafka)", "offline_read_us_per_event", "{:.1f} µs"),
    ("a. ceiling: bare consume→transactional produce", "a_ceiling_rps", "{:,.0f} rec/s"),
    ("   the same loop, {fanout} output records per input (a')", "a_fanout_rps", "{:,.0f} rec/s"),
    ("b. write path, exactly once", "b_write_path_cps", "{:,.0f} cmd/s"),
    ("   per command", "b_us_per_command", "{:,.0f} µs"),
    ("c. write path, at least once", "c_write_path_cps", "{:,.0f} cmd/s"),
    ("latency p50 at {rate}/s (exactly once)", "latency_p50_ms", "{:.1f} ms"),
    ("latency p99 at {rate}/s (exactly once)", "latency_p99_ms", "{:.1f} ms"),
    ("latency p50 at 5,000/s (exactly once)", "latency_5000_p50_ms", "{:.1f} ms"),
    ("latency p99 at 5,000/s (exactly once)", "latency_5000_p99_ms", "{:.1f} ms"),
    ("scale-out: 1 worker process", "scale_1_cps", "{:,.0f} cmd/s"),
    ("scale-out: 2 worker processes", "scale_2_cps", "{:,.0f} cmd/s"),
    ("d. live view, events into the view topic", "d_live_view_events_per_s", "{:,.0f} ev/s"),
    ("   replay (streams replay, end to end)", "d_replay_events_per_s", "{:,.0f} ev/s"),
    ("   replay's projector, first to last batch", "d_projector_steady_events_per_s", "{:,.0f} ev/s"),
    ("   replay with helper processes (--processes)", "d_replay_parallel_events_per_s", "{:,.0f} ev/s"),
    ("   raw read_committed consume, same topic", "d_raw_events_per_s", "{:,.0f} ev/s"),
    ("e. seed design: PostgreSQL EventStore, pool of a connection per core", "e_seed_cps", "{:,.0f} cmd/s"),
    ("f. eventsourcing library, PostgreSQL", "f_eventsourcing_cps", "{:,.0f} cmd/s"),
    ("g. Quix Streams, exactly once", "g_quix_cps", "{:,.0f} cmd/s"),
    ("h. Kafka Streams (Java), exactly once", "h_kstreams_cps", "{:,.0f} cmd/s"),
    ("b / a", "ratio_b_over_a", "{:.2f}"),
    ("b / a'", "ratio_b_over_a_fanout", "{:.2f}"),
    ("c / b", "ratio_c_over_b", "{:.2f}"),
    ("d replay / raw", "ratio_d_replay_over_raw", "{:.2f}"),
    ("d replay with helpers / raw", "ratio_d_replay_parallel_over_raw", "{:.2f}"),
    ("d projector steady / raw", "ratio_d_steady_over_raw", "{:.2f}"),
    ("b / e", "ratio_b_over_e", "{:.1f}"),
    ("b / f", "ratio_b_over_f", "{:.1f}"),
    ("b / g", "ratio_b_over_g", "{:.2f}"),
    ("b / h", "ratio_b_over_h", "{:.2f}"),
    ("2 processes / 1", "ratio_scale_2_over_1", "{:.2f}"),
]


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, figure) of every figure of a run that has one, the workers' peak RSS last."""
    out: list[tuple[str, str]] = []
    for label, key, fmt in _ROWS:
        if key in results:
            shown = label.format(fanout=results.get("a_fanout", "?"), rate=results.get("latency_rate", "?"))
            out.append((shown, fmt.format(results[key])))
    for sample in results.get("memory_samples", []):
        if sample["at"]:
            rss, rocksdb = sample["VmHWM"] / 2**20, sample["rocksdb_bytes"] / 2**20
            out.append(
                (
                    f"worker peak RSS, {sample['at']:,} aggregates",
                    f"{rss:,.0f} MiB (RocksDB {rocksdb:,.0f} MiB)",
                )
            )
    return out


def table(results: dict[str, Any], extra: Sequence[tuple[str, str]] = ()) -> Table:
    """Every figure of a run that has one, then `extra` rows (label, figure)."""
    t = Table(
        title=f"{results['commands']:,} commands over {results['aggregates']:,} aggregates "
        f"({results['record_bytes']:.0f} B), {results['partitions']} partitions"
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    for label, figure in [*rows(results), *extra]:
        t.add_row(label, figure)
    return t
