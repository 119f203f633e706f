"""The games rules, read as given/when/then: rounds, stakes (a player's bets on a round), the
views, and the conformance check."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import msgspec
import pytest

from streams.contexts.games import (
    Bet,
    BetCancelled,
    BetLost,
    BetPlaced,
    BetRefused,
    BettingClosed,
    BetVoided,
    BetWon,
    CancelBet,
    CloseBetting,
    PlaceBet,
    RefuseBet,
    RoundSettled,
    RoundStarted,
    RoundTerms,
    RoundVoided,
    SettleRound,
    SettleStake,
    StakeOpened,
    StakeSettled,
    StakeVoided,
    StartGameRound,
    VoidRound,
    VoidStake,
    context,
    payout,
    stake_id,
)
from streams.contexts.games.rules import MAX_BETS
from streams.core.views import EventMeta, fold_view
from streams.testing import assert_conformant, given
from streams.wire.schemas import catalog_for
from streams.wire.topics import partition_for
from streams.wire.validation import JsonInvalid, compile_validator
from tests.compat.samples_tool import SAMPLES

T0 = 1_767_225_600_000
CLOSES = T0 + 60_000
REVEAL = "seed-7f3a:red"
COMMITMENT = hashlib.sha256(REVEAL.encode()).hexdigest()
TERMS = RoundTerms("r-1", "roulette-3", 100, 10_000, 20_000, CLOSES, "odds-v1", COMMITMENT)
STARTED = RoundStarted(TERMS)
CLOSED = BettingClosed("r-1", CLOSES)
OPENED = StakeOpened(TERMS, "p-7")


def bet(bet_id: str = "b-1", stake: int = 500, selection: str = "red", at: int = T0 + 1_000) -> PlaceBet:
    return PlaceBet(TERMS, "p-7", bet_id, selection, stake, 20_000, at)


def placed(bet_id: str = "b-1", stake: int = 500, selection: str = "red", at: int = T0 + 1_000) -> BetPlaced:
    return BetPlaced("r-1", "p-7", bet_id, selection, stake, 20_000, at)


# --- rounds ---------------------------------------------------------------------------------------


def test_a_round_starts_once_with_valid_terms() -> None:
    state = given(context).when(StartGameRound(TERMS)).then(STARTED)
    assert (state.kind, state.status, state.terms) == ("round", "open", TERMS)
    given(context, STARTED).when(StartGameRound(TERMS)).then_rejected("round_already_started")
    given(context, OPENED).when(StartGameRound(TERMS)).then_rejected("not_a_round")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"round_id": " "}, "missing_round_id"),
        ({"table": ""}, "missing_table"),
        ({"odds_version": ""}, "missing_odds_version"),
        ({"min_stake": 0}, "invalid_limits"),
        ({"min_stake": 20_000}, "invalid_limits"),
        ({"max_exposure": 5_000}, "invalid_limits"),
        ({"max_exposure": 10**13}, "invalid_limits"),
        ({"closes_at": 0}, "invalid_closes_at"),
        ({"commitment": "abc"}, "invalid_commitment"),
        ({"commitment": COMMITMENT.upper()}, "invalid_commitment"),
    ],
)
def test_bad_round_terms_are_rejected(change: dict[str, object], reason: str) -> None:
    terms = msgspec.structs.replace(TERMS, **change)
    given(context).when(StartGameRound(terms)).then_rejected(reason)


def test_betting_closes_once_at_the_earlier_of_the_command_and_the_closing_time() -> None:
    given(context, STARTED).when(CloseBetting(T0 + 5_000)).then(BettingClosed("r-1", T0 + 5_000))
    given(context, STARTED).when(CloseBetting(CLOSES + 9_000)).then(CLOSED)
    given(context, STARTED, CLOSED).when(CloseBetting(CLOSES)).then_rejected("round_not_open")
    given(context, STARTED).when(CloseBetting(0)).then_rejected("invalid_closed_at")


def test_a_round_settles_once_after_close_with_the_committed_reveal() -> None:
    state = (
        given(context, STARTED, CLOSED)
        .when(SettleRound("red", REVEAL))
        .then(RoundSettled("r-1", "red", REVEAL))
    )
    assert (state.status, state.outcome) == ("settled", "red")
    given(context, STARTED, CLOSED).when(SettleRound("red", "seed-7f3a:black")).then_rejected(
        "reveal_mismatch"
    )
    given(context, STARTED, CLOSED).when(SettleRound(" ", REVEAL)).then_rejected("missing_outcome")
    given(context, STARTED).when(SettleRound("red", REVEAL)).then_rejected("round_not_closed")
    settled = (STARTED, CLOSED, RoundSettled("r-1", "red", REVEAL))
    given(context, *settled).when(SettleRound("red", REVEAL)).then_rejected("round_already_settled")
    given(context, STARTED, RoundVoided("r-1", "x")).when(SettleRound("red", REVEAL)).then_rejected(
        "round_not_closed"
    )


def test_a_round_is_voided_once_and_never_after_settlement() -> None:
    given(context, STARTED).when(VoidRound("table fault")).then(RoundVoided("r-1", "table fault"))
    given(context, STARTED, CLOSED).when(VoidRound()).then(RoundVoided("r-1", ""))
    given(context, STARTED, RoundVoided("r-1", "")).when(VoidRound()).then_rejected("round_already_voided")
    settled = (STARTED, CLOSED, RoundSettled("r-1", "red", REVEAL))
    given(context, *settled).when(VoidRound()).then_rejected("round_already_settled")


def test_round_commands_on_an_unknown_round_or_a_stake_are_rejected() -> None:
    for command in (CloseBetting(T0), SettleRound("red", REVEAL), VoidRound()):
        given(context).when(command).then_rejected("unknown_round")
        given(context, OPENED, placed()).when(command).then_rejected("not_a_round")


# --- stakes: a player's bets on a round -------------------------------------------------------------


def test_a_first_bet_opens_the_stake_with_the_rounds_terms() -> None:
    state = given(context).when(bet()).then(OPENED, placed())
    assert (state.kind, state.player_id, state.exposure) == ("stake", "p-7", 500)
    state = given(context, OPENED, placed()).when(bet("b-2", 300)).then(placed("b-2", 300))
    assert state.exposure == 800
    assert stake_id("r-1", "p-7") == "r-1/p-7"


def test_a_bet_must_carry_the_stakes_terms_and_player() -> None:
    other = msgspec.structs.replace(TERMS, max_exposure=50_000)
    given(context, OPENED, placed()).when(
        PlaceBet(other, "p-7", "b-2", "red", 500, 20_000, T0)
    ).then_rejected("terms_mismatch")
    given(context, OPENED, placed()).when(
        PlaceBet(TERMS, "p-8", "b-2", "red", 500, 20_000, T0)
    ).then_rejected("player_mismatch")
    given(context).when(PlaceBet(TERMS, " ", "b-2", "red", 500, 20_000, T0)).then_rejected(
        "missing_player_id"
    )
    given(context).when(PlaceBet(TERMS, "p-7", "", "red", 500, 20_000, T0)).then_rejected("missing_bet_field")
    bad = msgspec.structs.replace(TERMS, commitment="nope")
    given(context).when(PlaceBet(bad, "p-7", "b-1", "red", 500, 20_000, T0)).then_rejected(
        "invalid_commitment"
    )


def test_bets_are_sent_to_the_stake_not_the_round() -> None:
    given(context, STARTED).when(bet()).then_rejected("not_a_stake")
    for command in (CancelBet("b-1", T0), RefuseBet("b-1", "x"), SettleStake("red", CLOSES), VoidStake("x")):
        given(context, STARTED).when(command).then_rejected("not_a_stake")
        given(context).when(command).then_rejected("unknown_stake")


@pytest.mark.parametrize("stake", [0, -500, -(2**63)])
def test_a_stake_must_be_a_positive_amount(stake: int) -> None:
    given(context).when(bet(stake=stake)).then_rejected("invalid_stake")


@pytest.mark.parametrize("stake", [float("nan"), float("inf"), -float("inf"), 12.5, 5e2, "500", True, 2**63])
def test_a_non_finite_or_non_integer_stake_is_refused_before_the_decider(stake: object) -> None:
    """Money is an integer of minor units: the command's schema (`long`) refuses anything else at
    the HTTP and CLI boundary, naming the field, before a decider could see it."""
    schema = json.loads(catalog_for(context).versions("PlaceBet")[-1].text)
    record = msgspec.to_builtins(bet())
    compile_validator(schema)(record)
    record["stake"] = stake
    with pytest.raises(JsonInvalid, match=r"^stake "):
        compile_validator(schema)(record)


def test_bets_only_within_limits_odds_and_exposure() -> None:
    given(context).when(bet(stake=99)).then_rejected("stake_out_of_limits")
    given(context).when(bet(stake=10_001)).then_rejected("stake_out_of_limits")
    given(context).when(PlaceBet(TERMS, "p-7", "b-1", "red", 500, 9_999, T0)).then_rejected("invalid_odds")
    history = (OPENED, placed("b-1", 10_000), placed("b-2", 9_000))
    given(context, *history).when(bet("b-3", 1_001)).then_rejected("exposure_exceeded")
    given(context, *history).when(bet("b-3", 1_000)).then(placed("b-3", 1_000))
    # cancelled bets no longer count
    given(context, *history, BetCancelled("r-1", "p-7", "b-2", 9_000)).when(bet("b-3", 5_000)).then(
        placed("b-3", 5_000)
    )
    given(context, OPENED, placed()).when(bet("b-1")).then_rejected("bet_already_placed")


def test_a_stake_holds_a_bounded_number_of_bets() -> None:
    history = [OPENED, *(placed(f"b-{i}", 100) for i in range(MAX_BETS))]
    assert TERMS.max_exposure >= 100 * (MAX_BETS + 1)  # the count, not the cap, refuses it
    given(context, *history).when(bet("b-x", 100)).then_rejected("too_many_bets")


def test_no_bet_after_closing_time_or_on_a_settled_or_voided_round() -> None:
    given(context).when(bet(at=CLOSES)).then(OPENED, placed(at=CLOSES))
    given(context).when(bet(at=CLOSES + 1)).then_rejected("betting_closed")
    settled = (
        OPENED,
        placed(),
        BetWon("r-1", "p-7", "b-1", 500, 1000, T0),
        StakeSettled("r-1", "p-7", "red"),
    )
    given(context, *settled).when(bet("b-2")).then_rejected("round_settled")
    voided = (OPENED, placed(), BetVoided("r-1", "p-7", "b-1", 500, "x"), StakeVoided("r-1", "p-7", "x"))
    given(context, *voided).when(bet("b-2")).then_rejected("round_voided")


def test_a_bet_is_cancelled_only_while_open_and_before_close() -> None:
    state = (
        given(context, OPENED, placed())
        .when(CancelBet("b-1", CLOSES))
        .then(BetCancelled("r-1", "p-7", "b-1", 500))
    )
    assert state.bet("b-1") == Bet("b-1", "red", 500, 20_000, T0 + 1_000, "cancelled") and state.exposure == 0
    given(context, OPENED, placed()).when(CancelBet("b-1", CLOSES + 1)).then_rejected("betting_closed")
    given(context, OPENED, placed()).when(CancelBet("b-9", T0)).then_rejected("unknown_bet")
    cancelled = (OPENED, placed(), BetCancelled("r-1", "p-7", "b-1", 500))
    given(context, *cancelled).when(CancelBet("b-1", T0)).then_rejected("bet_not_open")
    settled = (OPENED, placed(), BetLost("r-1", "p-7", "b-1", 500), StakeSettled("r-1", "p-7", "black"))
    given(context, *settled).when(CancelBet("b-1", T0)).then_rejected("round_settled")


def test_the_settlement_process_refuses_an_open_bet_once() -> None:
    given(context, OPENED, placed()).when(RefuseBet("b-1", "insufficient_funds")).then(
        BetRefused("r-1", "p-7", "b-1", 500, "insufficient_funds")
    )
    refused = (OPENED, placed(), BetRefused("r-1", "p-7", "b-1", 500, "x"))
    given(context, *refused).when(RefuseBet("b-1", "x")).then()
    given(context, OPENED, placed()).when(RefuseBet("b-9", "x")).then_rejected("unknown_bet")


def test_a_stake_settles_once_paying_winners_and_voiding_bets_after_the_cutoff() -> None:
    history = (
        OPENED,
        placed("b-1", 500, "red"),
        placed("b-2", 300, "black"),
        placed("b-3", 200, "red", at=T0 + 50_000),
        placed("b-4", 100, "red"),
        BetCancelled("r-1", "p-7", "b-4", 100),
    )
    state = (
        given(context, *history)
        .when(SettleStake("red", T0 + 40_000))
        .then(
            BetWon("r-1", "p-7", "b-1", 500, 1_000, T0 + 1_000),
            BetLost("r-1", "p-7", "b-2", 300),
            BetVoided("r-1", "p-7", "b-3", 200, "placed_after_close"),
            StakeSettled("r-1", "p-7", "red"),
        )
    )
    assert [b.status for b in state.bets] == ["won", "lost", "voided", "cancelled"]
    given(context, *history, StakeSettled("r-1", "p-7", "red")).when(
        SettleStake("red", CLOSES)
    ).then_rejected("round_settled")


def test_a_stake_is_voided_once() -> None:
    given(context, OPENED, placed()).when(VoidStake("round voided")).then(
        BetVoided("r-1", "p-7", "b-1", 500, "round voided"), StakeVoided("r-1", "p-7", "round voided")
    )
    voided = (OPENED, placed(), StakeVoided("r-1", "p-7", "x"))
    given(context, *voided).when(VoidStake("x")).then_rejected("round_voided")
    given(context, *voided).when(SettleStake("red", CLOSES)).then_rejected("round_voided")


def test_payouts_are_integer_minor_units_floored() -> None:
    assert payout(500, 20_000) == 1_000
    assert payout(333, 15_000) == 499
    assert payout(10**12, 100_000_000) == 10**16


# --- views ------------------------------------------------------------------------------------------


def _fold(view_name: str, log: list[tuple[str, object]]) -> dict[str, object]:
    view = next(v for v in context.views if v.name == view_name)
    versions: dict[str, int] = {}
    events = []
    for aggregate_id, event in log:
        versions[aggregate_id] = versions.get(aggregate_id, 0) + 1
        meta = EventMeta(aggregate_id, versions[aggregate_id], type(event).__name__, "2026-01-01T00:00:00Z")
        events.append((event, meta))
    return {k: d.state for k, d in fold_view(view, events).items() if d.state is not None}


LOG: list[tuple[str, object]] = [
    ("r-1", STARTED),
    ("r-1/p-7", OPENED),
    ("r-1/p-7", placed("b-1", 500, "red")),
    ("r-1/p-8", StakeOpened(TERMS, "p-8")),
    ("r-1/p-8", BetPlaced("r-1", "p-8", "b-2", "black", 300, 20_000, T0)),
    ("r-1/p-8", BetPlaced("r-1", "p-8", "b-3", "black", 100, 20_000, T0)),
    ("r-1/p-8", BetCancelled("r-1", "p-8", "b-3", 100)),
    ("r-1", CLOSED),
    ("r-1", RoundSettled("r-1", "red", REVEAL)),
    ("r-1/p-7", BetWon("r-1", "p-7", "b-1", 500, 1_000, T0 + 1_000)),
    ("r-1/p-7", StakeSettled("r-1", "p-7", "red")),
    ("r-1/p-8", BetLost("r-1", "p-8", "b-2", 300)),
    ("r-1/p-8", StakeSettled("r-1", "p-8", "red")),
]


def test_round_summary_gathers_the_round_and_its_stakes() -> None:
    doc = _fold("round-summary", LOG)["r-1"]
    assert doc == {
        "status": "settled", "table": "roulette-3", "min_stake": 100, "max_stake": 10_000,
        "max_exposure": 20_000, "closes_at": CLOSES, "odds_version": "odds-v1", "commitment": COMMITMENT,
        "closed_at": CLOSES, "outcome": "red", "reveal": REVEAL, "players": 2, "bets": 3, "open_bets": 0,
        "won": 1, "lost": 1, "staked": 800, "paid_out": 1_000,
    }  # fmt: skip


def test_player_bets_follow_each_players_bets() -> None:
    docs = _fold("player-bets", LOG)
    assert set(docs) == {"p-7", "p-8"}
    assert docs["p-7"]["bets"]["b-1"]["status"] == "won" and docs["p-7"]["bets"]["b-1"]["payout"] == 1_000
    assert {k: b["status"] for k, b in docs["p-8"]["bets"].items()} == {"b-2": "lost", "b-3": "cancelled"}
    assert docs["p-8"]["open"] == 0


def test_the_hourly_leaderboard_ranks_net_winnings_by_the_hour_bets_were_placed() -> None:
    docs = _fold("leaderboard-hourly", LOG)
    assert docs == {
        "2026-01-01T00": {"totals": {"p-7": 500}, "leaders": [{"player_id": "p-7", "net_winnings": 500}]}
    }


def test_the_games_context_is_conformant() -> None:
    assert_conformant(context, SAMPLES / "games")


def test_a_burst_on_one_round_spreads_over_every_partition() -> None:
    """The hot key: bets go to stake aggregates, one per (round, player), so the command
    partition of a bet depends on the player; only one player's bets share an aggregate."""
    partitions = 12
    used = Counter(partition_for(stake_id("r-hot", f"p-{i}").encode(), partitions) for i in range(1_000))
    assert len(used) == partitions and max(used.values()) < 2 * 1_000 / partitions
