"""The round-settlement process, given/when/then: close at the deadline, reserve each bet, refuse
what the wallet rejects or does not confirm in time, release, settle or void every stake, pay once."""

from __future__ import annotations

import msgspec

from streams.contexts.games import (
    BetCancelled,
    BetLost,
    BetPlaced,
    BetRefused,
    BettingClosed,
    BetVoided,
    BetWon,
    CloseBetting,
    RefuseBet,
    RoundSettled,
    RoundStarted,
    RoundTerms,
    RoundVoided,
    SettleStake,
    StakeOpened,
    VoidStake,
    stake_id,
)
from streams.contexts.settlement import RESERVE_TIMEOUT_MS, STARTED_BY, TIMED_OUT, bet_key, process
from streams.contexts.wallet import CaptureStake, CreditWinnings, ReleaseReservation, ReserveFunds
from streams.core.processes import Send, advance, process_command_id
from streams.testing import ProcessScenario, given_process

R = "r-1"
T0 = 1_000_000
TERMS = RoundTerms(R, "roulette-1", 100, 5_000, 6_000, T0 + 60_000, "odds-v1", "0" * 64)
STARTED = RoundStarted(TERMS)
CLOSED = BettingClosed(R, T0 + 60_000)


def placed(player: str, bet: str, stake: int = 500) -> BetPlaced:
    return BetPlaced(R, player, bet, "17", stake, 360_000, T0)


def reserve_step(player: str, bet: str) -> str:
    return f"reserve.{bet_key(player, bet)}"


def step_of(action: str, player: str, bet: str) -> str:
    return f"{action}.{bet_key(player, bet)}"


def reserve(player: str, bet: str, stake: int = 500) -> Send:
    command = ReserveFunds(f"bet:{R}:{bet}", stake)
    return Send("wallet", player, command, step=reserve_step(player, bet))


def release(player: str, bet: str) -> Send:
    return Send("wallet", player, ReleaseReservation(f"bet:{R}:{bet}"), step=step_of("release", player, bet))


def refuse(player: str, bet: str, reason: str) -> Send:
    return Send("games", stake_id(R, player), RefuseBet(bet, reason), step=step_of("refuse", player, bet))


def capture(player: str, bet: str) -> Send:
    return Send("wallet", player, CaptureStake(f"bet:{R}:{bet}"), step=step_of("capture", player, bet))


def credit(player: str, bet: str, amount: int) -> Send:
    command = CreditWinnings(f"win:{R}:{bet}", amount)
    return Send("wallet", player, command, step=step_of("credit", player, bet))


def given(*history: object) -> ProcessScenario:
    return given_process(process, *history, correlation_id=R, at_ms=T0)


def reserved(*bets: tuple[str, str]) -> ProcessScenario:
    """A round with these bets placed and their funds reserved."""
    scenario = given(STARTED, *(placed(p, b) for p, b in bets))
    for player, bet in bets:
        scenario.when_outcome(reserve_step(player, bet))
    scenario.sent.clear()
    return scenario


# --- the round's close ---------------------------------------------------------------------------


def test_a_started_round_schedules_its_close_and_the_deadline_closes_betting() -> None:
    scenario = given().when(STARTED).then().then_scheduled(close=TERMS.closes_at)
    scenario.when_clock(TERMS.closes_at - 1).then()
    scenario.when_clock(TERMS.closes_at).then(Send("games", R, CloseBetting(TERMS.closes_at), step="close"))
    assert scenario.scheduled() == {}


def test_betting_closed_early_cancels_the_close_deadline() -> None:
    given(STARTED).when(BettingClosed(R, T0 + 5)).then_scheduled().when_clock(TERMS.closes_at).then()


# --- a bet's funds ---------------------------------------------------------------------------------


def test_a_placed_bet_reserves_its_stake_in_the_players_wallet_with_a_deadline() -> None:
    given(STARTED).when(placed("p-1", "b-1"), at_ms=T0 + 10).then(reserve("p-1", "b-1")).then_scheduled(
        close=TERMS.closes_at, **{reserve_step("p-1", "b-1"): T0 + 10 + RESERVE_TIMEOUT_MS}
    )


