"""The settlement process in a real worker hosting games and wallet: funded players bet, a player
without funds has the bet refused, a cancelled bet is released, the round's close deadline fires
on the wall clock, and once the round is settled every bet is settled once and every wallet
holds exactly the expected payouts."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from streams.client import CommandClient
from streams.contexts.games import CancelBet, PlaceBet, RoundTerms, SettleRound, StartGameRound, stake_id
from streams.contexts.settlement import credit_id, process, reservation_id
from streams.contexts.wallet import DepositFunds, OpenWallet
from streams.core.commands import CommandResult
from streams.kafka.readers import read_partition
from streams.processes.inspect import as_json, committed_instance
from streams.wire.topics import ContextTopics, partition_for
from tests.integration.games.test_round_and_wallet import accepted, client_for, document
from tests.integration.workers import Deployment, module_deployment, wait_until

pytestmark = pytest.mark.integration

deployment = module_deployment("s", STREAMS_CONTEXTS="games,wallet", STREAMS_SINKS="0")

ROUND = "r-settle-1"
REVEAL = "seed-5e77:17"
ODDS = 360_000  # 36.0: a winning stake of 500 pays 18,000
FUNDS = {"p-a": 10_000, "p-b": 5_000, "p-c": 5_000, "p-poor": 50}


@pytest.fixture(scope="module")
def clients(deployment: Deployment) -> Iterator[tuple[CommandClient, CommandClient]]:
    games, wallet = client_for(deployment, "games"), client_for(deployment, "wallet")
    with games, wallet:
        yield games, wallet


def wallet_events(deployment: Deployment, wallet: CommandClient, player: str) -> list[Any]:
    """The committed events of a player's wallet."""
    settings = deployment.settings()
    topic = ContextTopics("wallet", settings.topic_prefix).events
    found = read_partition(settings, topic, partition_for(player.encode(), settings.partitions))
    return [wallet.runtime.codec.decode(m.value()).message for m in found if m.key() == player.encode()]


def test_a_round_is_settled_by_the_process_and_every_wallet_is_paid_once(
    deployment: Deployment, clients: tuple[CommandClient, CommandClient]
) -> None:
    games, wallet = clients
    for player, amount in FUNDS.items():
        accepted(wallet.execute(player, OpenWallet("EUR"), timeout=120))
        accepted(wallet.execute(player, DepositFunds(f"d-{player}", amount), timeout=60))
    now = int(time.time() * 1000)
    terms = RoundTerms(
        ROUND, "roulette-1", 100, 5_000, 6_000, now + 8_000, "odds-v1",
        hashlib.sha256(REVEAL.encode()).hexdigest(),
    )  # fmt: skip
    accepted(games.execute(ROUND, StartGameRound(terms), timeout=60))

    def bet(player: str, bet_id: str, selection: str, stake: int) -> CommandResult:
        command = PlaceBet(terms, player, bet_id, selection, stake, ODDS, int(time.time() * 1000))
        return accepted(games.execute(stake_id(ROUND, player), command, timeout=60))

    bet("p-a", "b-1", "17", 500)  # won: 18,000
    bet("p-a", "b-2", "red", 1_000)  # lost
    bet("p-b", "b-3", "17", 200)  # won: 7,200
    bet("p-c", "b-4", "black", 300)  # lost
    bet("p-c", "b-5", "17", 100)  # cancelled: released, never paid
    bet("p-poor", "b-6", "17", 500)  # more than the wallet holds: refused
    accepted(games.execute(stake_id(ROUND, "p-c"), CancelBet("b-5", int(time.time() * 1000))))
    assert time.time() * 1000 < terms.closes_at, "the bets took longer than the round was open"

    def statuses(player: str) -> dict[str, str]:
        doc = document(deployment, "games", "player-bets", player)
        return {k: b["status"] for k, b in doc["bets"].items()} if doc else {}

    wait_until(lambda: statuses("p-poor") == {"b-6": "refused"}, "the unfunded bet refused", timeout=60)

    def round_status() -> str:
        doc = document(deployment, "games", "round-summary", ROUND)
        return doc["status"] if doc else ""

    wait_until(lambda: round_status() == "closed", "the close deadline to close betting", timeout=60)
    accepted(games.execute(ROUND, SettleRound("17", REVEAL), timeout=60))

    expected = {"p-a": 10_000 - 1_500 + 18_000, "p-b": 5_000 - 200 + 7_200, "p-c": 5_000 - 300, "p-poor": 50}

    def balances() -> dict[str, tuple[int, int]] | None:
        docs = {p: document(deployment, "wallet", "wallet-balance", p) for p in FUNDS}
        got = {p: (d["balance"], d["reserved"]) if d else (-1, -1) for p, d in docs.items()}
        return got if got == {p: (b, 0) for p, b in expected.items()} else None

    wait_until(balances, f"every wallet to hold {expected}", timeout=90)

    assert statuses("p-a") == {"b-1": "won", "b-2": "lost"}
    assert statuses("p-b") == {"b-3": "won"}
    assert statuses("p-c") == {"b-4": "lost", "b-5": "cancelled"}
    summary = document(deployment, "games", "round-summary", ROUND)
    assert (summary["status"], summary["open_bets"], summary["won"], summary["lost"]) == ("settled", 0, 2, 2)

    # each operation once in the wallets' own logs: nothing reserved, captured or paid twice
    operations: Counter[tuple[str, str]] = Counter()
    for player in FUNDS:
        for event in wallet_events(deployment, wallet, player):
            op = getattr(event, "reservation_id", None) or getattr(event, "credit_id", None)
            if op:
                operations[(type(event).__name__, op)] += 1
    assert set(operations.values()) == {1}, operations
    assert operations[("WinningsCredited", credit_id(ROUND, "b-1"))] == 1
    assert operations[("StakeCaptured", reservation_id(ROUND, "b-2"))] == 1
    assert operations[("ReservationReleased", reservation_id(ROUND, "b-5"))] == 1
    assert ("FundsReserved", reservation_id(ROUND, "b-6")) not in operations

    committed = committed_instance(deployment.settings(), process.name, ROUND)
    assert committed is not None
    instance = as_json(committed)
    assert instance["state"]["status"] == "settled"
    assert instance["deadlines"] == []
