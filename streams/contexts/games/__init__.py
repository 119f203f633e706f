"""Games: the seed's game rounds as a bounded context (plain data + pure functions).

A round (`StartGameRound`) fixes its terms: table, stake limits, per-player exposure cap,
closing time, odds version and the sha256 commitment of the RNG reveal that `SettleRound` must
publish. Bets are not decided by the round: a round is a hot key, so each player's bets on a
round are an aggregate of their own (`stake_id(round, player)`), decided against the copy of the
round's terms their first bet carried. The settlement process reconciles the two: it refuses
bets whose round is unknown or whose terms differ, and settles or voids every stake once the
round is settled or voided (docs/games.md).

Schema history: every type is at v1 (`schemas/games/*.v1.avsc`).
"""

from __future__ import annotations

from typing import Any

from streams.contexts.games.messages import (
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
    GameState,
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
    stake_id,
)
from streams.contexts.games.rules import decide, evolve, payout, reveal_matches
from streams.contexts.games.views import VIEWS
from streams.core.decider import BoundedContext

UPCASTERS: dict[tuple[str, int], Any] = {}

COMMANDS = (
    StartGameRound,
    CloseBetting,
    SettleRound,
    VoidRound,
    PlaceBet,
    CancelBet,
    RefuseBet,
    SettleStake,
    VoidStake,
)
EVENTS = (
    RoundStarted,
    BettingClosed,
    RoundSettled,
    RoundVoided,
    StakeOpened,
    BetPlaced,
    BetCancelled,
    BetRefused,
    BetWon,
    BetLost,
    BetVoided,
    StakeSettled,
    StakeVoided,
)

context: BoundedContext[GameState] = BoundedContext(
    name="games",
    aggregate_type="Game",
    commands=COMMANDS,
    events=EVENTS,
    state_type=GameState,
    initial_state=GameState(),
    decide=decide,
    evolve=evolve,
    views=VIEWS,
    upcasters=UPCASTERS,
)

__all__ = [
    "COMMANDS",
    "EVENTS",
    "Bet",
    "BetCancelled",
    "BetLost",
    "BetPlaced",
    "BetRefused",
    "BetVoided",
    "BetWon",
    "BettingClosed",
    "CancelBet",
    "CloseBetting",
    "GameState",
    "PlaceBet",
    "RefuseBet",
    "RoundSettled",
    "RoundStarted",
    "RoundTerms",
    "RoundVoided",
    "SettleRound",
    "SettleStake",
    "StakeOpened",
    "StakeSettled",
    "StakeVoided",
    "StartGameRound",
    "VoidRound",
    "VoidStake",
    "context",
    "payout",
    "reveal_matches",
    "stake_id",
]