def test_a_confirmed_reservation_cancels_its_deadline() -> None:
    scenario = given(STARTED, placed("p-1", "b-1")).when_outcome(reserve_step("p-1", "b-1"))
    scenario.then().then_scheduled(close=TERMS.closes_at)
    assert scenario.state.bets[bet_key("p-1", "b-1")].funds == "reserved"


def test_a_rejected_reservation_refuses_the_bet_and_nothing_is_released() -> None:
    scenario = given(STARTED, placed("p-1", "b-1"))
    scenario.when_outcome(reserve_step("p-1", "b-1"), "rejected", "insufficient_funds")
    scenario.then(refuse("p-1", "b-1", "insufficient_funds")).then_scheduled(close=TERMS.closes_at)
    scenario.when(BetRefused(R, "p-1", "b-1", 500, "insufficient_funds"))
    scenario.then(refuse("p-1", "b-1", "insufficient_funds"))  # no release: nothing was held


def test_a_reservation_not_confirmed_in_time_refuses_the_bet_whose_refusal_releases_its_funds() -> None:
    scenario = given(STARTED, placed("p-1", "b-1"))
    scenario.when_clock(T0 + RESERVE_TIMEOUT_MS - 1).then()
    scenario.when_clock(T0 + RESERVE_TIMEOUT_MS).then(refuse("p-1", "b-1", TIMED_OUT))
    scenario.when(BetRefused(R, "p-1", "b-1", 500, TIMED_OUT))
    scenario.then(refuse("p-1", "b-1", TIMED_OUT), release("p-1", "b-1"))
    # the late answer sends nothing more
    scenario.when_outcome(reserve_step("p-1", "b-1"))
    scenario.then(refuse("p-1", "b-1", TIMED_OUT), release("p-1", "b-1"))


def test_a_timed_out_refusal_that_comes_after_the_bet_was_settled_does_not_keep_it_from_being_paid() -> None:
    # found by bench.games.chaos: the process manager's worker was down longer than the
    # deadline; the refusal reached a stake already settled (no effect) and the release sent with
    # it left the lost stake uncaptured and the winning bet unpaid
    for ended, paid in (
        (BetWon(R, "p-1", "b-1", 500, 18_000, T0), [capture("p-1", "b-1"), credit("p-1", "b-1", 18_000)]),
        (BetLost(R, "p-1", "b-1", 500), [capture("p-1", "b-1")]),
    ):
        scenario = given(STARTED, placed("p-1", "b-1"))
        scenario.when_clock(T0 + RESERVE_TIMEOUT_MS).then(refuse("p-1", "b-1", TIMED_OUT))
        scenario.when(ended).then(refuse("p-1", "b-1", TIMED_OUT))  # waits for the reservation
        scenario.when_outcome(reserve_step("p-1", "b-1")).then(refuse("p-1", "b-1", TIMED_OUT), *paid)


def test_a_timed_out_bet_cancelled_before_its_refusal_is_released_once() -> None:
    scenario = given(STARTED, placed("p-1", "b-1"))
    scenario.when_clock(T0 + RESERVE_TIMEOUT_MS).then(refuse("p-1", "b-1", TIMED_OUT))
    scenario.when(BetCancelled(R, "p-1", "b-1", 500))
    scenario.then(refuse("p-1", "b-1", TIMED_OUT), release("p-1", "b-1"))
    scenario.when_outcome(reserve_step("p-1", "b-1"))
    scenario.then(refuse("p-1", "b-1", TIMED_OUT), release("p-1", "b-1"))


def test_a_bet_seen_before_its_round_started_is_reserved_once_the_round_starts() -> None:
    scenario = given().when(StakeOpened(TERMS, "p-1")).when(placed("p-1", "b-1"))
    scenario.then().then_scheduled(**{STARTED_BY: T0 + RESERVE_TIMEOUT_MS})
    scenario.when(STARTED).then(reserve("p-1", "b-1"))
    assert set(scenario.scheduled()) == {"close", reserve_step("p-1", "b-1")}


