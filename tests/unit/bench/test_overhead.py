"""bench.overhead's summary: medians per arm, the overhead of the signals and of RocksDB's
statistics, and the docs' table of a result."""

from __future__ import annotations

import pytest

from bench.overhead import markdown, summarize


def test_the_overhead_is_one_minus_the_ratio_of_the_medians() -> None:
    cps = {"off": [100.0, 90.0, 110.0], "on": [98.0, 88.0, 107.0], "no-rocksdb": [99.0, 89.0, 108.0]}
    runs = [{"round": i, "arm": arm, "cps": values[i], "load_avg_before": 1.0}
            for i in range(3) for arm, values in cps.items()]  # fmt: skip
    summary = summarize(runs)
    assert summary["median_cps"] == {"off": 100.0, "on": 98.0, "no-rocksdb": 99.0}
    assert summary["overhead"] == pytest.approx(0.02) and summary["passed"]
    assert summary["rocksdb"] == pytest.approx(1 - 98 / 99)
    assert summary["overhead_of_pairs_median"] == pytest.approx(1 - 88 / 90)  # pairs: 2%, 2.2%, 2.7%
    result = {"summary": summary, "runs": runs, "rounds": 3, "commands": 10_000, "provenance": {"cpus": 2}}
    table = markdown(result, "bench/results/overhead-x.json")
    assert "| signals off | 100 | 100, 90, 110 |" in table and "**2.0%**" in table
    assert "range from 2.0% to 2.7%" in table and "both: met" in table
