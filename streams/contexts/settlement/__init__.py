"""The round-settlement process: what spans games and wallet (plain data + pure functions).

One instance per round (the correlation id is the round id; stake events carry `round_id` and
are re-keyed to it by the process stage). It closes betting at `closes_at` with a deadline,
reserves every bet's stake in the player's wallet (refusing the bet when the wallet says no or
does not answer in time), releases the funds of cancelled, refused and voided bets, settles or
voids every stake once the round is settled or voided, and captures lost stakes and pays winning
bets. Reservation and credit ids derive from the round and the bet, and every command's id from
the step (docs/games.md, "What the settlement process does"), so a replay pays nothing twice.
"""

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
from streams.contexts.wallet import CaptureStake, CreditWinnings, ReleaseReservation, ReserveFunds
from streams.core.processes import (
    Action,
    Cancel,
    CommandOutcome,
    DeadlineReached,
    ProcessManager,
    Schedule,
    Send,
    Subscription,
)
from streams.core.records import Message
from streams.core.views import EventMeta

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


# --- the commands it sends ----------------------------------------------------------------------


def _refuse(round_id: str, key: str, wager: Wager, reason: str) -> Send:
    command = RefuseBet(wager.bet_id, reason)
    return Send("games", stake_id(round_id, wager.player_id), command, step=step("refuse", key))


def _release(round_id: str, key: str, wager: Wager) -> Send:
    command = ReleaseReservation(reservation_id(round_id, wager.bet_id))
    return Send("wallet", wager.player_id, command, step=step("release", key))


def _reserve(round_id: str, key: str, wager: Wager) -> list[Action]:
    command = ReserveFunds(reservation_id(round_id, wager.bet_id), wager.stake)
    return [
        Send("wallet", wager.player_id, command, step=step("reserve", key)),
        Schedule(step("reserve", key), after_ms=RESERVE_TIMEOUT_MS),
    ]


def _admit(state: Settlement, key: str, wager: Wager) -> list[Action]:
    """Reserve a bet's stake, or refuse the bet when its stake pinned other terms than the round's."""
    verdict = admission(state, wager.player_id)
    if verdict == "reserve":
        return _reserve(state.round_id, key, wager)
    return [_refuse(state.round_id, key, wager, verdict)] if verdict == "terms_mismatch" else []


def _waiting(state: Settlement) -> list[tuple[str, Wager]]:
    return [(k, w) for k, w in state.bets.items() if w.funds == "waiting" and w.status == "open"]


def _pay(round_id: str, key: str, wager: Wager) -> list[Action]:
    """Capture a settled bet's reserved stake, and credit its payout when it won."""
    capture = CaptureStake(reservation_id(round_id, wager.bet_id))
    sends: list[Action] = [Send("wallet", wager.player_id, capture, step=step("capture", key))]
    if wager.status == "won":
        credit = CreditWinnings(credit_id(round_id, wager.bet_id), wager.payout)
        sends.append(Send("wallet", wager.player_id, credit, step=step("credit", key)))
    return sends


def _on_outcome(state: Settlement, outcome: CommandOutcome) -> list[Action]:
    """A reservation's answer: cancel its deadline; refuse the open bet if it was rejected, pay a
    bet settled while its funds were still pending once they are reserved."""
    action, _, key = outcome.step.partition(".")
    wager = state.bets.get(key)
    if action != "reserve" or wager is None or wager.funds != "pending":
        return []
    actions: list[Action] = [Cancel(outcome.step)]
    if outcome.status == "rejected" and wager.status == "open":
        actions.append(_refuse(state.round_id, key, wager, outcome.reason or "reservation_rejected"))
    elif outcome.status == "accepted" and wager.status in ("won", "lost"):
        actions += _pay(state.round_id, key, wager)
    return actions


def _on_deadline(state: Settlement, deadline: DeadlineReached) -> list[Action]:
    if deadline.name == CLOSE:
        if state.status != "open" or state.terms is None:
            return []
        command = CloseBetting(closed_at=state.terms.closes_at)
        return [Send("games", deadline.correlation_id, command, step=CLOSE)]
    if deadline.name == STARTED_BY:
        if state.status != "none":
            return []
        return [_refuse(state.round_id, key, wager, "unknown_round") for key, wager in _waiting(state)]
    _, _, key = deadline.name.partition(".")
    wager = state.bets.get(key)
    if wager is None or wager.funds != "pending" or wager.status != "open":
        return []
    # not confirmed in time: refuse the bet, and free the funds in case they were reserved after
    # all (the release follows the reservation on the player's command partition)
    return [_refuse(state.round_id, key, wager, TIMED_OUT), _release(state.round_id, key, wager)]


