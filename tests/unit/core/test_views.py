"""The orders views, read as documentation: what each event does to a document, and why
replayed or older events change nothing (per source aggregate, also through the re-keyed view).

No Kafka here: `apply_event` and `fold_view` are the same functions the projector runs.
"""

from __future__ import annotations

import copy
from typing import Any

from streams.contexts.orders import (
    VIEWS,
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderShipped,
    by_customer,
    customer_of,
    summarize,
)
from streams.core.views import Document, EventMeta, apply_event, fold_view

SUMMARY, BY_CUSTOMER = VIEWS
T0 = "2026-01-01T10:00:00Z"


def meta(aggregate_id: str, version: int, occurred_at: str = T0) -> EventMeta:
    return EventMeta(aggregate_id, version, "", occurred_at)


def history(aggregate_id: str, *events: Any, first: int = 1) -> list[tuple[Any, EventMeta]]:
    """Events of one aggregate with consecutive versions, as the log holds them."""
    return [(e, meta(aggregate_id, first + i)) for i, e in enumerate(events)]


# --- order-summary: one document per order ------------------------------------------------------


def test_a_placed_order_has_an_empty_summary_with_its_customer_and_time() -> None:
    doc = summarize(None, OrderPlaced("c-1", "EUR"), meta("o-1", 1))
    assert doc == {
        "status": "placed",
        "customer_id": "c-1",
        "currency": "EUR",
        "items": [],
        "total_cents": 0,
        "item_count": 0,
        "placed_at": T0,
        "version": 1,
    }


def test_items_add_up_per_sku_and_removing_one_drops_its_line() -> None:
    docs = fold_view(
        SUMMARY,
        history(
            "o-1",
            OrderPlaced("c-1", "EUR"),
            ItemAdded("a", 2, 150),
            ItemAdded("b", 1, 1000),
            ItemAdded("a", 1, 150),
            ItemRemoved("b"),
        ),
    )
    state = docs["o-1"].state
    assert state is not None
    assert state["items"] == [{"sku": "a", "quantity": 3, "unit_price_cents": 150}]
    assert state["total_cents"] == 450 and state["item_count"] == 3 and state["version"] == 5


