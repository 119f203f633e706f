"""A small traffic for the peers' rule tests: bench traffic plus commands each rule rejects."""

from __future__ import annotations

from bench.traffic import commands
from streams.contexts.orders import MAX_LINES, AddItem, PlaceOrder
from streams.core.decider import Message


def sample() -> list[tuple[str, Message]]:
    """~500 commands: accepted ones of every kind and at least one rejection per rule."""
    rejects: list[tuple[str, Message]] = [
        ("early", AddItem("sku-1", 1, 100)),  # order_not_found: AddItem before PlaceOrder
        ("early", PlaceOrder("c-1", "EUR")),
        ("early", PlaceOrder("c-1", "EUR")),  # order_already_exists
        ("early", AddItem("sku-1", 1, 100)),
        ("early", AddItem("sku-1", 2, 100)),  # the same sku again: its quantity grows
        ("early", AddItem("sku-1", 1, 101)),  # price_mismatch
        ("early", AddItem("sku-2", 0, 100)),  # invalid_quantity
        ("early", AddItem("sku-2", 1, -1)),  # invalid_price
        ("early", AddItem(" ", 1, 100)),  # missing_sku
        ("early", AddItem("sku-3", 1, 100, "USD")),  # currency_mismatch
        ("early", AddItem("sku-3", 1, 100, "EUR")),
        ("nobody", PlaceOrder(" ", "EUR")),  # missing_customer
        ("lowercase", PlaceOrder("c-2", "eur")),  # invalid_currency
        ("lowercase", AddItem("sku-1", 1, 100)),  # order_not_found (its PlaceOrder was rejected)
    ]
    full = [("full", PlaceOrder("c-3", "USD"))]
    full += [("full", AddItem(f"sku-{i}", 1, 10)) for i in range(MAX_LINES + 1)]  # the last: too_many_lines
    full += [("full", AddItem("sku-0", 1, 10, "USD"))]  # an existing line still grows
    return [*commands(300, 30, tag="bench"), *rejects, *full]
