"""Where a worker's memory goes: the C heap's gauges, and Python allocation snapshots on demand.

A resident size that keeps growing is one of three things: Python objects that stay alive, C
allocations that stay alive (librdkafka, RocksDB, the codecs' buffers), or freed C memory that the
arenas keep (fragmentation). `streams_malloc_bytes{kind}` tells the last two apart and, with
tracemalloc on (`PYTHONTRACEMALLOC=1`, or `=N` for N frames), `streams_python_traced_bytes` the
first. Then `kill -USR2 <pid>` writes a tracemalloc snapshot into `<STREAMS_DATA_DIR>/diagnostics`;
two of them, compared (`python -m bench.soak` does it with
`SOAK_TRACEMALLOC=1`), name the source lines whose allocations grew. A worker on jemalloc with
its profiler on (`LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=prof:true`) also writes a heap profile
of its C allocations there on SIGUSR2 (`jemalloc-<pid>-<ns>.heap`; compare two with `jeprof
--base=<first> <python> <second>`, or `SOAK_JEMALLOC_PROFILE=1`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
import tracemalloc
from pathlib import Path

from streams import metrics
from streams.allocator import dump_heap_profile, heap_profiling, heap_usage

log = logging.getLogger(__name__)


def _heap_bytes(kind: str) -> float:
    usage = heap_usage()
    return float(getattr(usage, kind)) if usage is not None else 0.0


def snapshot_path(directory: Path, pid: int) -> Path:
    """Where the snapshot taken now by process `pid` goes."""
    return directory / f"tracemalloc-{pid}-{time.time_ns()}.snapshot"


def export_gauges() -> None:
    """Export `streams_malloc_bytes` (glibc or jemalloc) and `streams_python_traced_bytes`."""
    if heap_usage() is not None:
        for kind in ("in_use", "free", "mmapped"):
            metrics.MALLOC_BYTES.labels(kind).set_function(functools.partial(_heap_bytes, kind))
    metrics.PYTHON_TRACED_BYTES.set_function(lambda: float(tracemalloc.get_traced_memory()[0]))


def write_heap_profile(directory: Path) -> Path | None:
    """Write jemalloc's heap profile into `directory`; None unless on jemalloc with profiling on."""
    if not heap_profiling():
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"jemalloc-{os.getpid()}-{time.time_ns()}.heap"
    partial = path.with_suffix(".partial")
    if not dump_heap_profile(partial):
        return None
    partial.replace(path)
    log.info("jemalloc heap profile written to %s", path)
    return path


def write_snapshots(directory: Path) -> None:
    """What SIGUSR2 asks for: a jemalloc heap profile and a tracemalloc snapshot, each when on."""
    profile = write_heap_profile(directory)
    if tracemalloc.is_tracing() or profile is None:
        write_snapshot(directory)


def write_snapshot(directory: Path) -> Path | None:
    """Write a tracemalloc snapshot into `directory`; None when tracemalloc is off."""
    if not tracemalloc.is_tracing():
        log.warning("no tracemalloc snapshot: tracemalloc is off (start the worker with PYTHONTRACEMALLOC=1)")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(directory, os.getpid())
    partial = path.with_suffix(".partial")  # renamed once complete: a reader never sees half of it
    tracemalloc.take_snapshot().dump(str(partial))
    partial.replace(path)
    log.info("tracemalloc snapshot written to %s", path)
    return path


def install_snapshot_signal(directory: Path) -> None:
    """On SIGUSR2, write a snapshot (and a heap profile) into `directory`. Call from the running
    event loop, after the Faust worker installed its own handlers: this replaces mode's SIGUSR2
    handler, which stops the worker in pdb (a hang for a worker with no terminal)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, write_snapshots, directory)