def test_the_status_follows_confirm_ship_and_cancel() -> None:
    placed = history("o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 1, 5))
    shipped = fold_view(SUMMARY, [*placed, *history("o-1", OrderConfirmed(5), OrderShipped("DHL"), first=3)])
    assert shipped["o-1"].state is not None
    assert shipped["o-1"].state["status"] == "shipped" and shipped["o-1"].state["carrier"] == "DHL"
    cancelled = fold_view(SUMMARY, [*placed, *history("o-1", OrderCancelled("too slow"), first=3)])
    assert cancelled["o-1"].state is not None
    assert cancelled["o-1"].state["status"] == "cancelled"
    assert cancelled["o-1"].state["cancel_reason"] == "too slow"


def test_a_handler_never_mutates_the_document_it_is_given() -> None:
    before = summarize(None, OrderPlaced("c-1", "EUR"), meta("o-1", 1))
    with_item = summarize(before, ItemAdded("a", 1, 5), meta("o-1", 2))
    frozen = copy.deepcopy(with_item)
    summarize(with_item, ItemAdded("a", 4, 5), meta("o-1", 3))
    summarize(with_item, ItemRemoved("a"), meta("o-1", 3))
    assert with_item == frozen
    orders = by_customer(None, OrderPlaced("c-1", "EUR"), meta("o-1", 1))
    orders = by_customer(orders, ItemAdded("a", 1, 5), meta("o-1", 2))
    frozen = copy.deepcopy(orders)
    by_customer(orders, ItemAdded("a", 1, 5), meta("o-1", 3))
    by_customer(orders, OrderCancelled(""), meta("o-1", 3))
    assert orders == frozen


# --- orders-by-customer: re-keyed by the customer of OrderPlaced --------------------------------


def test_the_customer_key_comes_from_order_placed_and_sticks_to_later_events() -> None:
    assert customer_of(OrderPlaced("c-1", "EUR"), None) == "c-1"
    assert customer_of(ItemAdded("a", 1, 5), "c-1") == "c-1"
    assert customer_of(ItemAdded("a", 1, 5), None) is None  # no document until the order is placed


def test_a_customer_document_sums_its_open_orders() -> None:
    docs = fold_view(
        BY_CUSTOMER,
        [
            *history("o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 2, 100)),
            *history("o-2", OrderPlaced("c-1", "EUR"), ItemAdded("b", 1, 50), OrderConfirmed(50)),
            *history("o-3", OrderPlaced("c-2", "EUR")),
        ],
    )
    state = docs["c-1"].state
    assert state is not None
    assert state["order_count"] == 2 and state["total_cents"] == 250
    assert state["orders"]["o-2"]["status"] == "confirmed"
    assert docs["c-1"].versions == {"o-1": 2, "o-2": 3}
    assert docs["c-2"].state == {
        "orders": {"o-3": {"status": "placed", "total_cents": 0, "lines": {}, "customer_id": "c-2"}},
        "order_count": 1,
        "total_cents": 0,
    }


def test_a_cancelled_order_leaves_its_customer_and_the_last_one_deletes_the_document() -> None:
    events = [
        *history("o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 1, 100)),
        *history("o-2", OrderPlaced("c-1", "EUR")),
        *history("o-1", OrderCancelled("no"), first=3),
    ]
    one_left = fold_view(BY_CUSTOMER, events)["c-1"]
    assert one_left.state is not None and list(one_left.state["orders"]) == ["o-2"]
    gone = fold_view(BY_CUSTOMER, [*events, *history("o-2", OrderCancelled("no"), first=2)])["c-1"]
    assert gone.state is None  # published as a tombstone
    assert gone.versions == {"o-1": 3, "o-2": 2}  # kept, so a redelivery cannot resurrect it


# --- idempotency: a document remembers the last version per source aggregate --------------------


def test_an_event_already_folded_in_is_skipped() -> None:
    doc = fold_view(SUMMARY, history("o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 1, 5)))["o-1"]
    assert apply_event(SUMMARY, doc, "o-1", ItemAdded("a", 1, 5), meta("o-1", 2)) is None
    assert apply_event(SUMMARY, doc, "o-1", OrderPlaced("c-1", "EUR"), meta("o-1", 1)) is None


def test_the_next_version_is_folded_and_recorded() -> None:
    doc = fold_view(SUMMARY, history("o-1", OrderPlaced("c-1", "EUR")))["o-1"]
    later = "2026-01-01T10:05:00Z"
    updated = apply_event(SUMMARY, doc, "o-1", ItemAdded("a", 1, 5), meta("o-1", 2, later))
    assert updated is not None and updated.state is not None
    assert updated.state["total_cents"] == 5
    assert (updated.last_event_version, updated.last_updated, dict(updated.versions)) == (
        2,
        later,
        {"o-1": 2},
    )


def test_replaying_the_whole_log_twice_gives_the_same_documents() -> None:
    log = [
        *history("o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 2, 100)),
        *history("o-2", OrderPlaced("c-1", "USD"), ItemAdded("b", 1, 7), OrderCancelled("")),
        *history("o-1", ItemRemoved("a"), first=3),
    ]
    for view in VIEWS:
        assert fold_view(view, log + log) == fold_view(view, log), view.name


def test_a_redelivered_batch_in_the_middle_changes_nothing() -> None:
    log = history(
        "o-1", OrderPlaced("c-1", "EUR"), ItemAdded("a", 1, 1), ItemAdded("a", 1, 1), OrderConfirmed(2)
    )
    redelivered = [*log[:3], *log[1:3], *log[3:]]  # versions 2 and 3 arrive twice
    for view in VIEWS:
        assert fold_view(view, redelivered) == fold_view(view, log), view.name


def test_through_the_re_keyed_view_each_source_order_is_checked_on_its_own() -> None:
    """o-2's versions are lower than o-1's, yet both fold into c-1's document: the check is per
    source aggregate, not per document. A replayed o-1 event is skipped without touching o-2."""
    doc: Document | None = None
    steps = [
        (OrderPlaced("c-1", "EUR"), meta("o-1", 1)),
        (ItemAdded("a", 1, 100), meta("o-1", 2)),
        (ItemAdded("a", 1, 100), meta("o-1", 3)),
        (OrderPlaced("c-1", "EUR"), meta("o-2", 1)),  # version 1 < 3, another order: folded
        (ItemAdded("b", 1, 10), meta("o-2", 2)),
    ]
    for event, m in steps:
        doc = apply_event(BY_CUSTOMER, doc, "c-1", event, m)
        assert doc is not None
    assert doc is not None and doc.versions == {"o-1": 3, "o-2": 2}
    assert apply_event(BY_CUSTOMER, doc, "c-1", ItemAdded("a", 1, 100), meta("o-1", 3)) is None
    assert apply_event(BY_CUSTOMER, doc, "c-1", ItemAdded("a", 1, 100), meta("o-1", 2)) is None
    assert apply_event(BY_CUSTOMER, doc, "c-1", ItemAdded("b", 1, 10), meta("o-2", 2)) is None
    assert doc.state is not None and doc.state["total_cents"] == 210


def test_a_deleted_document_stays_deleted_when_its_events_are_replayed() -> None:
    log = history("o-1", OrderPlaced("c-1", "EUR"), OrderCancelled("no"))
    gone = fold_view(BY_CUSTOMER, log)["c-1"]
    assert gone.state is None
    assert apply_event(BY_CUSTOMER, gone, "c-1", OrderPlaced("c-1", "EUR"), meta("o-1", 1)) is None
    again = apply_event(BY_CUSTOMER, gone, "c-1", OrderPlaced("c-1", "EUR"), meta("o-9", 1))
    assert again is not None and again.state is not None and list(again.state["orders"]) == ["o-9"]


def test_a_shipped_order_leaves_its_customer_so_the_document_stays_small() -> None:
    events = []
    for i in range(2000):  # an ordinary customer over the years: every order shipped
        events += history(f"o-{i}", OrderPlaced("c-1", "EUR"), ItemAdded("a", 1, 100), OrderShipped("DHL"))
    events += history("o-open", OrderPlaced("c-1", "EUR"), ItemAdded("b", 2, 50))
    doc = fold_view(BY_CUSTOMER, events)["c-1"]
    assert doc.state is not None
    assert list(doc.state["orders"]) == ["o-open"] and doc.state["total_cents"] == 100
    assert doc.state["order_count"] == 1
