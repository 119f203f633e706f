"""The games decider: rounds and stakes (one player's bets on one round).

Rules:
- a round starts once, with 0 < min_stake <= max_stake <= max_exposure <= `MAX_AMOUNT`, a table,
  an odds version, a positive closing time and a sha256 commitment (64 lowercase hex);
- bets only while the stake is open and at or before `closes_at`, within the limits, at odds of
  at least `MIN_ODDS_BP`, and with the player's open stakes on the round at most `max_exposure`;
  a stake's later bets must carry the terms its first bet pinned;
- cancel only an open bet, only at or before `closes_at`, only before settlement;
- betting closes once; a round settles once, only after betting closed, and only with a reveal
  whose sha256 is the commitment; a settled round cannot be voided, a voided one not settled;
- a stake settles or is voided once, by the settlement process (`SettleStake`, `VoidStake`).

Round commands sent to a stake (or the reverse) are rejected: the decider does not see the
aggregate id, so the client routes them (`messages.stake_id`).
"""

from __future__ import annotations

import hashlib

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
)
from streams.core.decider import Message, Rejected

MAX_AMOUNT = 10**12
"""The largest stake or exposure (minor units): sums stay far inside Avro's long."""
MAX_BETS = 100
"""Bets per stake (bounds the state)."""
MIN_ODDS_BP = 10_000
"""Odds below 1.0 would pay less than the stake back."""
MAX_ODDS_BP = 100_000_000
BP = 10_000
_HEX = frozenset("0123456789abcdef")


def payout(stake: int, odds_bp: int) -> int:
    """What a winning bet pays (stake included), floored to the minor unit."""
    return stake * odds_bp // BP


def reveal_matches(reveal: str, commitment: str) -> bool:
    """sha256 of the reveal's UTF-8 bytes, as lowercase hex, is the commitment."""
    return hashlib.sha256(reveal.encode()).hexdigest() == commitment


def _check_terms(terms: RoundTerms) -> None:
    for name in ("round_id", "table", "odds_version"):
        if not getattr(terms, name).strip():
            raise Rejected(f"missing_{name}", f"{name} must not be empty")
    if not 0 < terms.min_stake <= terms.max_stake <= terms.max_exposure <= MAX_AMOUNT:
        raise Rejected(
            "invalid_limits",
            f"need 0 < min_stake <= max_stake <= max_exposure <= {MAX_AMOUNT}, got "
            f"{terms.min_stake} / {terms.max_stake} / {terms.max_exposure}",
        )
    if terms.closes_at <= 0:
        raise Rejected("invalid_closes_at", f"closes_at must be a positive epoch ms, got {terms.closes_at}")
    if len(terms.commitment) != 64 or not set(terms.commitment) <= _HEX:
        raise Rejected("invalid_commitment", "the commitment must be a sha256 digest in 64 lowercase hex")


def _require_round(state: GameState) -> RoundTerms:
    if state.kind == "stake":
        raise Rejected("not_a_round", "this aggregate is a stake: send round commands to the round id")
    if state.kind == "":
        raise Rejected("unknown_round", "no round with this id has started")
    return state.terms


def _require_stake(state: GameState) -> RoundTerms:
    if state.kind == "round":
        raise Rejected("not_a_stake", "this aggregate is a round: send bets to stake_id(round, player)")
    if state.kind == "":
        raise Rejected("unknown_stake", "no bet was placed on this round by this player")
    return state.terms


def _require_stake_open(state: GameState) -> None:
    if state.status == "settled":
        raise Rejected("round_settled", "the round is settled")
    if state.status == "voided":
        raise Rejected("round_voided", "the round was voided")