def test_a_bet_whose_stake_pinned_other_terms_is_refused_and_nothing_reserved() -> None:
    forged = msgspec.structs.replace(TERMS, max_stake=1_000_000)
    scenario = given(STARTED).when(StakeOpened(forged, "p-1")).when(placed("p-1", "b-1"))
    scenario.then(refuse("p-1", "b-1", "terms_mismatch")).then_scheduled(close=TERMS.closes_at)
    scenario.when(BetRefused(R, "p-1", "b-1", 500, "terms_mismatch"))
    scenario.then(refuse("p-1", "b-1", "terms_mismatch"))  # no release


def test_bets_on_a_round_that_never_starts_are_refused_as_unknown_round() -> None:
    scenario = given(placed("p-1", "b-1"), placed("p-2", "b-2"))
    scenario.when_clock(T0 + RESERVE_TIMEOUT_MS).then(
        refuse("p-1", "b-1", "unknown_round"), refuse("p-2", "b-2", "unknown_round")
    )
    scenario.when(STARTED).then(  # a start after that reserves nothing for them
        refuse("p-1", "b-1", "unknown_round"), refuse("p-2", "b-2", "unknown_round")
    )


def test_a_cancelled_bet_releases_its_reservation() -> None:
    reserved(("p-1", "b-1")).when(BetCancelled(R, "p-1", "b-1", 500)).then(release("p-1", "b-1"))


def test_a_bet_cancelled_before_its_reservation_was_answered_releases_and_forgets_the_deadline() -> None:
    scenario = given(STARTED, placed("p-1", "b-1")).when(BetCancelled(R, "p-1", "b-1", 500))
    scenario.then(release("p-1", "b-1")).then_scheduled(close=TERMS.closes_at)
    scenario.when_outcome(reserve_step("p-1", "b-1")).then(release("p-1", "b-1"))


def test_refused_and_voided_bets_release_their_reservations() -> None:
    scenario = reserved(("p-1", "b-1"), ("p-2", "b-2"))
    scenario.when(BetRefused(R, "p-1", "b-1", 500, "terms_mismatch"))
    scenario.when(BetVoided(R, "p-2", "b-2", 500, "placed_after_close"))
    scenario.then(release("p-1", "b-1"), release("p-2", "b-2"))


# --- settlement -------------------------------------------------------------------------------------


def test_a_settled_round_settles_every_stake_at_the_cutoff() -> None:
    scenario = reserved(("p-1", "b-1"), ("p-1", "b-2"), ("p-2", "b-3")).when(CLOSED)
    scenario.when(RoundSettled(R, "17", "reveal")).then(
        Send("games", stake_id(R, "p-1"), SettleStake("17", CLOSED.closed_at), step="settle.p-1"),
        Send("games", stake_id(R, "p-2"), SettleStake("17", CLOSED.closed_at), step="settle.p-2"),
    )


def test_a_lost_bet_captures_its_stake_and_a_won_bet_captures_then_credits() -> None:
    scenario = reserved(("p-1", "b-1"), ("p-2", "b-2")).when(CLOSED).when(RoundSettled(R, "17", "x"))
    scenario.sent.clear()
    scenario.when(BetLost(R, "p-1", "b-1", 500)).when(BetWon(R, "p-2", "b-2", 500, 18_000, T0))
    scenario.then(capture("p-1", "b-1"), capture("p-2", "b-2"), credit("p-2", "b-2", 18_000))


def test_a_bet_settled_before_its_funds_were_confirmed_is_paid_once_they_are() -> None:
    scenario = given(STARTED, placed("p-1", "b-1"), placed("p-2", "b-2"))
    scenario.when(BetWon(R, "p-1", "b-1", 500, 18_000, T0)).when(BetLost(R, "p-2", "b-2", 500)).then()
    scenario.when_outcome(reserve_step("p-1", "b-1"))
    scenario.when_outcome(reserve_step("p-2", "b-2"), "rejected", "insufficient_funds")
    scenario.then(capture("p-1", "b-1"), credit("p-1", "b-1", 18_000))  # an unfunded bet is never paid


