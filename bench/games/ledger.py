"""What the chaos run played, as the player itself recorded it, and what must follow from it.

The expectation of every bet is computed here from the bets and the outcomes alone (the payout
arithmetic is restated, not imported from the games context), so the checker compares the logs
with an independent account, not with the code under test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Set
from dataclasses import dataclass, field

BP = 10_000
"""Odds are basis points: 20,000 is 2.0."""
TIMED_OUT = "reservation_timeout"
"""The only reason a funded bet may legitimately be refused: its reservation was not confirmed
in time (the process manager was down for longer than the reservation deadline)."""

WON, LOST, VOIDED, CANCELLED, REFUSED = "won", "lost", "voided", "cancelled", "refused"


@dataclass(frozen=True)
class PlayedBet:
    """A bet the games context accepted (`BetPlaced`), and whether the player's cancel was accepted."""

    round_id: str
    player_id: str
    bet_id: str
    selection: str
    stake: int
    odds_bp: int
    cancelled: bool = False


@dataclass(frozen=True)
class PlayedRound:
    """A round and how it ended: `outcome` when settled, None when voided; `closed_by` is
    `deadline` (its close deadline closed betting) or `operator` (a CloseBetting before it)."""

    round_id: str
    outcome: str | None
    closed_by: str


@dataclass
class Ledger:
    """Everything the player did: deposits per player (a player without one is unfunded: every
    bet of theirs is refused), the rounds and the accepted bets."""

    deposits: dict[str, int] = field(default_factory=dict)
    unfunded: set[str] = field(default_factory=set)
    rounds: dict[str, PlayedRound] = field(default_factory=dict)
    bets: list[PlayedBet] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """What must happen to a bet: its final status, and what its wallet operations must be
    (`reserved`: a FundsReserved, `captured`, `credited` (the payout) and `released`)."""

    status: str
    payout: int = 0

    @property
    def captured(self) -> bool:
        return self.status in (WON, LOST)

    @property
    def released(self) -> bool:
        return self.status in (VOIDED, CANCELLED)


def bet_key(bet: PlayedBet) -> tuple[str, str]:
    """A bet's identity: (round, bet id); bet ids are unique per round in the run."""
    return bet.round_id, bet.bet_id


def expected(ledger: Ledger, bet: PlayedBet) -> Expected:
    """What must become of `bet`: refused when its player has no funds, cancelled when the cancel
    was accepted, voided with its round, else won (stake x odds, floored) or lost."""
    if bet.player_id in ledger.unfunded:
        return Expected(REFUSED)
    if bet.cancelled:
        return Expected(CANCELLED)
    outcome = ledger.rounds[bet.round_id].outcome
    if outcome is None:
        return Expected(VOIDED)
    if bet.selection == outcome:
        return Expected(WON, bet.stake * bet.odds_bp // BP)
    return Expected(LOST)


def expected_balances(ledger: Ledger, timed_out: Set[tuple[str, str]] = frozenset()) -> dict[str, int]:
    """Every player's balance at the end: deposits, less the stakes of settled bets, plus the
    payouts of winning ones. A bet in `timed_out` (refused `reservation_timeout`) moves nothing."""
    balances: dict[str, int] = defaultdict(int)
    for player in (*ledger.deposits, *ledger.unfunded):
        balances[player] += ledger.deposits.get(player, 0)
    for bet in ledger.bets:
        if bet_key(bet) in timed_out:
            continue
        want = expected(ledger, bet)
        if want.captured:
            balances[bet.player_id] += want.payout - bet.stake
    return dict(balances)
