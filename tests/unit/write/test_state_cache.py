"""The write side's committed state: its cache of decoded aggregates is bounded in bytes (and
says how many it holds); a store of the format before the idempotency index is restored again."""

from __future__ import annotations

from pathlib import Path

from streams import metrics
from streams.config import Settings
from streams.contexts.orders import OrderState
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.wire.changelog import (
    AGGREGATE_PREFIX,
    COMMAND_PREFIX,
    encode_aggregate,
    store_writes,
)
from streams.write.state import CommittedState, unindexed


def test_the_aggregate_cache_keeps_to_its_byte_budget(tmp_path: Path) -> None:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    budget = 50_000
    state = CommittedState(
        Settings(), runtime.codec, runtime.states, "t.changelog", tmp_path, 20000, budget, name="cache-test"
    )
    aggregates: dict[bytes, Aggregate[OrderState]] = {}
    for i in range(1000):  # far fewer than the count limit, far more than the byte budget
        aggregates[f"order-{i}".encode()] = Aggregate(
            1, OrderState(customer_id=f"c-{i}" * 20, currency="EUR")
        )
    writes = {
        AGGREGATE_PREFIX + key: encode_aggregate(runtime.states, aggregate)
        for key, aggregate in aggregates.items()
    }
    state.apply({0: dict(writes)}, {}, {0: aggregates})

    gauge = metrics.WRITE_CACHE_BYTES.labels("cache-test")._value.get()
    assert 0 < gauge <= budget
    cached = [key for key in aggregates if (0, key) in state.cache]
    assert 0 < len(cached) < 1000
    assert (0, b"order-999") in state.cache  # the most recent ones stay


def test_a_store_written_before_the_idempotency_index_is_restored_again(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    assert not unindexed(store)  # empty
    store.write({COMMAND_PREFIX + b"id-1": b"result"}, {"changelog": 5})
    assert unindexed(store)  # ids without index: a store of the previous format
    store.write(dict(store_writes(COMMAND_PREFIX + b"id-2", b"result", 1000)), {"changelog": 6})
    assert not unindexed(store)
    store.close()


def test_expiry_finds_what_left_the_window_in_time_order_also_after_an_abort(tmp_path: Path) -> None:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    state = CommittedState(Settings(), runtime.codec, runtime.states, "t.changelog", tmp_path, 10, name="exp")
    state.stores[0] = store = PartitionStore(tmp_path / "p0")
    for at, command_id in ((1000, b"a"), (2000, b"b"), (3000, b"c")):
        store.write(dict(store_writes(COMMAND_PREFIX + command_id, b"r", at)), {"t.changelog": 1})
    first = state.expired(2500, 100)
    assert [e.command_ids for e in first] == [(b"a",), (b"b",)]
    assert [e.command_ids for e in state.expired(2500, 100)] == [(b"a",), (b"b",)]  # aborted: again
    state.apply({0: first[0].store_deletes()}, {0: 2}, {})  # committed: a is forgotten
    assert [e.command_ids for e in state.expired(3500, 1)] == [(b"b",)]  # at most about `limit` ids
    late = dict(store_writes(COMMAND_PREFIX + b"d", b"r", 500))  # the clock went back
    state.apply({0: late}, {0: 3}, {})
    assert [e.command_ids for e in state.expired(2500, 100)] == [(b"d",), (b"b",)]
    store.close()