def decide(state: GameState, command: Message) -> list[Message]:
    """The events a command causes, or `Rejected`."""
    match command:
        case StartGameRound(terms=terms):
            if state.kind == "stake":
                raise Rejected("not_a_round", "this aggregate is a stake")
            if state.status != "none":
                raise Rejected("round_already_started", f"the round is {state.status}")
            _check_terms(terms)
            return [RoundStarted(terms=terms)]
        case CloseBetting(closed_at=closed_at):
            terms = _require_round(state)
            if state.status != "open":
                raise Rejected("round_not_open", f"the round is {state.status}")
            if closed_at <= 0:
                raise Rejected("invalid_closed_at", f"closed_at must be a positive epoch ms, got {closed_at}")
            return [BettingClosed(round_id=terms.round_id, closed_at=min(closed_at, terms.closes_at))]
        case SettleRound(outcome=outcome, reveal=reveal):
            terms = _require_round(state)
            if state.status == "settled":
                raise Rejected("round_already_settled", f"the round settled as {state.outcome!r}")
            if state.status != "closed":
                raise Rejected("round_not_closed", f"the round is {state.status}: close betting first")
            if not outcome.strip():
                raise Rejected("missing_outcome", "outcome must not be empty")
            if not reveal_matches(reveal, terms.commitment):
                raise Rejected("reveal_mismatch", "sha256(reveal) is not the round's commitment")
            return [RoundSettled(round_id=terms.round_id, outcome=outcome, reveal=reveal)]
        case VoidRound(reason=reason):
            terms = _require_round(state)
            if state.status == "settled":
                raise Rejected("round_already_settled", "a settled round cannot be voided")
            if state.status == "voided":
                raise Rejected("round_already_voided", "the round was voided")
            return [RoundVoided(round_id=terms.round_id, reason=reason)]
        case PlaceBet():
            return _place(state, command)
        case CancelBet(bet_id=bet_id, cancelled_at=at):
            terms = _require_stake(state)
            _require_stake_open(state)
            bet = state.bet(bet_id)
            if bet is None:
                raise Rejected("unknown_bet", f"no bet {bet_id!r} on this stake")
            if bet.status != "open":
                raise Rejected("bet_not_open", f"the bet is {bet.status}")
            if at > terms.closes_at:
                raise Rejected("betting_closed", f"betting closed at {terms.closes_at}")
            return [BetCancelled(terms.round_id, state.player_id, bet_id, bet.stake)]
        case RefuseBet(bet_id=bet_id, reason=reason):
            terms = _require_stake(state)
            bet = state.bet(bet_id)
            if bet is None:
                raise Rejected("unknown_bet", f"no bet {bet_id!r} on this stake")
            if bet.status != "open":
                return []  # cancelled, settled or refused already: nothing left to refuse
            return [BetRefused(terms.round_id, state.player_id, bet_id, bet.stake, reason)]
        case SettleStake(outcome=outcome, cutoff=cutoff):
            terms = _require_stake(state)
            _require_stake_open(state)
            return [
                *_settled_bets(state, terms, outcome, cutoff),
                StakeSettled(terms.round_id, state.player_id, outcome),
            ]
        case VoidStake(reason=reason):
            terms = _require_stake(state)
            _require_stake_open(state)
            voided = [
                BetVoided(terms.round_id, state.player_id, b.bet_id, b.stake, reason)
                for b in state.bets
                if b.status == "open"
            ]
            return [*voided, StakeVoided(terms.round_id, state.player_id, reason)]
    raise Rejected("unknown_command", type(command).__name__)


