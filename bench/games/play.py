"""The chaos run's player: funds players, then plays rounds in waves through the public client,
writing down in a `Ledger` what the contexts accepted.

A wave starts `wave` rounds at once. Half of them are closed by their `close` deadline (the
settlement process sends CloseBetting at `closes_at`), half by the operator's CloseBetting; every
fifth is voided instead of settled. Each round takes `bets_per_round` bets from random players (a
few of them unfunded: their bets must be refused), a few bets are cancelled, then the round is
settled with its reveal (retried while its deadline has not closed betting yet) or voided.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from bench.games.ledger import Ledger, PlayedBet, PlayedRound
from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.games import (
    CancelBet,
    CloseBetting,
    PlaceBet,
    RoundTerms,
    SettleRound,
    StartGameRound,
    VoidRound,
    stake_id,
)
from streams.contexts.wallet import DepositFunds, OpenWallet
from streams.core.commands import CommandResult

log = logging.getLogger(__name__)

ODDS = {"red": 20_000, "black": 20_000, "17": 360_000, "0": 360_000}
"""The selections a bet picks from, with their odds (basis points); an outcome is one of them."""


@dataclass(frozen=True)
class PlayConfig:
    """The size of a run."""

    rounds: int = 50
    bets_per_round: int = 125
    wave: int = 10
    players: int = 60
    unfunded: int = 3
    deposit: int = 10_000_000
    close_after_s: float = 120.0
    """How long a round closed by its deadline stays open."""
    cancel_share: float = 0.04
    result_timeout_s: float = 300.0
    seed: int = 26


@dataclass
class PlayStats:
    """What the player saw besides the ledger."""

    rejected: Counter[str] = field(default_factory=Counter)
    """Rejection reasons of the player's own commands (bets, cancels, settlements)."""
    settle_retries: int = 0
    waves_s: list[float] = field(default_factory=list)


def now_ms() -> int:
    return int(time.time() * 1000)


def execute_all(
    client: CommandClient, commands: list[tuple[str, Any]], timeout: float
) -> list[CommandResult]:
    """Send every command at once, then wait for every result (TimeoutError past `timeout`)."""
    futures: list[Future[CommandResult]] = []
    for aggregate, command in commands:
        _, future = client.send(aggregate, command)
        assert future is not None
        futures.append(future)
    client.flush()
    deadline = time.monotonic() + timeout
    return [f.result(timeout=max(0.1, deadline - time.monotonic())) for f in futures]


