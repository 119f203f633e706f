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
