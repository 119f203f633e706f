"""The settlement process's state: what it knows of a round and its bets, and how each input
changes it (`evolve`), with the ids its commands and wallet operations derive from."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import msgspec

from streams.contexts.games import (
    BetCancelled,
    BetLost,
    BetPlaced,
    BetRefused,
    BettingClosed,
    BetVoided,
    BetWon,
    RoundSettled,
    RoundStarted,
    RoundTerms,
    RoundVoided,
    StakeOpened,
)
from streams.core.processes import CommandOutcome, DeadlineReached
from streams.core.records import Message

NAME = "settlement"
CLOSE = "close"
"""The deadline (and step) that closes betting at the round's `closes_at`."""
RESERVE_TIMEOUT_MS = 30_000
"""How long after a bet was placed its reservation must be confirmed, or the bet is refused."""
TIMED_OUT = "reservation_timeout"
"""The reason of a bet refused because its reservation was not confirmed in time."""
STARTED_BY = "round-start"
"""The deadline by which a round must have started once a bet on it was seen (`RESERVE_TIMEOUT_MS`
after that bet): its bets are then refused `unknown_round`."""


def reservation_id(round_id: str, bet_id: str) -> str:
    """The wallet reservation of a bet's stake."""
    return f"bet:{round_id}:{bet_id}"


def credit_id(round_id: str, bet_id: str) -> str:
    """The wallet credit of a winning bet's payout."""
    return f"win:{round_id}:{bet_id}"


def bet_key(player_id: str, bet_id: str) -> str:
    """A bet within its round (bet ids are unique per player): both ids escaped, so it holds no
    ':' and can be part of a step or deadline name."""
    return f"{quote(player_id, safe='')}/{quote(bet_id, safe='')}"


def step(action: str, key: str) -> str:
    """The step (and deadline) name of `action` on the bet or player `key`."""
    return f"{action}.{key}"


# --- state ------------------------------------------------------------------------------------


class Wager(msgspec.Struct, frozen=True):
    """A bet as the process follows it.

    `funds`: waiting (for the round's start, before anything is reserved), pending (reservation
    sent, no answer yet), reserved, rejected (nothing is held: the wallet said no, or the bet was
    refused before any reservation) or released.
    `status`: open, cancelled, refused, voided, won or lost (as games last said, or as this
    process decided for a refusal it sent)."""

    player_id: str
    bet_id: str
    stake: int
    funds: str = "pending"
    status: str = "open"
    payout: int = 0


class Settlement(msgspec.Struct, frozen=True):
    """A round as the process knows it. `status`: none, open, closed, settled or voided."""

    round_id: str = ""
    status: str = "none"
    terms: RoundTerms | None = None
    closed_at: int = 0
    outcome: str = ""
    """A settled round's outcome, or a voided round's reason."""
    players: tuple[str, ...] = ()
    """Every player who placed a bet on the round, first seen first."""
    bets: dict[str, Wager] = msgspec.field(default_factory=dict)
    """By `bet_key`."""
    stake_terms: dict[str, str] = msgspec.field(default_factory=dict)
    """Per player, the fingerprint of the terms their stake pinned (`StakeOpened`)."""


def fingerprint(terms: RoundTerms) -> str:
    """A short digest of a round's terms, to compare a stake's copy with the round's own."""
    return hashlib.sha256(msgspec.json.encode(terms)).hexdigest()[:32]


def admission(state: Settlement, player_id: str) -> str:
    """What a new bet of `player_id` gets: `reserve`, `wait` (the round has not started, as far
    as the process knows) or `terms_mismatch` (the stake pinned other terms than the round's)."""
    if state.terms is None:
        return "wait"
    pinned = state.stake_terms.get(player_id)
    return "terms_mismatch" if pinned is not None and pinned != fingerprint(state.terms) else "reserve"


def waiting(state: Settlement) -> list[tuple[str, Wager]]:
    """The open bets waiting for the round to start."""
    return [(k, w) for k, w in state.bets.items() if w.funds == "waiting" and w.status == "open"]


# --- what it remembers --------------------------------------------------------------------------


