"""The process's C heap (glibc): how many malloc arenas it may use, where large blocks come from,
and handing freed memory back.

glibc gives each thread that allocates concurrently an arena of its own, up to eight per core,
and an arena returns memory to the system only from its top: a worker whose stages run on a
dozen threads (each consumer loop, the web server, librdkafka's callbacks) keeps fragments of a
dozen heaps. Fewer arenas trade a little lock contention for less fragmentation
(`STREAMS_MALLOC_ARENAS`, off by default; the soak benchmark, `make soak`, measures the RSS
slope).

glibc serves a block of `M_MMAP_THRESHOLD` bytes or more (128 KiB at start) with its own `mmap`,
returned to the system when freed, and raises that threshold to the size of every such block
freed (up to 32 MiB). A worker frees large blocks all the time (fetched record batches, encoded
transactions, JSON bodies), so after a while they all come from the arenas' heaps instead, where
what is freed below the top stays: in a 10-minute soak the heap grew 173 -> 211 MiB while the
memory in use stayed 105-144 MiB, and mmapped blocks fell from 32 to 2 MiB. A fixed threshold
(`STREAMS_MALLOC_MMAP_THRESHOLD`, 128 KiB by default) keeps large blocks out of the heaps.
Elsewhere than glibc these calls do nothing.

When the worker runs on jemalloc with its heap profiler on (`LD_PRELOAD=libjemalloc.so.2
MALLOC_CONF=prof:true`), `dump_heap_profile` writes a profile of the C heap's live allocations
by call stack; two of them, compared with `jeprof --base`, say which library's allocations grew
(`python -m bench.soak` does it with `SOAK_JEMALLOC_PROFILE=1`).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

M_ARENA_MAX = -8
"""`mallopt`'s parameter for the largest number of arenas (glibc's malloc.h)."""
M_MMAP_THRESHOLD = -3
"""`mallopt`'s parameter for the smallest block served by `mmap` (fixing it ends the dynamic raise)."""


@functools.cache
def _process() -> Any:
    return ctypes.CDLL(None)


def heap_profiling() -> bool:
    """True when this process allocates with jemalloc and its heap profiler is on."""
    mallctl = getattr(_process(), "mallctl", None)
    if mallctl is None:
        return False
    active = ctypes.c_bool(False)
    size = ctypes.c_size_t(ctypes.sizeof(active))
    return mallctl(b"opt.prof", ctypes.byref(active), ctypes.byref(size), None, 0) == 0 and active.value


def dump_heap_profile(path: Path) -> bool:
    """Write jemalloc's heap profile (live allocations by call stack) to `path`; False when the
    process is not on jemalloc with profiling on."""
    if not heap_profiling():
        return False
    name = ctypes.c_char_p(str(path).encode())
    return _process().mallctl(b"prof.dump", None, None, ctypes.byref(name), ctypes.sizeof(name)) == 0


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def limit_arenas(arenas: int) -> bool:
    """Let glibc create at most `arenas` malloc arenas from now on (0: glibc's default). Call it
    before the process starts its threads. True when glibc took the setting."""
    libc = _libc()
    if arenas <= 0 or libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def fix_mmap_threshold(size: int) -> bool:
    """Serve every block of `size` bytes or more with `mmap` from now on, and stop glibc from
    raising that threshold (0: glibc's dynamic default). True when glibc took the setting."""
    libc = _libc()
    if size <= 0 or libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, size))


def malloc_trim() -> bool:
    """Hand the C heap's free memory back to the system (glibc's `malloc_trim`). True when some
    was released."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (malloc.h, glibc 2.33+): every field a `size_t`."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


@dataclass(frozen=True)
class HeapUsage:
    """The C heap as glibc's allocator sees it, in bytes."""

    in_use: int
    """Allocated and not freed, in the arenas' heaps (`uordblks`)."""
    free: int
    """Freed but kept in the arenas' heaps (`fordblks`): fragmentation when it grows."""
    mmapped: int
    """Large blocks served by their own `mmap` (`hblkhd`), returned when freed."""


def _jemalloc_size(mallctl: Any, name: bytes) -> int:
    value = ctypes.c_size_t(0)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    return value.value if mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0) == 0 else 0


def _jemalloc_usage(mallctl: Any) -> HeapUsage:
    epoch = ctypes.c_uint64(1)  # writing the epoch refreshes jemalloc's cached statistics
    mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
    allocated = _jemalloc_size(mallctl, b"stats.allocated")
    resident = _jemalloc_size(mallctl, b"stats.resident")
    return HeapUsage(in_use=allocated, free=max(0, resident - allocated), mmapped=0)


def heap_usage() -> HeapUsage | None:
    """The C heap's use now (glibc's `mallinfo2`; on jemalloc, its `stats.allocated` as in use and
    the rest of its resident pages as free); None elsewhere than glibc 2.33+. It walks every arena
    under its lock: call it per scrape, not per record."""
    mallctl = getattr(_process(), "mallctl", None)
    if mallctl is not None:
        return _jemalloc_usage(mallctl)
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return HeapUsage(in_use=info.uordblks, free=info.fordblks, mmapped=info.hblkhd)


def trim_when_free(min_free_bytes: int) -> bool:
    """`malloc_trim` when the arenas keep at least `min_free_bytes` freed; True when it ran."""
    usage = heap_usage()
    if usage is None or usage.free < min_free_bytes:
        return False
    malloc_trim()
    return True


def start_trimming(interval_s: float, min_free_bytes: int = 16 * 1024 * 1024) -> threading.Thread | None:
    """Every `interval_s` seconds, hand the arenas' free memory back to the system when they keep
    `min_free_bytes` or more (0: never). A worker's in-use heap rises and falls with its backlog
    (fetched records, batches being folded); without this, RSS stays at the highest peak, the
    difference held as free chunks inside the arenas. glibc only; a daemon thread."""
    if interval_s <= 0 or heap_usage() is None:
        return None
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            trim_when_free(min_free_bytes)

    thread = threading.Thread(target=run, name="malloc-trim", daemon=True)
    thread.start()
    return thread
