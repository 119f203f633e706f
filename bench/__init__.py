"""`make bench`: the benchmarks, outside the package (nothing in `streams` imports them)."""
