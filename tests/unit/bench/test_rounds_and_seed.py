"""b, g and h are measured in rotating order; the seed's design (e) spreads commands over a pool."""

from __future__ import annotations

from bench.rounds import order_of
from bench.seed import shards


def test_the_order_of_b_g_h_rotates_each_round() -> None:
    assert [order_of(r) for r in range(4)] == [
        ["b", "g", "h"],
        ["g", "h", "b"],
        ["h", "b", "g"],
        ["b", "g", "h"],
    ]


def test_the_pool_keeps_each_aggregates_commands_in_order_on_one_connection() -> None:
    commands = [(f"order-{i % 7}", f"command-{i}") for i in range(100)]
    split = shards(commands, 3)
    assert sum(len(s) for s in split) == 100
    for shard in split:
        indexes = [i for i, _, _ in shard]
        assert indexes == sorted(indexes)
    owners = {aggregate: n for n, shard in enumerate(split) for _, aggregate, _ in shard}
    assert all(owners[aggregate] == n for n, shard in enumerate(split) for _, aggregate, _ in shard)
    assert len(owners) == 7
