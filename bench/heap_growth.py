"""Which source lines' Python allocations grew in a worker: two tracemalloc snapshots compared.

The worker (run with `PYTHONTRACEMALLOC=N`) writes a snapshot on SIGUSR2 (streams/diagnostics.py);
`SnapshotTaker` signals it once at the end of a warm-up and once at the end, and `growth` lists
the lines whose live allocations grew most between the two.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

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


class SnapshotTaker:
    """Asks the worker `pid` for snapshots written into `directory` (its data dir's diagnostics)."""

    def __init__(self, pid: int, directory: Path) -> None:
        self.pid, self.directory = pid, directory
        self.first: Path | None = None

    def _take(self) -> Path:
        before = set(self.directory.glob("tracemalloc-*.snapshot")) if self.directory.exists() else set()
        os.kill(self.pid, signal.SIGUSR2)
        found: list[Path] = []

        def written() -> bool:
            found[:] = sorted(set(self.directory.glob("tracemalloc-*.snapshot")) - before)
            return bool(found)

        wait_until(written, "the worker's tracemalloc snapshot", timeout=120, every=0.5)
        return found[0]

    def take_first(self) -> None:
        """The warm-up's snapshot (once; later calls do nothing)."""
        if self.first is None:
            self.first = self._take()

    def growth(self) -> list[dict[str, object]]:
        """The final snapshot compared with the warm-up's, as JSON-ready rows."""
        if self.first is None:
            return []
        first = tracemalloc.Snapshot.load(str(self.first))
        second = tracemalloc.Snapshot.load(str(self._take()))
        return [asdict(row) for row in compare(first, second)]
