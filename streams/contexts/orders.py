"""Orders: the seed's e-commerce example as a bounded context (plain data + pure functions).

Money is an integer amount of minor units (cents) so that totals are exact. Messages and the
state are frozen `msgspec.Struct`s: plain immutable classes like frozen dataclasses (which a
context may use as well), ten times cheaper to build, and every command builds several.

Schema history (docs/versioning.md): `PlaceOrder` v3 and `OrderPlaced` v2 add the customer's
name and e-mail, personal data sealed under the customer's key (docs/privacy.md; optional fields
with defaults, so older records read by Avro resolution with null for both; the state keeps only
the customer id, which `decide` needs; `order-summary` copies them and declares it, so its
documents lose them when the customer is forgotten);
`ShipOrder`/`OrderShipped` v2 add `tracking_id` and
`AddItem` v2 an optional `currency` (fields with defaults: pure Avro evolution, old producers and
old events are read by schema resolution); `ItemAdded` v2 renamed `unit_price_cents` to
`unit_price_minor`, which Avro defaults cannot express: the upcaster at the end of this module
turns v1 records into v2 on read.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from streams.core.decider import BoundedContext, Message, Rejected
from streams.core.records import Personal
from streams.core.views import EventMeta, Forgetting, State, View

MAX_LINES = 100
Id = Annotated[str, Meta(max_length=255)]
"""A customer id or a sku (the schemas' `maxLength`, checked before `decide` runs)."""
Currency = Annotated[str, Meta(max_length=3)]
Name = Annotated[Annotated[str, Meta(max_length=200)] | None, Personal(subject="customer_id")]
"""A customer's name: personal data of the customer (`customer_id`), sealed on the wire."""
Email = Annotated[Annotated[str, Meta(max_length=254)] | None, Personal(subject="customer_id")]
"""A customer's e-mail address: personal data of the customer, sealed on the wire."""

# --- commands ---------------------------------------------------------------------------------


class PlaceOrder(Struct, frozen=True):
    """Open a new order for a customer (v2: field lengths declared with maxLength; v3: the
    customer's name and e-mail, personal data)."""

    customer_id: Id
    currency: Currency = "EUR"
    customer_name: Name = None
    customer_email: Email = None


class AddItem(Struct, frozen=True):
    """Add `quantity` units of `sku`; adding a sku again raises its quantity (v2: the price's
    currency, checked against the order's; null: the order's; v3: field lengths declared with
    maxLength)."""

    sku: Id
    quantity: int
    unit_price_cents: int
    currency: Currency | None = None
    """v2: the price's currency; it must be the order's (None: the order's, as in v1)."""


class RemoveItem(Struct, frozen=True):
    """Remove the line for `sku`."""

    sku: str


class ConfirmOrder(Struct, frozen=True):
    """Freeze the order's content; it can then be shipped."""


class ShipOrder(Struct, frozen=True):
    """Hand a confirmed order to a carrier (v2: the carrier's tracking id, if known)."""

    carrier: str
    tracking_id: str = ""


class CancelOrder(Struct, frozen=True):
    """Cancel an order that has not shipped."""

    reason: str = ""


# --- events -----------------------------------------------------------------------------------


class OrderPlaced(Struct, frozen=True):
    """An order was opened (v2: the customer's name and e-mail, personal data; null once the
    customer is forgotten)."""

    customer_id: str
    currency: str
    customer_name: Annotated[str | None, Personal(subject="customer_id")] = None
    customer_email: Annotated[str | None, Personal(subject="customer_id")] = None


class ItemAdded(Struct, frozen=True):
    """Units of a sku were added (v2: `unit_price_cents` renamed `unit_price_minor`, the amount in
    the minor unit of the order's currency)."""

    sku: str
    quantity: int
    unit_price_minor: int


class ItemRemoved(Struct, frozen=True):
    """A line was removed."""

    sku: str


class OrderConfirmed(Struct, frozen=True):
    """The order's content is final; `total_cents` is its value at confirmation."""

    total_cents: int


class OrderShipped(Struct, frozen=True):
    """The order left with a carrier (v2: the tracking id; empty when unknown or before v2)."""

    carrier: str
    tracking_id: str = ""


class OrderCancelled(Struct, frozen=True):
    """The order was cancelled."""

    reason: str


# --- state ------------------------------------------------------------------------------------


class OrderLine(Struct, frozen=True):
    """One sku in an order."""

    sku: str
    quantity: int
    unit_price_cents: int


class OrderState(Struct, frozen=True):
    """An order as its events made it. `status` is `none` until the order is placed."""

    status: str = "none"
    customer_id: str = ""
    currency: str = ""
    lines: tuple[OrderLine, ...] = ()

    @property
    def total_cents(self) -> int:
        """Sum of quantity x unit price over the lines."""
        return sum(line.quantity * line.unit_price_cents for line in self.lines)

    def line(self, sku: str) -> OrderLine | None:
        """The line for `sku`, if any."""
        for line in self.lines:
            if line.sku == sku:
                return line
        return None


INITIAL = OrderState()


def _require_open(state: OrderState) -> None:
    if state.status == "none":
        raise Rejected("order_not_found", "no order with this id has been placed")
    if state.status != "placed":
        raise Rejected("order_not_modifiable", f"the order is {state.status}")


def decide(state: OrderState, command: Message) -> list[Message]:
    """Check a command against the order's rules and return the events it causes."""
    match command:
        case PlaceOrder(customer_id=customer_id, currency=currency, customer_name=name, customer_email=email):
            if state.status != "none":
                raise Rejected("order_already_exists", f"the order is {state.status}")
            if not customer_id.strip():
                raise Rejected("missing_customer", "customer_id must not be empty")
            if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                raise Rejected("invalid_currency", f"{currency!r} is not an ISO-4217 code")
            if email is not None and ("@" not in email.strip("@") or any(c.isspace() for c in email)):
                raise Rejected("invalid_email", "customer_email is not an e-mail address")
            return [OrderPlaced(customer_id, currency, name, email)]
        case AddItem(sku=sku, quantity=quantity, unit_price_cents=price, currency=price_currency):
            _require_open(state)
            if price_currency is not None and price_currency != state.currency:
                raise Rejected(
                    "currency_mismatch", f"the order is in {state.currency}, the price in {price_currency}"
                )
            if not sku.strip():
                raise Rejected("missing_sku", "sku must not be empty")
            if quantity <= 0:
                raise Rejected("invalid_quantity", f"quantity must be > 0, got {quantity}")
            if price < 0:
                raise Rejected("invalid_price", f"unit_price_cents must be >= 0, got {price}")
            existing = state.line(sku)
            if existing is None and len(state.lines) >= MAX_LINES:
                raise Rejected("too_many_lines", f"an order holds at most {MAX_LINES} lines")
            if existing is not None and existing.unit_price_cents != price:
                raise Rejected(
                    "price_mismatch",
                    f"{sku} is in the order at {existing.unit_price_cents}, not {price}",
                )
            return [ItemAdded(sku=sku, quantity=quantity, unit_price_minor=price)]
        case RemoveItem(sku=sku):
            _require_open(state)
            if state.line(sku) is None:
                raise Rejected("item_not_found", f"{sku} is not in the order")
            return [ItemRemoved(sku=sku)]
        case ConfirmOrder():
            _require_open(state)
            if not state.lines:
                raise Rejected("empty_order", "an order needs at least one line to be confirmed")
            return [OrderConfirmed(total_cents=state.total_cents)]
        case ShipOrder(carrier=carrier, tracking_id=tracking_id):
            if state.status == "none":
                raise Rejected("order_not_found", "no order with this id has been placed")
            if state.status != "confirmed":
                raise Rejected("order_not_confirmed", f"the order is {state.status}")
            if not carrier.strip():
                raise Rejected("missing_carrier", "carrier must not be empty")
            return [OrderShipped(carrier=carrier, tracking_id=tracking_id)]
        case CancelOrder(reason=reason):
            if state.status == "none":
                raise Rejected("order_not_found", "no order with this id has been placed")
            if state.status in ("shipped", "cancelled"):
                raise Rejected("order_not_cancellable", f"the order is {state.status}")
            return [OrderCancelled(reason=reason)]
    raise Rejected("unknown_command", type(command).__name__)


def evolve(state: OrderState, event: Message) -> OrderState:
    """Fold one event into the order; unknown events leave it unchanged."""
    # States are built directly: `dataclasses.replace` costs several times more, once per event.
    match event:
        case OrderPlaced(customer_id=customer_id, currency=currency):
            return OrderState("placed", customer_id, currency, state.lines)
        case ItemAdded(sku=sku, quantity=quantity, unit_price_minor=price):
            lines = state.lines
            for i, line in enumerate(lines):
                if line.sku == sku:
                    grown = OrderLine(sku, line.quantity + quantity, line.unit_price_cents)
                    return _with_lines(state, (*lines[:i], grown, *lines[i + 1 :]))
            return _with_lines(state, (*lines, OrderLine(sku, quantity, price)))
        case ItemRemoved(sku=sku):
            return _with_lines(state, tuple(ln for ln in state.lines if ln.sku != sku))
        case OrderConfirmed():
            return _with_status(state, "confirmed")
        case OrderShipped():
            return _with_status(state, "shipped")
        case OrderCancelled():
            return _with_status(state, "cancelled")
    return state


def _with_lines(state: OrderState, lines: tuple[OrderLine, ...]) -> OrderState:
    return OrderState(state.status, state.customer_id, state.currency, lines)


def _with_status(state: OrderState, status: str) -> OrderState:
    return OrderState(status, state.customer_id, state.currency, state.lines)


# --- views ------------------------------------------------------------------------------------


def _lines_json(lines: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(line["quantity"] * line["unit_price_cents"] for line in lines)
    return {"items": lines, "total_cents": total, "item_count": sum(line["quantity"] for line in lines)}


def summarize(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`order-summary`: one document per order with its status, items, totals and version."""
    doc: dict[str, Any] = dict(state) if state is not None else {"status": "none", "items": []}
    doc["version"] = meta.aggregate_version
    match event:
        case OrderPlaced(customer_id=customer_id, currency=currency) as placed:
            doc.update(status="placed", customer_id=customer_id, currency=currency)
            doc.update(_lines_json([]), placed_at=meta.occurred_at)
            # personal: declared in SUMMARY_FORGETTING, erased when the customer is forgotten
            personal = (("customer_name", placed.customer_name), ("customer_email", placed.customer_email))
            doc.update({k: v for k, v in personal if v})
        case ItemAdded(sku=sku, quantity=quantity, unit_price_minor=price):
            items = list(doc["items"])  # the input is not mutated: only the changed line is new
            for i, line in enumerate(items):
                if line["sku"] == sku:
                    items[i] = {**line, "quantity": line["quantity"] + quantity}
                    price = line["unit_price_cents"]
                    break
            else:
                items.append({"sku": sku, "quantity": quantity, "unit_price_cents": price})
            # totals move by the added units (a sum over every line per event was most of the cost)
            doc["items"] = items
            doc["total_cents"] = doc.get("total_cents", 0) + quantity * price
            doc["item_count"] = doc.get("item_count", 0) + quantity
        case ItemRemoved(sku=sku):
            doc.update(_lines_json([ln for ln in doc["items"] if ln["sku"] != sku]))
        case OrderConfirmed():
            doc["status"] = "confirmed"
        case OrderShipped(carrier=carrier, tracking_id=tracking_id):
            doc.update(status="shipped", carrier=carrier)
            if tracking_id:
                doc["tracking_id"] = tracking_id
        case OrderCancelled(reason=reason):
            doc.update(status="cancelled", cancel_reason=reason)
    return doc


def customer_of(event: Message, previous: str | None) -> str | None:
    """`orders-by-customer` is keyed by the customer that placed the order."""
    return event.customer_id if isinstance(event, OrderPlaced) else previous


def by_customer(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`orders-by-customer`: a customer's open orders with their totals (deleted when none is left).

    A shipped or cancelled order is no longer open: it leaves the document, so a customer's
    document holds what they have in progress, not their whole history (which would reach the
    view topic's record limit and freeze)."""
    orders = {k: dict(v) for k, v in (state or {}).get("orders", {}).items()}
    order = orders.setdefault(meta.aggregate_id, {"status": "placed", "total_cents": 0, "lines": {}})
    match event:
        case OrderPlaced(customer_id=customer_id):
            order["customer_id"] = customer_id
        case ItemAdded(sku=sku, quantity=quantity, unit_price_minor=price):
            lines = dict(order["lines"])
            lines[sku] = lines.get(sku, 0) + quantity * price
            order["lines"] = lines
        case ItemRemoved(sku=sku):
            order["lines"] = {k: v for k, v in order["lines"].items() if k != sku}
        case OrderConfirmed():
            order["status"] = "confirmed"
        case OrderShipped() | OrderCancelled():
            del orders[meta.aggregate_id]
    if meta.aggregate_id in orders:
        order["total_cents"] = sum(order["lines"].values())
    if not orders:
        return None
    return {
        "orders": orders,
        "order_count": len(orders),
        "total_cents": sum(o["total_cents"] for o in orders.values()),
    }


# --- upcasters: pure functions from a record of version N to one of N + 1, applied on read -------


def item_added_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """`unit_price_cents` became `unit_price_minor` (not every currency has cents); same amount."""
    return {
        "sku": record["sku"],
        "quantity": record["quantity"],
        "unit_price_minor": record["unit_price_cents"],
    }


UPCASTERS = {("ItemAdded", 1): item_added_v1_to_v2}

SUMMARY_FORGETTING = Forgetting("customer_id", {"customer_name": None, "customer_email": None})
"""`order-summary` copies the customer's name and e-mail: they read null once the customer is
forgotten (the document stays: the order is not personal data)."""

VIEWS = (
    View(
        "order-summary",
        summarize,
        list_fields=("status", "customer_id", "currency"),
        forgetting=SUMMARY_FORGETTING,
    ),
    View("orders-by-customer", by_customer, key_by=customer_of),
)

context: BoundedContext[OrderState] = BoundedContext(
    name="orders",
    aggregate_type="Order",
    commands=(PlaceOrder, AddItem, RemoveItem, ConfirmOrder, ShipOrder, CancelOrder),
    events=(OrderPlaced, ItemAdded, ItemRemoved, OrderConfirmed, OrderShipped, OrderCancelled),
    state_type=OrderState,
    initial_state=INITIAL,
    decide=decide,
    evolve=evolve,
    views=VIEWS,
    upcasters=UPCASTERS,
)
