"""The orders rules, read as given/when/then."""

from __future__ import annotations

from streams.contexts.orders import (
    AddItem,
    CancelOrder,
    ConfirmOrder,
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    PlaceOrder,
    RemoveItem,
    ShipOrder,
    context,
)
from streams.testing import given

PLACED = OrderPlaced(customer_id="c-1", currency="EUR")
WIDGET = ItemAdded(sku="widget", quantity=2, unit_price_minor=250)
CONFIRMED = OrderConfirmed(total_cents=500)
SHIPPED = OrderShipped(carrier="DHL")
CANCELLED = OrderCancelled(reason="changed my mind")


def test_a_new_order_is_placed() -> None:
    state = given(context).when(PlaceOrder("c-1", "EUR")).then(PLACED)
    assert state.status == "placed" and state.customer_id == "c-1"


def test_an_order_is_placed_only_once() -> None:
    given(context, PLACED).when(PlaceOrder("c-1", "EUR")).then_rejected("order_already_exists")


def test_an_order_needs_a_customer_and_a_currency_code() -> None:
    given(context).when(PlaceOrder(" ", "EUR")).then_rejected("missing_customer")
    given(context).when(PlaceOrder("c-1", "euro")).then_rejected("invalid_currency")
    given(context).when(PlaceOrder("c-1", "eur")).then_rejected("invalid_currency")


def test_an_order_that_does_not_exist_cannot_be_changed() -> None:
    for command in (
        AddItem("widget", 1, 100),
        RemoveItem("widget"),
        ConfirmOrder(),
        ShipOrder("DHL"),
        CancelOrder("x"),
    ):
        given(context).when(command).then_rejected("order_not_found")


def test_items_are_added_and_totalled() -> None:
    state = given(context, PLACED).when(AddItem("widget", 2, 250)).then(WIDGET)
    assert state.lines == (OrderLine("widget", 2, 250),)
    assert state.total_cents == 500


def test_adding_a_sku_again_raises_its_quantity() -> None:
    state = given(context, PLACED, WIDGET).when(AddItem("widget", 3, 250)).then(ItemAdded("widget", 3, 250))
    assert state.lines == (OrderLine("widget", 5, 250),)


def test_a_sku_keeps_one_price() -> None:
    given(context, PLACED, WIDGET).when(AddItem("widget", 1, 300)).then_rejected("price_mismatch")


def test_a_price_in_another_currency_is_rejected() -> None:
    given(context, PLACED).when(AddItem("widget", 2, 250, currency="EUR")).then(WIDGET)
    given(context, PLACED).when(AddItem("widget", 2, 250, currency="USD")).then_rejected("currency_mismatch")


def test_a_producer_on_add_item_v1_sends_no_currency_and_prices_in_the_order_currency() -> None:
    given(context, PLACED).when(AddItem("widget", 2, 250, currency=None)).then(WIDGET)


def test_quantities_are_positive_and_prices_not_negative() -> None:
    given(context, PLACED).when(AddItem("widget", 0, 100)).then_rejected("invalid_quantity")
    given(context, PLACED).when(AddItem("widget", -1, 100)).then_rejected("invalid_quantity")
    given(context, PLACED).when(AddItem("widget", 1, -1)).then_rejected("invalid_price")
    given(context, PLACED).when(AddItem("", 1, 1)).then_rejected("missing_sku")


def test_a_free_item_is_allowed() -> None:
    given(context, PLACED).when(AddItem("sample", 1, 0)).then(ItemAdded("sample", 1, 0))


def test_an_order_holds_at_most_a_hundred_lines() -> None:
    history = [PLACED, *(ItemAdded(f"sku-{i}", 1, 1) for i in range(100))]
    given(context, *history).when(AddItem("one-more", 1, 1)).then_rejected("too_many_lines")
    given(context, *history).when(AddItem("sku-0", 1, 1)).then(ItemAdded("sku-0", 1, 1))


def test_items_are_removed() -> None:
    state = given(context, PLACED, WIDGET).when(RemoveItem("widget")).then(ItemRemoved("widget"))
    assert state.lines == ()
    given(context, PLACED).when(RemoveItem("widget")).then_rejected("item_not_found")


