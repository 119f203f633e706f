"""The games part of `streams demo`: one round played end to end. Three players are funded, the
round starts with an RNG commitment, they bet (one bet more than its player holds, which the
settlement process refuses), betting closes, a reveal that does not match the commitment is
rejected, the right one settles the round, and the wallets are paid by the settlement process."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.cli.fleet_demo import get_json, wait_for
from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.games import (
    CloseBetting,
    PlaceBet,
    RoundTerms,
    SettleRound,
    StartGameRound,
    payout,
    stake_id,
)
from streams.contexts.wallet import DepositFunds, OpenWallet

FUNDS = {"alice": 1_000, "bob": 1_000, "carol": 50}
"""Each player's deposit, in cents."""
BETS = [("alice", "b-1", "red", 300), ("bob", "b-2", "black", 200), ("carol", "b-3", "red", 500)]
"""(player, bet id, selection, stake in cents): carol stakes more than she holds."""
ODDS_BP = 20_000
"""2.0: a winning stake is paid twice over."""
OUTCOME = "red"


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _balances(settings: Settings, players: dict[str, str]) -> dict[str, tuple[int, int]]:
    """(balance, reserved) per player, from the `wallet-balance` view ((-1, -1): no document yet)."""
    found = {}
    for name, player in players.items():
        doc = get_json(settings, f"/wallet/views/wallet-balance/{player}")
        state = (doc or {}).get("state") or {}
        found[name] = (state.get("balance", -1), state.get("reserved", -1))
    return found


def _expected() -> dict[str, int]:
    """What each wallet holds once the round is settled: funded bets lost, or won and paid."""
    after = dict(FUNDS)
    for player, _, selection, stake in BETS:
        if stake > FUNDS[player]:
            continue  # refused: nothing reserved, nothing paid
        after[player] += (payout(stake, ODDS_BP) if selection == OUTCOME else 0) - stake
    return after


def run_games_demo(settings: Settings, console: Console) -> int:
    """Play one round; the number of unexpected outcomes."""
    run = uuid.uuid4().hex[:6]
    round_id = f"round-{run}"
    players = {name: f"{name}-{run}" for name in FUNDS}
    failures = 0
    console.rule("games: a round, its bets and the settlement process")
    with CommandClient(settings, "wallet") as wallet, CommandClient(settings, "games") as games:
        for name, player in players.items():
            opened = wallet.execute(player, OpenWallet("EUR"), timeout=120)
            funded = wallet.execute(player, DepositFunds(f"deposit-{run}", FUNDS[name]), timeout=60)
            failures += not (opened.accepted and funded.accepted)
        before = wait_for(
            lambda: (b := _balances(settings, players)) == {n: (FUNDS[n], 0) for n in FUNDS} and b, 60
        )
        failures += not before
        console.print("funded: " + ", ".join(f"{name} {_money(FUNDS[name])}" for name in FUNDS) + " EUR")

        reveal = f"{run}:{secrets.token_hex(8)}:{OUTCOME}"
        commitment = hashlib.sha256(reveal.encode()).hexdigest()
        closes_at = int(time.time() * 1000) + 120_000
        terms = RoundTerms(round_id, "roulette-1", 100, 1_000, 2_000, closes_at, "odds-v1", commitment)
        started = games.execute(round_id, StartGameRound(terms), timeout=120)
        failures += not started.accepted
        console.print(
            f"{round_id} started on roulette-1, betting open 2 minutes; RNG commitment sha256(reveal) = "
            f"{commitment[:16]}… (the reveal stays secret until settlement)"
        )
        bets = Table(title="bets (games.command-results), at odds 2.0")
        for column in ("player", "bet", "selection", "stake", "result"):
            bets.add_column(column)
        for name, bet_id, selection, stake in BETS:
            command = PlaceBet(
                terms, players[name], bet_id, selection, stake, ODDS_BP, int(time.time() * 1000)
            )
            result = games.execute(stake_id(round_id, players[name]), command, timeout=60)
            failures += not result.accepted
            bets.add_row(
                name, bet_id, selection, _money(stake), result.status if result.accepted else result.reason
            )
        console.print(bets)

        def reservations() -> dict[str, Any] | None:
            body = get_json(settings, f"/processes/settlement/{round_id}")
            if body is None:
                return None
            wagers = body["state"]["bets"].values()
            return (
                body
                if all(w["funds"] in ("reserved", "rejected") for w in wagers) and len(wagers) == 3
                else None
            )

        held = wait_for(reservations, 60)
        failures += not held
        for wager in (held or {}).get("state", {}).get("bets", {}).values():
            name = wager["player_id"].rsplit("-", 1)[0]
            what = (
                "funds reserved"
                if wager["funds"] == "reserved"
                else f"funds {wager['funds']}: bet {wager['status']}"
            )
            console.print(f"  settlement process: {name} {wager['bet_id']} {_money(wager['stake'])} → {what}")

        closed = games.execute(round_id, CloseBetting(int(time.time() * 1000)), timeout=60)
        failures += not closed.accepted
        wrong = games.execute(round_id, SettleRound(OUTCOME, f"{run}:guessed:{OUTCOME}"), timeout=60)
        failures += wrong.reason != "reveal_mismatch"
        console.print(f"betting closed; a settlement with another reveal: {wrong.status} ({wrong.reason})")
        settled = games.execute(round_id, SettleRound(OUTCOME, reveal), timeout=60)
        failures += not settled.accepted
        matches = hashlib.sha256(reveal.encode()).hexdigest() == commitment
        console.print(f"settled: outcome {OUTCOME}, reveal {reveal!r}")
        proved = "[green]yes[/]" if matches and settled.accepted else "[red]no[/]"
        console.print(f"sha256(reveal) = commitment: {proved}")

    expected = _expected()
    after = wait_for(
        lambda: (b := _balances(settings, players)) == {n: (expected[n], 0) for n in FUNDS} and b, 90
    )
    failures += not after
    shown = after or _balances(settings, players)
    table = Table(title="the settlement: wallet balances (wallet.wallet-balance), EUR")
    for column in ("player", "before", "after", "change"):
        table.add_column(column)
    for name in FUNDS:
        was, now = (before or {}).get(name, (FUNDS[name], 0))[0], shown[name][0]
        table.add_row(name, _money(was), _money(now), f"{'+' if now >= was else ''}{_money(now - was)}")
    console.print(table)

    instance = get_json(settings, f"/processes/settlement/{round_id}") or {"sent": [], "deadlines": []}
    outcomes = Counter(f"{c['command_type']} {c['status'] or 'sent'}" for c in instance["sent"])
    pending = [d["name"] for d in instance["deadlines"] if d["status"] == "pending"]
    console.print(
        f"GET /processes/settlement/{round_id}: {len(instance['sent'])} commands sent ("
        + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
        + f"); pending deadlines: {', '.join(pending) or 'none'}"
    )
    console.print(f"every wallet as expected, each paid once: {'[green]yes[/]' if after else '[red]no[/]'}")
    return failures