def test_a_voided_round_voids_every_stake_and_the_voided_bets_release_all() -> None:
    scenario = reserved(("p-1", "b-1"), ("p-2", "b-2"))
    scenario.when(RoundVoided(R, "table fault")).then(
        Send("games", stake_id(R, "p-1"), VoidStake("table fault"), step="void.p-1"),
        Send("games", stake_id(R, "p-2"), VoidStake("table fault"), step="void.p-2"),
    )
    scenario.sent.clear()
    scenario.when(BetVoided(R, "p-1", "b-1", 500, "table fault"))
    scenario.when(BetVoided(R, "p-2", "b-2", 500, "table fault"))
    scenario.then(release("p-1", "b-1"), release("p-2", "b-2"))


def test_a_round_voided_before_betting_closed_cancels_its_close_deadline() -> None:
    # found by bench.games.chaos: the deadline of a round voided while open stayed pending
    scenario = given(STARTED).when(RoundVoided(R, "table fault")).then_scheduled()
    scenario.when_clock(TERMS.closes_at).then()


def test_a_stake_first_seen_after_the_round_settled_is_reserved_and_settled_too() -> None:
    """Stake events reach the round's partition through a re-keying topic: they may lag behind it."""
    scenario = reserved(("p-1", "b-1")).when(CLOSED).when(RoundSettled(R, "17", "x"))
    scenario.sent.clear()
    scenario.when(placed("p-2", "b-2")).when(placed("p-2", "b-3"))
    settle = SettleStake("17", CLOSED.closed_at)
    scenario.then(
        reserve("p-2", "b-2"),
        Send("games", stake_id(R, "p-2"), settle, step="settle.p-2"),
        reserve("p-2", "b-3"),
    )


def test_a_round_settles_or_voids_once() -> None:
    scenario = reserved(("p-1", "b-1")).when(CLOSED).when(RoundSettled(R, "17", "x"))
    scenario.sent.clear()
    scenario.when(RoundSettled(R, "17", "x")).when(RoundVoided(R, "late")).then()


# --- replays ----------------------------------------------------------------------------------------


def test_a_replay_of_the_same_event_sends_the_same_command_ids() -> None:
    """What a crash before the commit does: the same input decided again from the same state."""
    before = reserved(("p-1", "b-1")).when(CLOSED).when(RoundSettled(R, "17", "x")).instance
    won = BetWon(R, "p-1", "b-1", 500, 18_000, T0)
    first = advance(process, before, won, T0)
    again = advance(process, before, won, T0)
    assert [c.command_id for c in first.commands] == [c.command_id for c in again.commands]
    assert [c.command for c in first.commands] == [c.command for c in again.commands]
    assert [c.command_id for c in first.commands] == [
        process_command_id(process.name, R, step_of("capture", "p-1", "b-1")),
        process_command_id(process.name, R, step_of("credit", "p-1", "b-1")),
    ]
    assert first.commands[1].command == CreditWinnings(f"win:{R}:b-1", 18_000)


def test_a_bet_placed_event_seen_twice_reserves_once() -> None:
    given(STARTED).when(placed("p-1", "b-1")).when(placed("p-1", "b-1")).then(reserve("p-1", "b-1"))


def test_ids_with_colons_make_valid_steps_and_the_state_round_trips_as_json() -> None:
    scenario = given(STARTED).when(placed("p:1", "b:1")).then(reserve("p:1", "b:1"))
    scenario.when_outcome(reserve_step("p:1", "b:1"))
    encoded = msgspec.json.encode(scenario.state)
    assert msgspec.json.decode(encoded, type=process.state_type) == scenario.state


def test_the_process_is_keyed_by_round_and_runs_with_games_and_wallet() -> None:
    [subscription] = process.subscriptions
    assert subscription.correlate(placed("p-1", "b-1"), None) == R  # type: ignore[arg-type]
    assert subscription.correlate(STARTED, None) == R  # type: ignore[arg-type]
    assert process.contexts == ("games", "wallet") and process.outcomes