def _to_stake(state: Settlement, player_id: str) -> Send:
    """Settle or void a player's stake, as the (settled or voided) round was."""
    stake, player = stake_id(state.round_id, player_id), quote(player_id, safe="")
    if state.status == "settled":
        cutoff = state.closed_at or (state.terms.closes_at if state.terms else 0)
        return Send("games", stake, SettleStake(state.outcome, cutoff), step=step("settle", player))
    return Send("games", stake, VoidStake(state.outcome or "round_voided"), step=step("void", player))


def _to_stakes(state: Settlement, event: RoundSettled | RoundVoided) -> list[Action]:
    if state.status in ("settled", "voided"):
        return []
    ended = evolve(state, event)
    return [_to_stake(ended, p) for p in state.players]


def decide(state: Settlement, event: Message) -> list[Action]:
    """The commands and deadlines one input causes (the state is before the input)."""
    match event:
        case RoundStarted(terms=terms) if state.status == "none":
            started = msgspec.structs.replace(state, round_id=terms.round_id, status="open", terms=terms)
            actions: list[Action] = [Schedule(CLOSE, at_ms=terms.closes_at), Cancel(STARTED_BY)]
            for key, wager in _waiting(state):
                actions += _admit(started, key, wager)
            return actions
        case BettingClosed():
            return [Cancel(CLOSE)]
        case BetPlaced(round_id=round_id, player_id=player, bet_id=bet, stake=stake):
            key = bet_key(player, bet)
            if key in state.bets:
                return []
            if admission(state, player) == "wait" and _waiting(state):
                return []  # the round-start deadline is already scheduled
            if admission(state, player) == "wait":
                return [Schedule(STARTED_BY, after_ms=RESERVE_TIMEOUT_MS)]
            actions = _admit(
                msgspec.structs.replace(state, round_id=round_id), key, Wager(player, bet, stake)
            )
            if state.status in ("settled", "voided") and player not in state.players:
                actions.append(_to_stake(state, player))  # a stake seen only after the round ended
            return actions
        case BetCancelled() | BetRefused() | BetVoided():
            key = bet_key(event.player_id, event.bet_id)
            wager = state.bets.get(key, Wager(event.player_id, event.bet_id, event.stake))
            if wager.funds not in ("pending", "reserved"):
                return []  # nothing is held
            return [Cancel(step("reserve", key)), _release(event.round_id, key, wager)]
        case BetLost() | BetWon():
            key = bet_key(event.player_id, event.bet_id)
            held = state.bets.get(key)
            if held is None or held.funds != "reserved":
                return []  # paid once its reservation is confirmed; never if it is rejected
            if isinstance(event, BetWon):
                settled = msgspec.structs.replace(held, status="won", payout=event.payout)
            else:
                settled = msgspec.structs.replace(held, status="lost")
            return _pay(event.round_id, key, settled)
        case RoundSettled() | RoundVoided():
            return _to_stakes(state, event)
        case CommandOutcome():
            return _on_outcome(state, event)
        case DeadlineReached():
            return _on_deadline(state, event)
    return []


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
        for waiting_key, waiting in _waiting(state):
            refused = msgspec.structs.replace(waiting, funds="rejected", status="refused")
            state = _with(state, waiting_key, refused)
        return state
    key = deadline.name.partition(".")[2]
    wager = state.bets.get(key)
    if wager is None or wager.funds != "pending" or wager.status != "open":
        return state
    return _with(state, key, msgspec.structs.replace(wager, funds="released", status="refused"))


def evolve(state: Settlement, event: Message) -> Settlement:
    """Fold one input into the round's settlement."""
    match event:
        case RoundStarted(terms=terms) if state.status == "none":
            started = msgspec.structs.replace(state, round_id=terms.round_id, status="open", terms=terms)
            for waiting_key, waiting in _waiting(state):
                started = _admitted(started, waiting_key, waiting)
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
            held = known is None or known.funds in ("pending", "reserved")
            funds = "released" if held else "rejected"
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


def _round_of(event: Message, _meta: EventMeta) -> str | None:
    if isinstance(event, RoundStarted | StakeOpened):
        return event.terms.round_id
    round_id = getattr(event, "round_id", None)
    return round_id if isinstance(round_id, str) else None


process: ProcessManager[Settlement] = ProcessManager(
    name=NAME,
    subscriptions=(
        Subscription(
            "games",
            (
                RoundStarted,
                BettingClosed,
                RoundSettled,
                RoundVoided,
                StakeOpened,
                BetPlaced,
                BetCancelled,
                BetRefused,
                BetVoided,
                BetWon,
                BetLost,
            ),
            _round_of,
        ),
    ),
    state_type=Settlement,
    initial_state=Settlement(),
    evolve=evolve,
    decide=decide,
    sends=("games", "wallet"),
    outcomes=True,
)
