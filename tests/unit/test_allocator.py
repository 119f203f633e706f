"""The C heap's settings take effect on glibc (this project's machines) and are no-ops otherwise."""

from __future__ import annotations

import subprocess
import sys

from streams import allocator


def test_arenas_are_limited_in_a_fresh_process_and_zero_keeps_the_default() -> None:
    code = "from streams import allocator; print(allocator.limit_arenas(2), allocator.limit_arenas(0))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_malloc_trim_answers_whether_memory_went_back() -> None:
    assert isinstance(allocator.malloc_trim(), bool)


_MMAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
from streams import allocator
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
allocator.fix_mmap_threshold(int(sys.argv[1]))
libc.free(libc.malloc(4 << 20))  # glibc's dynamic threshold rises to 4 MiB here
before = libc.mallinfo2().hblkhd
block = libc.malloc(512 << 10)
print(libc.mallinfo2().hblkhd - before >= 512 << 10)
"""


def test_a_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap_after_a_large_free() -> None:
    def mmapped(threshold: int) -> str:
        argv = [sys.executable, "-c", _MMAPPED_AFTER_A_LARGE_FREE, str(threshold)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    assert mmapped(128 * 1024) == "True"
    assert mmapped(0) == "False"  # glibc's dynamic threshold: the block came from the heap
