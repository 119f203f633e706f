"""Wallet: a player's money as a bounded context (plain data + pure functions).

One aggregate per player (aggregate id = the player id). Amounts are integer minor units.
`balance` is what the player owns, reserved funds included; `available` = balance - reserved.
A reservation holds funds for a bet: it is later captured (the stake is lost, or paid in before a
win is credited) or released (the bet was cancelled, refused or voided). The balance never goes
negative: a reservation needs that much available, and only reserved funds are ever captured.

Idempotency: reservation, credit and deposit ids are the operations' own ids. Repeating an
operation with the same id and amount is accepted with no event (the settlement process may
send it again under a new command id after a crash); the same id with another amount, or a
capture of a released reservation (or the reverse), is rejected. Closed ids are remembered for
the latest `REMEMBERED` operations; the command-id dedupe window covers plain replays.

Schema history: every type is at v1 (`schemas/wallet/*.v1.avsc`).
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from streams.core.decider import BoundedContext, Message, Rejected
from streams.core.views import EventMeta, State, View

Id = Annotated[str, Meta(max_length=128)]
Currency = Annotated[str, Meta(max_length=3)]
MAX_AMOUNT = 10**12
"""The largest single amount (minor units)."""
MAX_BALANCE = 10**15
"""Balances stay far inside Avro's long."""
MAX_OPEN_RESERVATIONS = 1000
REMEMBERED = 1000
"""Closed operation ids kept for idempotency (the oldest are forgotten first)."""

# --- commands ---------------------------------------------------------------------------------


class OpenWallet(Struct, frozen=True):
    """Open the player's wallet in a currency (ISO-4217)."""

    currency: Currency = "EUR"


class DepositFunds(Struct, frozen=True):
    """Add money to the wallet (a payment in, a test's funding)."""

    deposit_id: Id
    amount: int


class ReserveFunds(Struct, frozen=True):
    """Hold `amount` of the available funds under `reservation_id` (a bet's stake)."""

    reservation_id: Id
    amount: int


class ReleaseReservation(Struct, frozen=True):
    """Give a reservation's funds back to the available balance."""

    reservation_id: Id


class CaptureStake(Struct, frozen=True):
    """Take a reservation's funds out of the wallet (the stake is paid)."""

    reservation_id: Id


class CreditWinnings(Struct, frozen=True):
    """Add a payout to the balance, once per `credit_id`."""

    credit_id: Id
    amount: int


# --- events -----------------------------------------------------------------------------------


class WalletOpened(Struct, frozen=True):
    """The wallet exists, empty."""

    currency: Currency


class FundsDeposited(Struct, frozen=True):
    """Money came in."""

    deposit_id: Id
    amount: int


class FundsReserved(Struct, frozen=True):
    """Funds are held for a reservation."""

    reservation_id: Id
    amount: int


class ReservationReleased(Struct, frozen=True):
    """A reservation's funds are available again."""

    reservation_id: Id
    amount: int


class StakeCaptured(Struct, frozen=True):
    """A reservation's funds left the wallet."""

    reservation_id: Id
    amount: int


class WinningsCredited(Struct, frozen=True):
    """A payout came in."""

    credit_id: Id
    amount: int


# --- state ------------------------------------------------------------------------------------


class Operation(Struct, frozen=True):
    """An open reservation, or a closed operation remembered for idempotency (`outcome`:
    reserved, released, captured, credited or deposited)."""

    op_id: Id
    amount: int
    outcome: Id


class WalletState(Struct, frozen=True):
    """A wallet as its events made it. `status` is `none` until it is opened."""

    status: Id = "none"
    currency: Currency = ""
    balance: int = 0
    reserved: tuple[Operation, ...] = ()
    """The open reservations."""
    closed: tuple[Operation, ...] = ()
    """The latest `REMEMBERED` closed operations, oldest first."""

    @property
    def reserved_total(self) -> int:
        """The funds held by open reservations."""
        return sum(op.amount for op in self.reserved)

    @property
    def available(self) -> int:
        """What a new reservation may take."""
        return self.balance - self.reserved_total

    def find(self, op_id: str) -> Operation | None:
        """The open reservation or remembered closed operation with this id, if any."""
        for op in (*self.reserved, *self.closed):
            if op.op_id == op_id:
                return op
        return None


INITIAL = WalletState()


def _require_wallet(state: WalletState) -> None:
    if state.status == "none":
        raise Rejected("unknown_player", "no wallet is open for this player")


def _check_amount(amount: int) -> None:
    if not 0 < amount <= MAX_AMOUNT:
        raise Rejected(
            "invalid_amount", f"amount must be a positive integer up to {MAX_AMOUNT}, got {amount}"
        )


def _repeat(state: WalletState, op_id: str, amount: int, outcome: str) -> bool:
    """True when `op_id` already did exactly this (accept, no event); Rejected when it did
    something else."""
    known = state.find(op_id)
    if known is None:
        return False
    if known.outcome != outcome or known.amount != amount:
        raise Rejected("operation_id_reused", f"{op_id!r} was {known.outcome} with amount {known.amount}")
    return True


