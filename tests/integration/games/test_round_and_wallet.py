"""The games and wallet contexts on the real stack: one worker hosting both, commands over HTTP
and through the client, rejections with their reasons, and the read models.

The settlement process (bet -> reserve, round settled -> settle stakes -> credit or capture) is
played here by the test itself, with the commands that process sends: the worker runs no process
(`STREAMS_PROCESSES=0`); tests/integration/games/test_settlement.py runs the real one."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from streams.client import CommandClient
from streams.contexts.games import (
    CloseBetting,
    PlaceBet,
    RoundTerms,
    SettleRound,
    SettleStake,
    StartGameRound,
    stake_id,
)
from streams.contexts.wallet import CaptureStake, CreditWinnings, DepositFunds, ReserveFunds
from streams.core.commands import CommandResult
from tests.integration.workers import Deployment, json_answer, module_deployment, wait_until

pytestmark = pytest.mark.integration

deployment = module_deployment("g", STREAMS_CONTEXTS="games,wallet", STREAMS_SINKS="0", STREAMS_PROCESSES="0")

REVEAL = "seed-91c2:17"
NOW = int(time.time() * 1000)
TERMS = RoundTerms(
    "r-int-1", "roulette-1", 100, 5_000, 6_000, NOW + 3_600_000, "odds-v1",
    hashlib.sha256(REVEAL.encode()).hexdigest(),
)  # fmt: skip


def client_for(dep: Deployment, context: str, timeout: float = 30.0) -> CommandClient:
    """A client of `context`, once one connects: topics a worker has just created may still be
    electing leaders (the last failure is named when none connects within `timeout`)."""
    failures: list[Exception] = []

    def connect() -> CommandClient | None:
        try:
            return CommandClient(dep.settings(), context)
        except Exception as exc:
            failures.append(exc)
            return None

    try:
        client: CommandClient = wait_until(connect, f"a {context} client", timeout, every=2.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {failures[-1]!r}" if failures else str(exc)) from None
    return client


@pytest.fixture(scope="module")
def clients(deployment: Deployment) -> Iterator[tuple[CommandClient, CommandClient]]:
    games, wallet = client_for(deployment, "games"), client_for(deployment, "wallet")
    with games, wallet:
        yield games, wallet


def post(dep: Deployment, context: str, command: str, aggregate_id: str, data: Any) -> tuple[int, Any]:
    body = json.dumps({"aggregate_id": aggregate_id, "data": msgspec.to_builtins(data)}).encode()
    request = urllib.request.Request(
        f"{dep.url()}/{context}/commands/{command}?timeout=60",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    return json_answer(request, timeout=90)


def document(dep: Deployment, context: str, view: str, key: str) -> Any:
    status, body = json_answer(f"{dep.url()}/{context}/views/{view}/{key}")
    return body.get("state") if status == 200 else None


def accepted(result: CommandResult) -> CommandResult:
    assert result.accepted, f"{result.command_type} rejected: {result.reason}: {result.detail}"
    return result


def test_a_wallet_reserves_captures_and_credits_and_never_goes_negative(
    deployment: Deployment, clients: tuple[CommandClient, CommandClient]
) -> None:
    _, wallet = clients
    status, body = post(deployment, "wallet", "OpenWallet", "p-w1", {"currency": "EUR"})
    assert status == 200 and body["status"] == "accepted", body
    accepted(wallet.execute("p-w1", DepositFunds("d-1", 1_000), timeout=120))
    accepted(wallet.execute("p-w1", ReserveFunds("bet:b-1", 600)))
    again = accepted(wallet.execute("p-w1", ReserveFunds("bet:b-1", 600)))
    assert again.event_types == ()  # the reservation id is idempotent
    short = wallet.execute("p-w1", ReserveFunds("bet:b-2", 401))
    assert (short.status, short.reason) == ("rejected", "insufficient_funds")
    accepted(wallet.execute("p-w1", CaptureStake("bet:b-1")))
    credit = accepted(wallet.execute("p-w1", CreditWinnings("win:b-1", 1_200)))

    unknown = wallet.execute("p-nobody", ReserveFunds("bet:x", 1))
    assert (unknown.status, unknown.reason) == ("rejected", "unknown_player")
    status, body = post(deployment, "wallet", "CreditWinnings", "p-nobody", {"credit_id": "c", "amount": 5})
    assert status == 422 and body["reason"] == "unknown_player", body

    expected = {"currency": "EUR", "balance": 1_600, "reserved": 0, "available": 1_600}
    doc = wait_until(
        lambda: (
            (d := document(deployment, "wallet", "wallet-balance", "p-w1"))
            and d["version"] >= credit.aggregate_version
            and d
        ),
        "the wallet-balance document",
    )
    assert {k: doc[k] for k in expected} == expected


def test_a_round_takes_bets_closes_and_settles_only_with_the_committed_reveal(
    deployment: Deployment, clients: tuple[CommandClient, CommandClient]
) -> None:
    games, _ = clients
    status, body = post(deployment, "games", "StartGameRound", "r-int-1", StartGameRound(TERMS))
    assert status == 200 and body["event_types"] == ["RoundStarted"], body

    def bet(player: str, bet_id: str, selection: str, stake: int, at: int = NOW) -> CommandResult:
        command = PlaceBet(TERMS, player, bet_id, selection, stake, 360_000, at)
        return games.execute(stake_id("r-int-1", player), command, timeout=60)

    assert accepted(bet("p-1", "b-1", "17", 500)).event_types == ("StakeOpened", "BetPlaced")
    accepted(bet("p-1", "b-2", "red", 1_000))
    accepted(bet("p-2", "b-3", "black", 2_000))
    assert bet("p-2", "b-4", "red", -5).reason == "invalid_stake"
    assert bet("p-2", "b-4", "red", 5_001).reason == "stake_out_of_limits"
    assert bet("p-2", "b-4", "red", 100, at=TERMS.closes_at + 1).reason == "betting_closed"
    assert bet("p-1", "b-4", "red", 5_000).reason == "exposure_exceeded"
    record = msgspec.to_builtins(PlaceBet(TERMS, "p-2", "b-5", "red", 100, 360_000, NOW))
    status, body = post(
        deployment, "games", "PlaceBet", stake_id("r-int-1", "p-2"), {**record, "stake": 12.5}
    )
    assert status == 400 and body["reason"] == "invalid_field" and "stake" in body["detail"], body

    assert games.execute("r-nowhere", CloseBetting(NOW)).reason == "unknown_round"
    assert games.execute("r-int-1", SettleRound("17", REVEAL)).reason == "round_not_closed"
    accepted(games.execute("r-int-1", CloseBetting(NOW + 1)))
    wrong = games.execute("r-int-1", SettleRound("17", "seed-91c2:18"))
    assert (wrong.status, wrong.reason) == ("rejected", "reveal_mismatch")
    accepted(games.execute("r-int-1", SettleRound("17", REVEAL)))
    assert games.execute("r-int-1", SettleRound("17", REVEAL)).reason == "round_already_settled"

    # what the settlement process will send to every stake of the round
    won = accepted(games.execute(stake_id("r-int-1", "p-1"), SettleStake("17", NOW + 1)))
    assert won.event_types == ("BetWon", "BetLost", "StakeSettled")
    accepted(games.execute(stake_id("r-int-1", "p-2"), SettleStake("17", NOW + 1)))
    assert (
        games.execute(
            stake_id("r-int-1", "p-2"), PlaceBet(TERMS, "p-2", "b-6", "red", 100, 360_000, NOW)
        ).reason
        == "round_settled"
    )

    def summary() -> Any:
        doc = document(deployment, "games", "round-summary", "r-int-1")
        return doc if doc and doc["status"] == "settled" and doc["open_bets"] == 0 else None

    doc = wait_until(summary, "the settled round-summary")
    assert (doc["players"], doc["bets"], doc["won"], doc["lost"]) == (2, 3, 1, 2)
    assert (doc["staked"], doc["paid_out"], doc["reveal"]) == (3_500, 18_000, REVEAL)
    bets = wait_until(
        lambda: (d := document(deployment, "games", "player-bets", "p-1")) and d["open"] == 0 and d,
        "p-1's settled bets",
    )
    assert {k: b["status"] for k, b in bets["bets"].items()} == {"b-1": "won", "b-2": "lost"}
