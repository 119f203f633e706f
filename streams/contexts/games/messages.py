"""The games context's messages: commands, events and state of rounds and stakes.

Two kinds of aggregate share the context (docs/games.md, "The hot key"):
- a **round** (aggregate id = the round id) holds the round's terms and lifecycle;
- a **stake** (aggregate id = `stake_id(round_id, player_id)`) holds one player's bets on one
  round, decided against the `RoundTerms` copy its first bet carried.

Money is integer minor units; odds are integer basis points (20000 = 2.0: a winning stake of
100 pays 200); times are epoch milliseconds. Every event names its round (and a stake's event
its player) so that views can key by them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

Id = Annotated[str, Meta(max_length=128)]
"""A round, player, bet or table id, an odds version or an outcome."""
Hash = Annotated[str, Meta(max_length=64)]
"""A sha256 digest as 64 lowercase hex characters."""
Reveal = Annotated[str, Meta(max_length=256)]
Text = Annotated[str, Meta(max_length=1024)]
"""A free-text reason."""


def stake_id(round_id: str, player_id: str) -> str:
    """The aggregate id of a player's bets on a round (the key PlaceBet and CancelBet go to)."""
    return f"{round_id}/{player_id}"


class RoundTerms(Struct, frozen=True):
    """What a round fixes at its start and every bet is decided against (copied into bets)."""

    round_id: Id
    table: Id
    min_stake: int
    max_stake: int
    max_exposure: int
    """The most one player may have staked (open bets) on the round."""
    closes_at: int
    """Betting closes at this time (epoch ms)."""
    odds_version: Id
    commitment: Hash
    """sha256 (hex) of the RNG reveal published at settlement."""


# --- round commands (aggregate id: the round id) ----------------------------------------------


class StartGameRound(Struct, frozen=True):
    """Open a round on a table with its limits, closing time, odds version and RNG commitment."""

    terms: RoundTerms


class CloseBetting(Struct, frozen=True):
    """Stop taking bets (sent at `closes_at` by the round's deadline, or earlier by the operator);
    the effective cut-off is the earlier of `closed_at` and `closes_at`."""

    closed_at: int


class SettleRound(Struct, frozen=True):
    """Publish the outcome and the RNG reveal; refused unless sha256(reveal) is the commitment."""

    outcome: Id
    reveal: Reveal


class VoidRound(Struct, frozen=True):
    """Cancel a round that is not settled: every bet is to be refunded."""

    reason: Text = ""


# --- stake commands (aggregate id: stake_id(round, player)) --------------------------------------


class PlaceBet(Struct, frozen=True):
    """A player bets `stake` on `selection` at `odds_bp`, at `placed_at` (the gateway's clock),
    under the round's terms (as `RoundStarted` published them)."""

    terms: RoundTerms
    player_id: Id
    bet_id: Id
    selection: Id
    stake: int
    odds_bp: int
    placed_at: int


class CancelBet(Struct, frozen=True):
    """The player withdraws an open bet before betting closes."""

    bet_id: Id
    cancelled_at: int


class RefuseBet(Struct, frozen=True):
    """A system command from the settlement process: an open bet is refused after the fact
    (its funds could not be reserved, its round is unknown or has other terms)."""

    bet_id: Id
    reason: Text


class SettleStake(Struct, frozen=True):
    """A system command from the settlement process: settle the player's open bets against the
    round's outcome; bets placed after `cutoff` (the round's close) are voided."""

    outcome: Id
    cutoff: int


class VoidStake(Struct, frozen=True):
    """A system command from the settlement process: void every open bet (round voided, or the
    stake's terms are not the round's)."""

    reason: Text


# --- round events -------------------------------------------------------------------------------


class RoundStarted(Struct, frozen=True):
    """A round opened with these terms."""

    terms: RoundTerms


class BettingClosed(Struct, frozen=True):
    """No bet placed after `closed_at` counts."""

    round_id: Id
    closed_at: int


class RoundSettled(Struct, frozen=True):
    """The round's outcome, with the reveal that proves it (sha256(reveal) = the commitment)."""

    round_id: Id
    outcome: Id
    reveal: Reveal


class RoundVoided(Struct, frozen=True):
    """The round was cancelled before settlement."""

    round_id: Id
    reason: Text


# --- stake events ------------------------------------------------------------------------------


class StakeOpened(Struct, frozen=True):
    """A player's first bet on a round pinned the round's terms for the stake."""

    terms: RoundTerms
    player_id: Id


class BetPlaced(Struct, frozen=True):
    """A bet was accepted against the stake's terms (funds are reserved by the settlement process)."""

    round_id: Id
    player_id: Id
    bet_id: Id
    selection: Id
    stake: int
    odds_bp: int
    placed_at: int


class BetCancelled(Struct, frozen=True):
    """The player withdrew the bet."""

    round_id: Id
    player_id: Id
    bet_id: Id
    stake: int


class BetRefused(Struct, frozen=True):
    """The settlement process refused the bet after the fact."""

    round_id: Id
    player_id: Id
    bet_id: Id
    stake: int
    reason: Text


class BetWon(Struct, frozen=True):
    """The bet's selection was the outcome: `payout` (stake x odds, floored) is due."""

    round_id: Id
    player_id: Id
    bet_id: Id
    stake: int
    payout: int
    placed_at: int


class BetLost(Struct, frozen=True):
    """The bet's selection was not the outcome: the stake is captured."""

    round_id: Id
    player_id: Id
    bet_id: Id
    stake: int


class BetVoided(Struct, frozen=True):
    """The bet does not count (placed after the close, round voided): the stake is released."""

    round_id: Id
    player_id: Id
    bet_id: Id
    stake: int
    reason: Text


class StakeSettled(Struct, frozen=True):
    """Every open bet of the stake was settled against `outcome`."""

    round_id: Id
    player_id: Id
    outcome: Id


class StakeVoided(Struct, frozen=True):
    """Every open bet of the stake was voided."""

    round_id: Id
    player_id: Id
    reason: Text


# --- state -------------------------------------------------------------------------------------


NO_TERMS = RoundTerms("", "", 0, 0, 0, 0, "", "")
"""The terms of an aggregate that has none yet."""


class Bet(Struct, frozen=True):
    """One bet of a stake; `status` is open, cancelled, refused, won, lost or voided."""

    bet_id: Id
    selection: Id
    stake: int
    odds_bp: int
    placed_at: int
    status: Id = "open"


class GameState(Struct, frozen=True):
    """A round or a stake as its events made it. `kind` is "" until the first event, then
    `round` or `stake`; `status` is none, then open, closed (rounds), settled or voided."""

    kind: Id = ""
    status: Id = "none"
    terms: RoundTerms = NO_TERMS
    player_id: Id = ""
    """A stake's player."""
    closed_at: int = 0
    """A closed round's cut-off."""
    outcome: Id = ""
    bets: tuple[Bet, ...] = ()
    """A stake's bets (at most `rules.MAX_BETS`)."""

    def bet(self, bet_id: str) -> Bet | None:
        """The stake's bet `bet_id`, if any."""
        for bet in self.bets:
            if bet.bet_id == bet_id:
                return bet
        return None

    @property
    def exposure(self) -> int:
        """The sum of the stake's open bets."""
        return sum(bet.stake for bet in self.bets if bet.status == "open")