def _with(state: Settlement, key: str, wager: Wager) -> Settlement:
    return msgspec.structs.replace(state, bets={**state.bets, key: wager})


def _update(state: Settlement, player_id: str, bet_id: str, **changes: object) -> Settlement:
    key = bet_key(player_id, bet_id)
    wager = state.bets.get(key)
    return state if wager is None else _with(state, key, msgspec.structs.replace(wager, **changes))


def _outcome(state: Settlement, outcome: CommandOutcome) -> Settlement:
    action, _, key = outcome.step.partition(".")
    wager = state.bets.get(key)
    if action != "reserve" or wager is None or wager.funds != "pending":
        return state
    if outcome.status == "accepted":
        return _with(state, key, msgspec.structs.replace(wager, funds="reserved"))
    status = "refused" if wager.status == "open" else wager.status
    return _with(state, key, msgspec.structs.replace(wager, funds="rejected", status=status))


def _admitted(state: Settlement, key: str, wager: Wager) -> Settlement:
    verdict = admission(state, wager.player_id)
    if verdict == "reserve":
        return _with(state, key, msgspec.structs.replace(wager, funds="pending"))
    if verdict == "wait":
        return _with(state, key, msgspec.structs.replace(wager, funds="waiting"))
    return _with(state, key, msgspec.structs.replace(wager, funds="rejected", status="refused"))


def _deadline(state: Settlement, deadline: DeadlineReached) -> Settlement:
    if deadline.name == CLOSE:
        return state
    if deadline.name == STARTED_BY:
        if state.status != "none":
            return state
        for waiting_key, held in waiting(state):
            refused = msgspec.structs.replace(held, funds="rejected", status="refused")
            state = _with(state, waiting_key, refused)
        return state
    # a reservation deadline changes nothing here: the bet stays open with its funds pending
    # until games says how it ended (BetRefused, or how it was settled before the refusal came)
    return state


def evolve(state: Settlement, event: Message) -> Settlement:
    """Fold one input into the round's settlement."""
    match event:
        case RoundStarted(terms=terms) if state.status == "none":
            started = msgspec.structs.replace(state, round_id=terms.round_id, status="open", terms=terms)
            for waiting_key, held in waiting(state):
                started = _admitted(started, waiting_key, held)
            return started
        case StakeOpened(terms=terms, player_id=player):
            pinned = {**state.stake_terms, player: fingerprint(terms)}
            return msgspec.structs.replace(state, round_id=terms.round_id, stake_terms=pinned)
        case BettingClosed(round_id=round_id, closed_at=closed_at):
            return msgspec.structs.replace(state, round_id=round_id, status="closed", closed_at=closed_at)
        case RoundSettled(round_id=round_id) | RoundVoided(round_id=round_id):
            if state.status in ("settled", "voided"):
                return state
            if isinstance(event, RoundSettled):
                return msgspec.structs.replace(
                    state, round_id=round_id, status="settled", outcome=event.outcome
                )
            return msgspec.structs.replace(state, round_id=round_id, status="voided", outcome=event.reason)
        case BetPlaced(round_id=round_id, player_id=player, bet_id=bet, stake=stake):
            key = bet_key(player, bet)
            if key in state.bets:
                return state
            players = state.players if player in state.players else (*state.players, player)
            new = msgspec.structs.replace(state, round_id=round_id, players=players)
            return _admitted(new, key, Wager(player, bet, stake))
        case BetCancelled() | BetRefused() | BetVoided():
            status = (
                "cancelled"
                if isinstance(event, BetCancelled)
                else "refused"
                if isinstance(event, BetRefused)
                else "voided"
            )
            known = state.bets.get(bet_key(event.player_id, event.bet_id))
            holding = known is None or known.funds in ("pending", "reserved")
            funds = "released" if holding else "rejected"
            return _update(state, event.player_id, event.bet_id, status=status, funds=funds)
        case BetWon(payout=payout):
            return _update(state, event.player_id, event.bet_id, status="won", payout=payout)
        case BetLost():
            return _update(state, event.player_id, event.bet_id, status="lost")
        case CommandOutcome():
            return _outcome(state, event)
        case DeadlineReached():
            return _deadline(state, event)
    return state
