"""History index keys cannot collide, whatever bytes the aggregate ids hold (property tests)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.kafka.store import PartitionStore
from streams.read.history_index import aggregate_prefix, history_key, version_of_key

# ids made of the bytes that trouble naive keys: NUL, separators, prefixes of each other
ids = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "\xff", ":", "/", "é"]), min_size=1, max_size=6)
versions = st.integers(min_value=1, max_value=2**40)


@given(ids, ids, versions)
def test_an_aggregates_keys_start_with_its_prefix_and_no_other(a: str, b: str, version: int) -> None:
    key = history_key(a, version)
    assert key.startswith(aggregate_prefix(a)) and version_of_key(key) == version
    if a != b:
        assert not key.startswith(aggregate_prefix(b))


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(ids, st.lists(versions, min_size=1, max_size=4, unique=True), min_size=1, max_size=5))
def test_a_scan_of_one_aggregate_returns_exactly_its_entries_in_version_order(
    index: dict[str, list[int]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = PartitionStore(Path(directory))
        try:
            store.write({history_key(a, v): a.encode() for a, vs in index.items() for v in vs}, {})
            for aggregate, vs in index.items():
                found = [(version_of_key(k), value) for k, value in store.scan(aggregate_prefix(aggregate))]
                assert found == [(v, aggregate.encode()) for v in sorted(vs)]
        finally:
            store.close()