def _reservation(state: WalletState, reservation_id: str, closing: str) -> Operation | None:
    """The open reservation to release or capture; None when it already was (`closing`)."""
    known = state.find(reservation_id)
    if known is None:
        raise Rejected("unknown_reservation", f"no reservation {reservation_id!r}")
    if known.outcome == "reserved":
        return known
    if known.outcome == closing:
        return None
    raise Rejected("reservation_closed", f"{reservation_id!r} was {known.outcome}")


def decide(state: WalletState, command: Message) -> list[Message]:
    """The events a command causes, or `Rejected`."""
    match command:
        case OpenWallet(currency=currency):
            if state.status != "none":
                raise Rejected("wallet_already_open", "the player's wallet is open")
            if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                raise Rejected("invalid_currency", f"{currency!r} is not an ISO-4217 code")
            return [WalletOpened(currency=currency)]
        case DepositFunds(deposit_id=op_id, amount=amount) | CreditWinnings(credit_id=op_id, amount=amount):
            _require_wallet(state)
            _check_amount(amount)
            outcome = "deposited" if isinstance(command, DepositFunds) else "credited"
            if _repeat(state, op_id, amount, outcome):
                return []
            if state.balance + amount > MAX_BALANCE:
                raise Rejected("balance_limit", f"the balance would exceed {MAX_BALANCE}")
            if isinstance(command, DepositFunds):
                return [FundsDeposited(deposit_id=op_id, amount=amount)]
            return [WinningsCredited(credit_id=op_id, amount=amount)]
        case ReserveFunds(reservation_id=op_id, amount=amount):
            _require_wallet(state)
            _check_amount(amount)
            if _repeat(state, op_id, amount, "reserved"):
                return []
            if amount > state.available:
                raise Rejected("insufficient_funds", f"{amount} asked, {state.available} available")
            if len(state.reserved) >= MAX_OPEN_RESERVATIONS:
                raise Rejected("too_many_reservations", f"at most {MAX_OPEN_RESERVATIONS} open reservations")
            return [FundsReserved(reservation_id=op_id, amount=amount)]
        case ReleaseReservation(reservation_id=op_id):
            _require_wallet(state)
            held = _reservation(state, op_id, "released")
            return [] if held is None else [ReservationReleased(reservation_id=op_id, amount=held.amount)]
        case CaptureStake(reservation_id=op_id):
            _require_wallet(state)
            held = _reservation(state, op_id, "captured")
            return [] if held is None else [StakeCaptured(reservation_id=op_id, amount=held.amount)]
    raise Rejected("unknown_command", type(command).__name__)


def evolve(state: WalletState, event: Message) -> WalletState:
    """Fold one event into the wallet; unknown events leave it unchanged."""
    match event:
        case WalletOpened(currency=currency):
            return WalletState("open", currency)
        case FundsDeposited(deposit_id=op_id, amount=amount):
            return _closing(
                state, state.balance + amount, state.reserved, Operation(op_id, amount, "deposited")
            )
        case WinningsCredited(credit_id=op_id, amount=amount):
            return _closing(
                state, state.balance + amount, state.reserved, Operation(op_id, amount, "credited")
            )
        case FundsReserved(reservation_id=op_id, amount=amount):
            reserved = (*state.reserved, Operation(op_id, amount, "reserved"))
            return WalletState(state.status, state.currency, state.balance, reserved, state.closed)
        case ReservationReleased(reservation_id=op_id, amount=amount):
            rest = tuple(op for op in state.reserved if op.op_id != op_id)
            return _closing(state, state.balance, rest, Operation(op_id, amount, "released"))
        case StakeCaptured(reservation_id=op_id, amount=amount):
            rest = tuple(op for op in state.reserved if op.op_id != op_id)
            return _closing(state, state.balance - amount, rest, Operation(op_id, amount, "captured"))
    return state


def _closing(
    state: WalletState, balance: int, reserved: tuple[Operation, ...], done: Operation
) -> WalletState:
    closed = (*state.closed, done)[-REMEMBERED:]
    return WalletState(state.status, state.currency, balance, reserved, closed)


# --- views ------------------------------------------------------------------------------------


def wallet_balance(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`wallet-balance`: per player, the balance, the reserved funds and what is available."""
    doc: dict[str, Any] = dict(state) if state is not None else {"balance": 0, "reserved": 0}
    match event:
        case WalletOpened(currency=currency):
            doc["currency"] = currency
        case FundsDeposited(amount=amount) | WinningsCredited(amount=amount):
            doc["balance"] += amount
        case FundsReserved(amount=amount):
            doc["reserved"] += amount
        case ReservationReleased(amount=amount):
            doc["reserved"] -= amount
        case StakeCaptured(amount=amount):
            doc.update(balance=doc["balance"] - amount, reserved=doc["reserved"] - amount)
    doc.update(available=doc["balance"] - doc["reserved"], version=meta.aggregate_version)
    return doc


VIEWS = (View("wallet-balance", wallet_balance, list_fields=("currency",)),)

context: BoundedContext[WalletState] = BoundedContext(
    name="wallet",
    aggregate_type="Wallet",
    commands=(OpenWallet, DepositFunds, ReserveFunds, ReleaseReservation, CaptureStake, CreditWinnings),
    events=(
        WalletOpened,
        FundsDeposited,
        FundsReserved,
        ReservationReleased,
        StakeCaptured,
        WinningsCredited,
    ),
    state_type=WalletState,
    initial_state=INITIAL,
    decide=decide,
    evolve=evolve,
    views=VIEWS,
)