def test_an_order_is_confirmed_with_its_total() -> None:
    state = given(context, PLACED, WIDGET).when(ConfirmOrder()).then(CONFIRMED)
    assert state.status == "confirmed"


def test_an_empty_order_cannot_be_confirmed() -> None:
    given(context, PLACED).when(ConfirmOrder()).then_rejected("empty_order")
    given(context, PLACED, WIDGET, ItemRemoved("widget")).when(ConfirmOrder()).then_rejected("empty_order")


def test_no_changes_after_confirmation() -> None:
    confirmed = (PLACED, WIDGET, CONFIRMED)
    given(context, *confirmed).when(AddItem("x", 1, 1)).then_rejected("order_not_modifiable")
    given(context, *confirmed).when(RemoveItem("widget")).then_rejected("order_not_modifiable")
    given(context, *confirmed).when(ConfirmOrder()).then_rejected("order_not_modifiable")


def test_no_shipping_before_confirmation() -> None:
    given(context, PLACED, WIDGET).when(ShipOrder("DHL")).then_rejected("order_not_confirmed")


def test_a_confirmed_order_ships_once() -> None:
    state = given(context, PLACED, WIDGET, CONFIRMED).when(ShipOrder("DHL")).then(SHIPPED)
    assert state.status == "shipped"
    tracked = OrderShipped("DHL", tracking_id="JD0123")
    given(context, PLACED, WIDGET, CONFIRMED).when(ShipOrder("DHL", "JD0123")).then(tracked)
    given(context, PLACED, WIDGET, CONFIRMED, SHIPPED).when(ShipOrder("UPS")).then_rejected(
        "order_not_confirmed"
    )
    given(context, PLACED, WIDGET, CONFIRMED).when(ShipOrder(" ")).then_rejected("missing_carrier")


def test_an_order_is_cancelled_before_shipping() -> None:
    state = given(context, PLACED).when(CancelOrder("changed my mind")).then(CANCELLED)
    assert state.status == "cancelled"
    given(context, PLACED, WIDGET, CONFIRMED).when(CancelOrder("late")).then(OrderCancelled("late"))


def test_a_shipped_or_cancelled_order_cannot_be_cancelled() -> None:
    given(context, PLACED, WIDGET, CONFIRMED, SHIPPED).when(CancelOrder()).then_rejected(
        "order_not_cancellable"
    )
    given(context, PLACED, CANCELLED).when(CancelOrder()).then_rejected("order_not_cancellable")


def test_a_cancelled_order_cannot_be_changed_or_shipped() -> None:
    given(context, PLACED, CANCELLED).when(AddItem("x", 1, 1)).then_rejected("order_not_modifiable")
    given(context, PLACED, CANCELLED).when(ShipOrder("DHL")).then_rejected("order_not_confirmed")


def test_evolve_ignores_events_it_does_not_know() -> None:
    state = context.fold([PLACED])
    assert context.evolve(state, object()) == state


def test_the_customers_name_and_email_go_into_the_event_not_the_state() -> None:
    placed = OrderPlaced("c-1", "EUR", "Ada Lovelace", "ada@example.org")
    state = given(context).when(PlaceOrder("c-1", "EUR", "Ada Lovelace", "ada@example.org")).then(placed)
    assert "Ada" not in repr(state)  # the state holds the customer id only (data minimisation)


def test_an_email_that_is_not_one_is_rejected() -> None:
    for bad in ("ada", "ada@", "@example.org", "ada lovelace@example.org"):
        given(context).when(PlaceOrder("c-1", "EUR", None, bad)).then_rejected("invalid_email")


def test_an_order_placed_before_v2_reads_with_no_personal_data() -> None:
    from streams.kafka.runtime import ContextRuntime

    codec = ContextRuntime.offline(context).codec
    old = codec.encode_record("OrderPlaced", 1, {"customer_id": "c-1", "currency": "EUR"})
    assert codec.decode(old).message == OrderPlaced("c-1", "EUR", None, None)
    command = codec.encode_record("PlaceOrder", 2, {"customer_id": "c-1", "currency": "EUR"})
    assert codec.decode(command).message == PlaceOrder("c-1", "EUR", None, None)