class Player:
    """Plays a run against a deployment; `ledger` and `stats` hold what happened."""

    def __init__(self, settings: Settings, config: PlayConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.games = CommandClient(settings, "games")
        self.wallet = CommandClient(settings, "wallet")
        self.ledger = Ledger()
        self.stats = PlayStats()
        self.players = [f"p-{n:03d}" for n in range(config.players)]

    def close(self) -> None:
        self.games.close()
        self.wallet.close()

    def _require(self, results: list[CommandResult], what: str) -> None:
        refused = [(r.aggregate_id, r.reason) for r in results if not r.accepted]
        if refused:
            raise RuntimeError(f"{what} rejected: {refused[:3]}")

    def fund(self) -> None:
        """Open every wallet; deposit into all but the last `unfunded` players."""
        c, timeout = self.config, self.config.result_timeout_s
        self._require(
            execute_all(self.wallet, [(p, OpenWallet("EUR")) for p in self.players], timeout), "wallets"
        )
        funded = self.players[: len(self.players) - c.unfunded]
        deposits = [(p, DepositFunds(f"d-{p}", c.deposit)) for p in funded]
        self._require(execute_all(self.wallet, deposits, timeout), "deposits")
        self.ledger.deposits = {p: c.deposit for p in funded}
        self.ledger.unfunded = set(self.players[len(funded) :])

    def play(self) -> None:
        """Every wave, one after the other."""
        for first in range(0, self.config.rounds, self.config.wave):
            started = time.monotonic()
            self.wave(first, min(self.config.wave, self.config.rounds - first))
            self.stats.waves_s.append(round(time.monotonic() - started, 1))
            log.warning("wave of rounds %d.. played in %.0fs", first, self.stats.waves_s[-1])

    def wave(self, first: int, size: int) -> None:
        """Start `size` rounds, bet, cancel a few, close, then settle or void each."""
        c, timeout = self.config, self.config.result_timeout_s
        start = now_ms()
        rounds: list[tuple[RoundTerms, str, str, bool]] = []  # terms, reveal, outcome, by deadline
        for i in range(first, first + size):
            reveal = f"reveal-{i}-{self.rng.getrandbits(64):016x}"
            by_deadline = i % 2 == 0
            closes_at = start + int(c.close_after_s * 1000) if by_deadline else start + 3_600_000
            terms = RoundTerms(
                f"r-{i:03d}",
                f"table-{i % 7}",
                100,
                1_000,
                1_000_000,
                closes_at,
                "odds-v1",
                hashlib.sha256(reveal.encode()).hexdigest(),
            )
            rounds.append((terms, reveal, self.rng.choice(list(ODDS)), by_deadline))
        self._require(
            execute_all(self.games, [(t.round_id, StartGameRound(t)) for t, *_ in rounds], timeout), "rounds"
        )
        placed = self._bets([t for t, *_ in rounds])
        cancelled = self._cancels(placed)
        self.ledger.bets += [
            PlayedBet(
                b.terms.round_id,
                b.player_id,
                b.bet_id,
                b.selection,
                b.stake,
                b.odds_bp,
                b.bet_id in cancelled.get(b.terms.round_id, set()),
            )
            for b in placed
        ]
        voided = {t.round_id for i, (t, *_) in enumerate(rounds, first) if i % 5 == 4}
        operator = [
            (t.round_id, CloseBetting(now_ms()))
            for t, _, _, d in rounds
            if not d and t.round_id not in voided
        ]
        self._require(execute_all(self.games, operator, timeout), "CloseBetting")
        self._require(
            execute_all(self.games, [(r, VoidRound("chaos")) for r in sorted(voided)], timeout), "VoidRound"
        )
        to_settle = {t.round_id: SettleRound(o, r) for t, r, o, _ in rounds if t.round_id not in voided}
        self._settle(to_settle)
        for terms, _, outcome, by_deadline in rounds:
            voided_round = terms.round_id in voided
            self.ledger.rounds[terms.round_id] = PlayedRound(
                terms.round_id,
                None if voided_round else outcome,
                "voided" if voided_round else "deadline" if by_deadline else "operator",
            )

    def _bets(self, rounds: list[RoundTerms]) -> list[PlaceBet]:
        commands = []
        for terms in rounds:
            for n in range(self.config.bets_per_round):
                player = self.rng.choice(self.players)
                selection = self.rng.choice(list(ODDS))
                stake = self.rng.randrange(100, 1_001)
                bet = PlaceBet(terms, player, f"b{n:04d}", selection, stake, ODDS[selection], now_ms())
                commands.append((stake_id(terms.round_id, player), bet))
        results = execute_all(self.games, commands, self.config.result_timeout_s)
        placed = []
        for (_, bet), result in zip(commands, results, strict=True):
            if result.accepted:
                placed.append(bet)
            else:
                self.stats.rejected[f"PlaceBet:{result.reason}"] += 1
        return placed

    def _cancels(self, placed: list[PlaceBet]) -> dict[str, set[str]]:
        funded = [b for b in placed if b.player_id not in self.ledger.unfunded]
        chosen = self.rng.sample(funded, int(len(funded) * self.config.cancel_share))
        commands = [(stake_id(b.terms.round_id, b.player_id), CancelBet(b.bet_id, now_ms())) for b in chosen]
        cancelled: dict[str, set[str]] = {}
        for bet, result in zip(
            chosen, execute_all(self.games, commands, self.config.result_timeout_s), strict=True
        ):
            if result.accepted:
                cancelled.setdefault(bet.terms.round_id, set()).add(bet.bet_id)
            else:
                self.stats.rejected[f"CancelBet:{result.reason}"] += 1
        return cancelled

    def _settle(self, pending: dict[str, SettleRound]) -> None:
        """SettleRound each round, again each second while its betting is not closed yet."""
        deadline = time.monotonic() + self.config.result_timeout_s
        while pending:
            commands = sorted(pending.items())
            results = execute_all(self.games, commands, self.config.result_timeout_s)
            for (round_id, _), result in zip(commands, results, strict=True):
                if result.accepted:
                    del pending[round_id]
                elif result.reason != "round_not_closed":
                    raise RuntimeError(f"SettleRound {round_id} rejected: {result.reason}")
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rounds never closed: {sorted(pending)}")
                self.stats.settle_retries += len(pending)
                time.sleep(1.0)
