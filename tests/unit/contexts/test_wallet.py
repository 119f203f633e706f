"""The wallet rules, read as given/when/then: the balance never goes negative, operation ids are
idempotent, unknown players are rejected; the wallet-balance view; the conformance check."""

from __future__ import annotations

import pytest

from streams.contexts.wallet import (
    REMEMBERED,
    CaptureStake,
    CreditWinnings,
    DepositFunds,
    FundsDeposited,
    FundsReserved,
    OpenWallet,
    ReleaseReservation,
    ReservationReleased,
    ReserveFunds,
    StakeCaptured,
    WalletOpened,
    WinningsCredited,
    context,
)
from streams.core.decider import Rejected
from streams.core.views import EventMeta, fold_view
from streams.testing import assert_conformant, given
from tests.compat.samples_tool import SAMPLES

OPEN = WalletOpened("EUR")
FUNDED = (OPEN, FundsDeposited("d-1", 1_000))
HELD = (*FUNDED, FundsReserved("bet:b-1", 600))


def test_a_wallet_opens_once_in_a_currency() -> None:
    state = given(context).when(OpenWallet("EUR")).then(OPEN)
    assert (state.status, state.balance, state.available) == ("open", 0, 0)
    given(context, OPEN).when(OpenWallet("EUR")).then_rejected("wallet_already_open")
    given(context).when(OpenWallet("eur")).then_rejected("invalid_currency")


@pytest.mark.parametrize(
    "command",
    [
        DepositFunds("d-1", 100),
        ReserveFunds("r-1", 100),
        ReleaseReservation("r-1"),
        CaptureStake("r-1"),
        CreditWinnings("c-1", 100),
    ],
)
def test_a_command_for_an_unknown_player_is_rejected(command: object) -> None:
    given(context).when(command).then_rejected("unknown_player")


@pytest.mark.parametrize("amount", [0, -1, 10**12 + 1])
def test_amounts_are_positive_and_bounded(amount: int) -> None:
    for command in (DepositFunds("d-2", amount), ReserveFunds("r-2", amount), CreditWinnings("c-2", amount)):
        given(context, *FUNDED).when(command).then_rejected("invalid_amount")


def test_a_reservation_needs_that_much_available() -> None:
    state = given(context, *FUNDED).when(ReserveFunds("bet:b-1", 600)).then(FundsReserved("bet:b-1", 600))
    assert (state.balance, state.reserved_total, state.available) == (1_000, 600, 400)
    given(context, *HELD).when(ReserveFunds("bet:b-2", 401)).then_rejected("insufficient_funds")
    given(context, *HELD).when(ReserveFunds("bet:b-2", 400)).then(FundsReserved("bet:b-2", 400))
    given(context, OPEN).when(ReserveFunds("bet:b-1", 1)).then_rejected("insufficient_funds")


def test_a_reservation_id_is_idempotent() -> None:
    given(context, *HELD).when(ReserveFunds("bet:b-1", 600)).then()
    given(context, *HELD).when(ReserveFunds("bet:b-1", 500)).then_rejected("operation_id_reused")
    released = (*HELD, ReservationReleased("bet:b-1", 600))
    given(context, *released).when(ReserveFunds("bet:b-1", 600)).then_rejected("operation_id_reused")


def test_capture_takes_the_reserved_funds_out_once() -> None:
    state = given(context, *HELD).when(CaptureStake("bet:b-1")).then(StakeCaptured("bet:b-1", 600))
    assert (state.balance, state.reserved_total, state.available) == (400, 0, 400)
    captured = (*HELD, StakeCaptured("bet:b-1", 600))
    given(context, *captured).when(CaptureStake("bet:b-1")).then()
    given(context, *captured).when(ReleaseReservation("bet:b-1")).then_rejected("reservation_closed")
    given(context, *HELD).when(CaptureStake("bet:b-9")).then_rejected("unknown_reservation")


def test_release_gives_the_funds_back_once() -> None:
    state = (
        given(context, *HELD).when(ReleaseReservation("bet:b-1")).then(ReservationReleased("bet:b-1", 600))
    )
    assert (state.balance, state.available) == (1_000, 1_000)
    released = (*HELD, ReservationReleased("bet:b-1", 600))
    given(context, *released).when(ReleaseReservation("bet:b-1")).then()
    given(context, *released).when(CaptureStake("bet:b-1")).then_rejected("reservation_closed")
    given(context, *HELD).when(ReleaseReservation("bet:b-9")).then_rejected("unknown_reservation")


def test_winnings_and_deposits_are_credited_once_per_id() -> None:
    state = (
        given(context, *FUNDED)
        .when(CreditWinnings("win:b-1", 1_200))
        .then(WinningsCredited("win:b-1", 1_200))
    )
    assert state.balance == 2_200
    credited = (*FUNDED, WinningsCredited("win:b-1", 1_200))
    given(context, *credited).when(CreditWinnings("win:b-1", 1_200)).then()
    given(context, *credited).when(CreditWinnings("win:b-1", 1_300)).then_rejected("operation_id_reused")
    given(context, *FUNDED).when(DepositFunds("d-1", 1_000)).then()
    given(context, *FUNDED).when(DepositFunds("d-2", 10**12)).then(FundsDeposited("d-2", 10**12))


def test_the_balance_never_goes_negative() -> None:
    """Reservations stop at the available funds, and only reserved funds ever leave."""
    history: list[object] = list(FUNDED)
    for i in range(5):
        try:
            history += context.decide(context.fold(history), ReserveFunds(f"r-{i}", 300))
        except Rejected as rejection:
            assert rejection.reason == "insufficient_funds" and i == 3
            break
    for i in range(3):
        history += context.decide(context.fold(history), CaptureStake(f"r-{i}"))
    state = context.fold(history)
    assert (state.balance, state.reserved_total, state.available) == (100, 0, 100)


def test_only_the_latest_closed_operations_are_remembered() -> None:
    history = [OPEN, *(FundsDeposited(f"d-{i}", 1) for i in range(REMEMBERED + 5))]
    state = context.fold(history)
    assert len(state.closed) == REMEMBERED and state.closed[0].op_id == "d-5"


def test_wallet_balance_shows_balance_reserved_and_available() -> None:
    view = context.views[0]
    log = [*HELD, StakeCaptured("bet:b-1", 600), WinningsCredited("win:b-1", 1_200)]
    metas = [EventMeta("p-7", i + 1, type(e).__name__, "2026-01-01T00:00:00Z") for i, e in enumerate(log)]
    doc = fold_view(view, list(zip(log, metas, strict=True)))["p-7"].state
    assert doc == {"currency": "EUR", "balance": 1_600, "reserved": 0, "available": 1_600, "version": 5}


def test_the_wallet_context_is_conformant() -> None:
    assert_conformant(context, SAMPLES / "wallet")
