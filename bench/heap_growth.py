"""Which source lines' Python allocations grew in a worker: two tracemalloc snapshots compared.

The worker (run with `PYTHONTRACEMALLOC=N`) writes a snapshot on SIGUSR2 (streams/diagnostics.py);
`SnapshotTaker` signals it once at the end of a warm-up and once at the end, and `growth` lists
the lines whose live allocations grew most between the two. A worker on jemalloc with its
profiler on (`jemalloc_env`) writes a heap profile of its C allocations on the same signal, and
`growth` also lists the C functions whose live allocations grew (`jeprof --base`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.integration.workers import wait_until


@dataclass(frozen=True)
class LineGrowth:
    """The live allocations of one source line (or traceback) at the second snapshot, against the first."""

    where: str
    grew_bytes: int
    bytes: int
    blocks: int


def compare(first: tracemalloc.Snapshot, second: tracemalloc.Snapshot, top: int = 25) -> list[LineGrowth]:
    """The `top` tracebacks whose live bytes grew most from `first` to `second` (tracemalloc's own
    frames left out)."""
    keep = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    first, second = first.filter_traces(keep), second.filter_traces(keep)
    stats = second.compare_to(first, "traceback")
    stats.sort(key=lambda s: s.size_diff, reverse=True)
    return [
        LineGrowth(
            where=" <- ".join(
                f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in s.traceback
            ),
            grew_bytes=s.size_diff,
            bytes=s.size,
            blocks=s.count,
        )
        for s in stats[:top]
    ]


JEMALLOC_LIBRARIES = (
    Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    Path("/usr/lib/aarch64-linux-gnu/libjemalloc.so.2"),
)
"""Where Debian's libjemalloc2 puts the library (`ops/prereqs.sh test` installs it)."""


def jemalloc_env(sample_lg: int = 17) -> dict[str, str]:
    """The environment that runs a process on jemalloc with its heap profiler on (an allocation
    sampled every 2**`sample_lg` bytes on average); raises when jemalloc is not installed."""
    library = next((path for path in JEMALLOC_LIBRARIES if path.exists()), None)
    if library is None:
        raise RuntimeError("libjemalloc.so.2 not found: install libjemalloc2 (bash ops/prereqs.sh test)")
    return {"LD_PRELOAD": str(library), "MALLOC_CONF": f"prof:true,lg_prof_sample:{sample_lg}"}


@dataclass(frozen=True)
class FunctionGrowth:
    """What jeprof says one function holds more of in the second C heap profile than in the first."""

    function: str
    grew_bytes: int
    """Allocated by the function itself (jeprof's flat figure)."""
    grew_bytes_cumulative: int
    """Allocated by it and what it calls (jeprof's cumulative figure)."""


_ROW = re.compile(r"^\s*(-?\d+)\s+\S+%\s+\S+%\s+(-?\d+)\s+\S+%\s+(.+)$")


def parse_jeprof(text: str) -> list[FunctionGrowth]:
    """The rows of `jeprof --text --show_bytes` output."""
    rows = []
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            rows.append(FunctionGrowth(match[3].strip(), int(match[1]), int(match[2])))
    return rows


def c_heap_growth(first: Path, second: Path, top: int = 25) -> dict[str, list[dict[str, Any]]]:
    """The functions whose live C allocations grew most from `first` to `second` (jemalloc heap
    profiles of this interpreter's process), by their own allocations and cumulatively."""
    python = os.path.realpath(sys.executable)
    command = ["jeprof", "--text", "--show_bytes", f"--base={first}", python, str(second)]
    report = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    rows = parse_jeprof(report.stdout)
    flat = sorted(rows, key=lambda r: r.grew_bytes, reverse=True)[:top]
    cumulative = sorted(rows, key=lambda r: r.grew_bytes_cumulative, reverse=True)[:top]
    return {"flat": [asdict(r) for r in flat], "cumulative": [asdict(r) for r in cumulative]}


class SnapshotTaker:
    """Asks the worker `pid` for snapshots written into `directory` (its data dir's diagnostics):
    tracemalloc's (`python`) and jemalloc's heap profile (`c_heap`), each when asked for."""

    def __init__(self, pid: int, directory: Path, python: bool = True, c_heap: bool = False) -> None:
        self.pid, self.directory = pid, directory
        kinds = (("tracemalloc-*.snapshot", python), ("jemalloc-*.heap", c_heap))
        self.patterns = [pattern for pattern, wanted in kinds if wanted]
        self.first: list[Path] | None = None

    def _files(self) -> set[Path]:
        if not self.directory.exists():
            return set()
        return {path for pattern in self.patterns for path in self.directory.glob(pattern)}

    def _take(self) -> list[Path]:
        """One SIGUSR2; the new file of each kind, in the order of `patterns`."""
        before = self._files()
        os.kill(self.pid, signal.SIGUSR2)
        found: list[Path] = []

        def written() -> bool:
            new = self._files() - before
            found[:] = [
                min(hits) for pattern in self.patterns if (hits := [p for p in new if p.match(pattern)])
            ]
            return len(found) == len(self.patterns)

        wait_until(written, "the worker's memory snapshots", timeout=120, every=0.5)
        return found

    def take_first(self) -> None:
        """The warm-up's snapshots (once; later calls do nothing)."""
        if self.first is None:
            self.first = self._take()

    def growth(self) -> dict[str, object]:
        """The final snapshots compared with the warm-up's, as JSON-ready rows: `python` (the
        source lines) and `c_heap` (the C functions), each when taken."""
        if self.first is None:
            return {}
        second = self._take()
        result: dict[str, object] = {}
        for first, last in zip(self.first, second, strict=True):
            if first.suffix == ".snapshot":
                old, new = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(last))
                result["python"] = [asdict(row) for row in compare(old, new)]
            else:
                result["c_heap"] = c_heap_growth(first, last)
        return result
