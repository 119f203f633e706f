"""The bench's command traffic: orders placed, then items added (every command accepted)."""

from __future__ import annotations

import os
from typing import Any

from streams.contexts.orders import AddItem, PlaceOrder

N = int(os.environ.get("BENCH_COMMANDS", "100000"))
AGGREGATES = int(os.environ.get("BENCH_AGGREGATES", "10000"))


def commands(n: int = N, aggregates: int = AGGREGATES, tag: str = "order") -> list[tuple[str, Any]]:
    """Realistic order traffic: each aggregate is placed, then receives items (every command is
    accepted and causes one event; an order holds at most 50 distinct skus)."""
    out: list[tuple[str, Any]] = []
    for i in range(n):
        aggregate = f"{tag}-{i % aggregates}"
        if i < aggregates:
            out.append((aggregate, PlaceOrder(f"customer-{i % 997}", "EUR")))
        else:
            line = (i // aggregates - 1) % 50  # the n-th item of an order is a new sku, up to 50
            out.append((aggregate, AddItem(f"sku-{line}", 1 + i % 3, 100 + line * 7)))
    return out
