"""The process's C heap (glibc): how many malloc arenas it may use, and handing freed memory back.

glibc gives each thread that allocates concurrently an arena of its own, up to eight per core,
and an arena returns memory to the system only from its top: a worker whose stages run on a
dozen threads (each consumer loop, the web server, librdkafka's callbacks) keeps fragments of a
dozen heaps. Fewer arenas trade a little lock contention for less fragmentation
(`STREAMS_MALLOC_ARENAS`, off by default; the soak benchmark, `make soak`, measures the RSS
slope). Elsewhere than glibc both calls do nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any

M_ARENA_MAX = -8
"""`mallopt`'s parameter for the largest number of arenas (glibc's malloc.h)."""


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


def malloc_trim() -> bool:
    """Hand the C heap's free memory back to the system (glibc's `malloc_trim`). True when some
    was released."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))
