"""The games context's read models (pure folds of its events).

`round-summary` gathers a round and every stake on it (keyed by round id); `player-bets` a
player's latest bets over rounds (keyed by player id); `leaderboard-hourly` the winnings per
player of the bets placed in each UTC hour (keyed by the hour).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.contexts.games.messages import (
    BetCancelled,
    BetLost,
    BetPlaced,
    BetRefused,
    BettingClosed,
    BetVoided,
    BetWon,
    RoundSettled,
    RoundStarted,
    RoundVoided,
    StakeOpened,
)
from streams.core.decider import Message
from streams.core.views import EventMeta, State, View

MAX_BETS_KEPT = 100
"""`player-bets` keeps a player's latest bets only."""
LEADERS_KEPT = 20
"""`leaderboard-hourly` ranks this many players (every player's total is kept to rank them)."""
HOUR_MS = 3_600_000

_SETTLED = {BetCancelled: "cancelled", BetRefused: "refused", BetLost: "lost", BetVoided: "voided"}


def round_of(event: Message, previous: str | None) -> str | None:
    """Every games event names its round (`RoundStarted` and `StakeOpened` in their terms)."""
    if isinstance(event, RoundStarted | StakeOpened):
        return event.terms.round_id
    return getattr(event, "round_id", previous)


def round_summary(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`round-summary`: the round's terms and status, its bets' count and totals, players, and
    (once settled) the outcome, the reveal and the payouts."""
    doc: dict[str, Any] = dict(state) if state is not None else _empty_round()
    match event:
        case RoundStarted(terms=t):
            doc.update(
                status="open", table=t.table, min_stake=t.min_stake, max_stake=t.max_stake,
                max_exposure=t.max_exposure, closes_at=t.closes_at, odds_version=t.odds_version,
                commitment=t.commitment,
            )  # fmt: skip
        case BettingClosed(closed_at=closed_at):
            doc.update(status="closed", closed_at=closed_at)
        case RoundSettled(outcome=outcome, reveal=reveal):
            doc.update(status="settled", outcome=outcome, reveal=reveal)
        case RoundVoided(reason=reason):
            doc.update(status="voided", void_reason=reason)
        case StakeOpened():
            doc["players"] = doc["players"] + 1
        case BetPlaced(stake=stake):
            doc.update(bets=doc["bets"] + 1, open_bets=doc["open_bets"] + 1, staked=doc["staked"] + stake)
        case BetWon(stake=stake, payout=payout):
            doc.update(open_bets=doc["open_bets"] - 1, won=doc["won"] + 1, paid_out=doc["paid_out"] + payout)
        case BetCancelled(stake=stake) | BetRefused(stake=stake) | BetVoided(stake=stake):
            doc.update(open_bets=doc["open_bets"] - 1, staked=doc["staked"] - stake)
        case BetLost():
            doc.update(open_bets=doc["open_bets"] - 1, lost=doc["lost"] + 1)
        case _:
            return state
    return doc


def _empty_round() -> dict[str, Any]:
    counts = dict.fromkeys(("players", "bets", "open_bets", "won", "lost", "staked", "paid_out"), 0)
    return {"status": "none", **counts}


def player_of(event: Message, previous: str | None) -> str | None:
    """`player-bets` is keyed by player; round events belong to no player."""
    return getattr(event, "player_id", previous)


def player_bets(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`player-bets`: a player's latest bets (round, selection, stake, odds, status, payout)."""
    bets: dict[str, dict[str, Any]] = dict((state or {}).get("bets", {}))
    match event:
        case BetPlaced():
            bets[event.bet_id] = {
                "round_id": event.round_id, "selection": event.selection, "stake": event.stake,
                "odds_bp": event.odds_bp, "placed_at": event.placed_at, "status": "open",
            }  # fmt: skip
            while len(bets) > MAX_BETS_KEPT:
                del bets[next(iter(bets))]  # the oldest (dicts keep insertion order)
        case BetWon(bet_id=bet_id, payout=payout) if bet_id in bets:
            bets[bet_id] = {**bets[bet_id], "status": "won", "payout": payout}
        case BetCancelled() | BetRefused() | BetLost() | BetVoided() if event.bet_id in bets:
            bets[event.bet_id] = {**bets[event.bet_id], "status": _SETTLED[type(event)]}
        case _:
            return state
    player = event.player_id
    return {"player_id": player, "bets": bets, "open": sum(b["status"] == "open" for b in bets.values())}


def hour_of(event: Message, previous: str | None) -> str | None:
    """`leaderboard-hourly` is keyed by the UTC hour a won bet was placed in."""
    if isinstance(event, BetWon):
        return datetime.fromtimestamp(event.placed_at // HOUR_MS * 3600, UTC).strftime("%Y-%m-%dT%H")
    return None


def leaderboard(state: State | None, event: Message, meta: EventMeta) -> State | None:
    """`leaderboard-hourly`: winnings (payout - stake) per player of the hour's bets and the top
    `LEADERS_KEPT`."""
    if not isinstance(event, BetWon):
        return state
    totals: dict[str, int] = dict((state or {}).get("totals", {}))
    totals[event.player_id] = totals.get(event.player_id, 0) + event.payout - event.stake
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:LEADERS_KEPT]
    return {"totals": totals, "leaders": [{"player_id": p, "net_winnings": n} for p, n in ranked]}


VIEWS = (
    View("round-summary", round_summary, key_by=round_of, list_fields=("status", "table")),
    View("player-bets", player_bets, key_by=player_of),
    View("leaderboard-hourly", leaderboard, key_by=hour_of, keep_on_move=True),
)