def _place(state: GameState, command: PlaceBet) -> list[Message]:
    terms = command.terms
    if state.kind == "round":
        raise Rejected("not_a_stake", "this aggregate is a round: send bets to stake_id(round, player)")
    if state.kind == "stake" and state.terms != terms:
        raise Rejected("terms_mismatch", "the bet's terms are not the ones the stake's first bet carried")
    if state.player_id and state.player_id != command.player_id:
        raise Rejected("player_mismatch", f"this stake is {state.player_id!r}'s")
    _require_stake_open(state)
    if state.kind == "":
        _check_terms(terms)
        if not command.player_id.strip():
            raise Rejected("missing_player_id", "player_id must not be empty")
    if not command.bet_id.strip() or not command.selection.strip():
        raise Rejected("missing_bet_field", "bet_id and selection must not be empty")
    stake = command.stake
    if stake <= 0:
        raise Rejected("invalid_stake", f"the stake must be a positive integer of minor units, got {stake}")
    if not terms.min_stake <= stake <= terms.max_stake:
        raise Rejected(
            "stake_out_of_limits",
            f"the stake must be between {terms.min_stake} and {terms.max_stake}, got {stake}",
        )
    if not MIN_ODDS_BP <= command.odds_bp <= MAX_ODDS_BP:
        raise Rejected("invalid_odds", f"odds_bp must be {MIN_ODDS_BP}..{MAX_ODDS_BP}, got {command.odds_bp}")
    if command.placed_at > terms.closes_at:
        raise Rejected("betting_closed", f"betting closed at {terms.closes_at}")
    if state.bet(command.bet_id) is not None:
        raise Rejected("bet_already_placed", f"bet {command.bet_id!r} exists")
    if len(state.bets) >= MAX_BETS:
        raise Rejected("too_many_bets", f"a player places at most {MAX_BETS} bets on a round")
    if state.exposure + stake > terms.max_exposure:
        raise Rejected(
            "exposure_exceeded",
            f"open stakes {state.exposure} + {stake} exceed the round's cap of {terms.max_exposure}",
        )
    placed = BetPlaced(
        terms.round_id, command.player_id, command.bet_id, command.selection, stake, command.odds_bp,
        command.placed_at,
    )  # fmt: skip
    return [StakeOpened(terms=terms, player_id=command.player_id), placed] if state.kind == "" else [placed]


def _settled_bets(state: GameState, terms: RoundTerms, outcome: str, cutoff: int) -> list[Message]:
    events: list[Message] = []
    for b in state.bets:
        if b.status != "open":
            continue
        if b.placed_at > cutoff:
            events.append(BetVoided(terms.round_id, state.player_id, b.bet_id, b.stake, "placed_after_close"))
        elif b.selection == outcome:
            won = payout(b.stake, b.odds_bp)
            events.append(BetWon(terms.round_id, state.player_id, b.bet_id, b.stake, won, b.placed_at))
        else:
            events.append(BetLost(terms.round_id, state.player_id, b.bet_id, b.stake))
    return events


_BET_STATUS = {
    BetCancelled: "cancelled",
    BetRefused: "refused",
    BetWon: "won",
    BetLost: "lost",
    BetVoided: "voided",
}


def evolve(state: GameState, event: Message) -> GameState:
    """Fold one event into a round or a stake; unknown events leave it unchanged."""
    match event:
        case RoundStarted(terms=terms):
            return GameState("round", "open", terms)
        case BettingClosed(closed_at=closed_at):
            return GameState("round", "closed", state.terms, closed_at=closed_at)
        case RoundSettled(outcome=outcome):
            return GameState("round", "settled", state.terms, closed_at=state.closed_at, outcome=outcome)
        case RoundVoided():
            return GameState("round", "voided", state.terms, closed_at=state.closed_at)
        case StakeOpened(terms=terms, player_id=player_id):
            return GameState("stake", "open", terms, player_id)
        case BetPlaced():
            bet = Bet(event.bet_id, event.selection, event.stake, event.odds_bp, event.placed_at)
            return _with_bets(state, (*state.bets, bet))
        case BetCancelled() | BetRefused() | BetWon() | BetLost() | BetVoided():
            status = _BET_STATUS[type(event)]
            bets = tuple(
                Bet(b.bet_id, b.selection, b.stake, b.odds_bp, b.placed_at, status)
                if b.bet_id == event.bet_id
                else b
                for b in state.bets
            )
            return _with_bets(state, bets)
        case StakeSettled(outcome=outcome):
            return GameState(
                "stake", "settled", state.terms, state.player_id, outcome=outcome, bets=state.bets
            )
        case StakeVoided():
            return GameState("stake", "voided", state.terms, state.player_id, bets=state.bets)
    return state


def _with_bets(state: GameState, bets: tuple[Bet, ...]) -> GameState:
    return GameState(
        state.kind, state.status, state.terms, state.player_id, state.closed_at, state.outcome, bets
    )
