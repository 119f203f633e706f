"""The games chaos checker's pure parts: what a ledger expects, and the verdict on logs that
agree with it or do not (paid twice, never settled, released instead of captured, applied twice,
a deadline fired twice or left pending)."""

from __future__ import annotations

from collections import Counter

from bench.games.judge import Applied, Observed, Scheduled, judge
from bench.games.ledger import Ledger, PlayedBet, PlayedRound, expected, expected_balances

R = "r-1"


def ledger() -> Ledger:
    """One settled round (outcome 17) and one voided: a won, a lost, a cancelled, a voided bet and
    an unfunded player's bet."""
    return Ledger(
        deposits={"p-a": 10_000, "p-b": 10_000},
        unfunded={"p-poor"},
        rounds={R: PlayedRound(R, "17", "deadline"), "r-2": PlayedRound("r-2", None, "voided")},
        bets=[
            PlayedBet(R, "p-a", "b-1", "17", 500, 360_000),  # won 18,000
            PlayedBet(R, "p-a", "b-2", "red", 300, 20_000),  # lost
            PlayedBet(R, "p-b", "b-3", "black", 200, 20_000, cancelled=True),
            PlayedBet("r-2", "p-b", "b-4", "17", 100, 360_000),  # voided
            PlayedBet(R, "p-poor", "b-5", "17", 100, 360_000),  # refused
        ],
    )


def observed(book: Ledger) -> Observed:
    """The logs of a run that went exactly as `book` says."""
    seen = Observed()
    kinds = {"won": "BetWon", "lost": "BetLost", "voided": "BetVoided", "cancelled": "BetCancelled"}
    for n, bet in enumerate(book.bets):
        want = expected(book, bet)
        seen.placed[(bet.round_id, bet.bet_id)] += 1
        seen.terminal[(bet.round_id, bet.bet_id)].append(
            ("BetRefused", "insufficient_funds") if want.status == "refused" else (kinds[want.status], "")
        )
        seen.applied.append(Applied("games", f"c-{n}", f"stake-{n}", 1))
        rid = f"bet:{bet.round_id}:{bet.bet_id}"
        if want.status == "refused":
            continue
        seen.wallet_ops[("FundsReserved", rid)] += 1
        seen.wallet_ops[("StakeCaptured" if want.captured else "ReservationReleased", rid)] += 1
        if want.status == "won":
            seen.wallet_ops[("WinningsCredited", f"win:{bet.round_id}:{bet.bet_id}")] += 1
            seen.credited[f"win:{bet.round_id}:{bet.bet_id}"] = want.payout
    seen.results = Counter(("games", a.command_id) for a in seen.applied)
    for r in book.rounds.values():
        seen.round_events[(r.round_id, "RoundStarted")] += 1
        seen.round_events[(r.round_id, "RoundSettled" if r.outcome else "RoundVoided")] += 1
        seen.round_events[(r.round_id, "BettingClosed")] += 1 if r.outcome else 0
    balances = expected_balances(book)
    seen.folded = {p: (b, 0) for p, b in balances.items()}
    seen.viewed = dict(seen.folded)
    seen.deadlines = {"d-close": Scheduled(R, "close", "d-close", "pending")}
    seen.fired = Counter({"d-close": 1})
    seen.fired_names = {"d-close": (R, "close")}
    return seen


def test_a_ledger_expects_payouts_from_the_bets_and_outcomes_alone() -> None:
    book = ledger()
    assert [expected(book, b).status for b in book.bets] == ["won", "lost", "cancelled", "voided", "refused"]
    assert expected(book, book.bets[0]).payout == 18_000
    assert expected_balances(book) == {"p-a": 10_000 - 800 + 18_000, "p-b": 10_000, "p-poor": 0}
    # a bet refused because its reservation timed out moves nothing
    assert expected_balances(book, {(R, "b-1")})["p-a"] == 10_000 - 300


def test_a_run_that_went_as_the_ledger_says_passes() -> None:
    verdict = judge(ledger(), observed(ledger()))
    assert verdict.passed, verdict.problems
    counts = verdict.counts
    assert (counts["bets"], counts["bets_won"], counts["deadlines_fired"]) == (5, 1, 1)


def test_a_bet_paid_twice_or_released_instead_of_captured_is_a_problem() -> None:
    seen = observed(ledger())
    seen.wallet_ops[("WinningsCredited", f"win:{R}:b-1")] += 1  # paid twice
    seen.wallet_ops[("StakeCaptured", f"bet:{R}:b-2")] -= 1  # the bug the first run found
    seen.wallet_ops[("ReservationReleased", f"bet:{R}:b-2")] += 1
    text = "\n".join(judge(ledger(), seen).problems)
    assert "2 bets whose wallet operations are not exactly one settlement" in text


def test_a_bet_never_settled_settled_twice_or_otherwise_is_a_problem() -> None:
    seen = observed(ledger())
    del seen.terminal[(R, "b-1")]
    seen.terminal[(R, "b-2")].append(("BetWon", ""))
    seen.terminal[("r-2", "b-4")] = [("BetLost", "")]
    text = "\n".join(judge(ledger(), seen).problems)
    assert "bets never settled" in text and "bets settled more than once" in text
    assert "otherwise than their outcome says" in text


def test_a_reservation_timeout_is_a_refusal_that_releases_what_it_held() -> None:
    book, seen = ledger(), observed(ledger())
    seen.terminal[(R, "b-1")] = [("BetRefused", "reservation_timeout")]
    seen.wallet_ops[("StakeCaptured", f"bet:{R}:b-1")] = 0
    seen.wallet_ops[("WinningsCredited", f"win:{R}:b-1")] = 0
    seen.wallet_ops[("ReservationReleased", f"bet:{R}:b-1")] = 1
    seen.folded["p-a"] = seen.viewed["p-a"] = (10_000 - 300, 0)
    verdict = judge(book, seen)
    assert verdict.passed, verdict.problems
    assert verdict.timed_out == [f"{R}/b-1"]


def test_wallets_off_the_expected_balance_or_the_view_or_still_reserved_are_problems() -> None:
    seen = observed(ledger())
    seen.folded["p-a"] = (1, 0)
    seen.folded["p-b"] = (10_000, 100)
    text = "\n".join(judge(ledger(), seen).problems)
    assert "not the expected one" in text and "funds still reserved" in text
    assert "view is not the fold" in text


def test_a_command_applied_twice_or_answered_twice_is_a_problem() -> None:
    seen = observed(ledger())
    seen.applied.append(Applied("games", "c-0", "stake-0", 3))  # the same command's event again
    seen.results[("games", "c-1")] += 1
    text = "\n".join(judge(ledger(), seen).problems)
    assert "appended twice" in text and "not 1..n" in text and "more than one result" in text


def test_a_deadline_fired_twice_left_pending_or_never_fired_is_a_problem() -> None:
    seen = observed(ledger())
    seen.fired["d-close"] = 2
    seen.read_at_ms = 1_000
    seen.final = [
        Scheduled(R, "reserve.p-a/b-9", "d-9", "pending", 1_000),
        Scheduled(R, "close", "d-8", "pending", 5_000),
    ]
    text = "\n".join(judge(ledger(), seen).problems)
    assert "fired more than once" in text and "1 deadlines past due still pending or emitted" in text
    assert "did not fire exactly once" in text
    seen.fired.clear()
    assert "did not fire exactly once" in "\n".join(judge(ledger(), seen).problems)
