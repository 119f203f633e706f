"""The memory diagnostics: glibc's heap figures, tracemalloc snapshots and their comparison."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from bench.heap_growth import compare
from streams.allocator import heap_usage
from streams.diagnostics import write_snapshot


def test_heap_usage_sees_a_large_allocation_in_use() -> None:
    before = heap_usage()
    if before is None:
        pytest.skip("not glibc 2.33+: mallinfo2 is absent")
    blocks = [bytearray(1000) for _ in range(20_000)]  # small blocks: from the arenas, not mmap
    after = heap_usage()
    assert after is not None
    assert after.in_use - before.in_use >= 15_000_000
    del blocks


def test_no_snapshot_without_tracemalloc(tmp_path: Path) -> None:
    assert not tracemalloc.is_tracing()
    assert write_snapshot(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_two_snapshots_name_the_line_that_grew(tmp_path: Path) -> None:
    tracemalloc.start(1)
    try:
        kept: list[bytes] = []
        first = write_snapshot(tmp_path)
        kept.extend(b"x" * 1000 + bytes([i % 256]) for i in range(2_000))  # the growing line
        second = write_snapshot(tmp_path)
    finally:
        tracemalloc.stop()
    assert first is not None and second is not None
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".snapshot", ".snapshot"]
    rows = compare(tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(second)))
    assert rows[0].where.endswith(f"test_diagnostics.py:{_line_of('the growing line')}")
    assert rows[0].grew_bytes >= 2_000 * 1000


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "kept.extend" in line)


def test_a_trim_runs_only_when_the_arenas_keep_enough_free_memory() -> None:
    from streams.allocator import start_trimming, trim_when_free

    if heap_usage() is None:
        pytest.skip("not glibc 2.33+: mallinfo2 is absent")
    assert not trim_when_free(1 << 50)
    blocks = [bytearray(1000) for _ in range(40_000)]
    del blocks[::2]  # half of them freed between live ones: free chunks inside the heap
    usage = heap_usage()
    assert usage is not None and usage.free >= 15_000_000
    assert trim_when_free(1)
    assert start_trimming(0) is None
    assert blocks


_ON_JEMALLOC = """
import sys
from pathlib import Path
from streams.allocator import heap_profiling, heap_usage
from streams.diagnostics import write_heap_profile
directory = Path(sys.argv[1])
assert heap_profiling()
before = heap_usage()
first = write_heap_profile(directory)
kept = [bytearray(200_000) for _ in range(200)]  # 40 MB that stays
second = write_heap_profile(directory)
after = heap_usage()
assert after.in_use - before.in_use >= 35_000_000, (before, after)
print(first, second)
"""


def test_on_jemalloc_two_heap_profiles_name_the_c_function_that_grew(tmp_path: Path) -> None:
    """A worker on jemalloc (`SOAK_JEMALLOC_PROFILE`) writes C heap profiles on SIGUSR2; jeprof's
    comparison of two names the allocation that grew, and the heap gauges read jemalloc's."""
    import os
    import subprocess
    import sys

    from bench.heap_growth import c_heap_growth, jemalloc_env

    run = subprocess.run(
        [sys.executable, "-c", _ON_JEMALLOC, str(tmp_path)],
        env={**os.environ, **jemalloc_env(sample_lg=12)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    first, second = (Path(p) for p in run.stdout.split())
    assert first.suffix == second.suffix == ".heap"
    growth = c_heap_growth(first, second)
    grew = {row["function"]: row["grew_bytes_cumulative"] for row in growth["cumulative"]}
    assert grew.get("PyByteArray_Resize", 0) >= 30_000_000, growth


def test_without_jemalloc_no_heap_profile_is_written(tmp_path: Path) -> None:
    from streams.diagnostics import write_heap_profile

    assert write_heap_profile(tmp_path) is None
    assert list(tmp_path.iterdir()) == []
