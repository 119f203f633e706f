"""`GET /processes/{process}/{correlation_id}` on a worker with a bearer token: a round with bets
is played, and the settlement instance is read over HTTP while betting is open (the `close`
deadline pending, each reservation with its outcome) and once the round is settled (every
capture and credit sent and accepted, no deadline left), the same JSON as `streams process`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from streams.client import CommandClient
from streams.contexts.games import PlaceBet, RoundTerms, SettleRound, StartGameRound, stake_id
from streams.contexts.settlement import process
from streams.contexts.wallet import DepositFunds, OpenWallet
from streams.processes.inspect import as_json, committed_instance
from tests.integration.games.test_round_and_wallet import accepted, client_for
from tests.integration.workers import Deployment, module_deployment, wait_until

pytestmark = pytest.mark.integration

TOKEN = "process-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
deployment = module_deployment(
    "ph", STREAMS_CONTEXTS="games,wallet", STREAMS_SINKS="0",
    STREAMS_AUTH_TOKEN=TOKEN, STREAMS_SECRET="process-secret",
)  # fmt: skip

ROUND = "r-http-1"
REVEAL = "seed-http:7"
ODDS = 20_000  # 2.0
FUNDS = {"p-1": 1_000, "p-2": 1_000, "p-poor": 10}
OPEN_MS = 15_000
"""How long betting stays open: long enough to place the bets on a loaded machine."""


@pytest.fixture(scope="module")
def clients(deployment: Deployment) -> Iterator[tuple[CommandClient, CommandClient]]:
    with client_for(deployment, "games") as games, client_for(deployment, "wallet") as wallet:
        yield games, wallet


def get(dep: Deployment, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{dep.url()}{path}", timeout=60, **{"headers": BEARER, **kwargs})


def instance(dep: Deployment, correlation_id: str = ROUND) -> dict[str, Any] | None:
    """The instance over HTTP (None while the process has none)."""
    answer = get(dep, f"/processes/settlement/{correlation_id}")
    if answer.status_code == 404 and answer.json()["reason"] == "unknown_instance":
        return None
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def until(dep: Deployment, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The instance over HTTP once `check` holds (the failure names the last one seen)."""
    last: list[dict[str, Any] | None] = [None]

    def probe() -> dict[str, Any] | None:
        last[0] = instance(dep)
        return last[0] if last[0] is not None and check(last[0]) else None

    try:
        found: dict[str, Any] = wait_until(probe, what, timeout=90, every=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the instance: {last[0]}"[:5000]) from None
    return found


def sent(body: dict[str, Any], command_type: str) -> dict[str, str]:
    """The commands of a type the instance sent: aggregate id -> outcome."""
    return {c["aggregate_id"]: c["status"] for c in body["sent"] if c["command_type"] == command_type}


def test_the_settlement_instance_is_shown_over_http(
    deployment: Deployment, clients: tuple[CommandClient, CommandClient]
) -> None:
    games, wallet = clients
    for player, amount in FUNDS.items():  # each wallet opened and funded
        for command in (OpenWallet("EUR"), DepositFunds(f"d-{player}", amount)):
            accepted(wallet.execute(player, command, timeout=120))
    commitment = hashlib.sha256(REVEAL.encode()).hexdigest()
    closes_at = int(time.time() * 1000) + OPEN_MS
    terms = RoundTerms(ROUND, "wheel-1", 10, 500, 1_000, closes_at, "odds-v1", commitment)
    accepted(games.execute(ROUND, StartGameRound(terms), timeout=60))
    for player, bet_id, selection, stake in [
        ("p-1", "b-1", "red", 300),  # won: 600
        ("p-2", "b-2", "black", 200),  # lost
        ("p-poor", "b-3", "red", 100),  # more than the wallet holds: the reservation is rejected
    ]:
        bet = PlaceBet(terms, player, bet_id, selection, stake, ODDS, int(time.time() * 1000))
        accepted(games.execute(stake_id(ROUND, player), bet, timeout=60))
    assert time.time() * 1000 < terms.closes_at, "the bets took longer than the round was open"
    body = until(
        deployment,
        lambda b: (
            sent(b, "ReserveFunds") == {"p-1": "accepted", "p-2": "accepted", "p-poor": "rejected"}
            and stake_id(ROUND, "p-poor") in sent(b, "RefuseBet")
        ),
        "the reservations sent and answered, the unfunded bet refused",
    )
    assert body["state"]["status"] == "open"
    pending = {d["name"]: d for d in body["deadlines"] if d["status"] == "pending"}
    assert "close" in pending, body["deadlines"]
    assert pending["close"]["due"].endswith("Z")
    assert {b["bet_id"]: b["funds"] for b in body["state"]["bets"].values()} == {
        "b-1": "reserved", "b-2": "reserved", "b-3": "rejected",
    }  # fmt: skip

    at_close = until(deployment, lambda b: b["state"]["status"] == "closed", "the close deadline to fire")
    assert "close" not in {d["name"] for d in at_close["deadlines"] if d["status"] == "pending"}
    assert ROUND in sent(at_close, "CloseBetting")  # sent by the deadline
    accepted(games.execute(ROUND, SettleRound("red", REVEAL), timeout=60))

    settled = until(
        deployment,
        lambda b: (
            b["state"]["status"] == "settled"
            and sent(b, "CaptureStake") == {"p-1": "accepted", "p-2": "accepted"}
            and sent(b, "CreditWinnings") == {"p-1": "accepted"}
        ),
        "every stake captured and the win credited",
    )
    assert settled["deadlines"] == []
    assert set(sent(settled, "SettleStake")) == {stake_id(ROUND, p) for p in FUNDS}  # every stake seen
    assert {b["bet_id"]: (b["status"], b["payout"]) for b in settled["state"]["bets"].values()} == {
        "b-1": ("won", 600), "b-2": ("lost", 0), "b-3": ("refused", 0),
    }  # fmt: skip
    # the same record and JSON as `streams process settlement <round>`
    cli = committed_instance(deployment.settings(), process.name, ROUND)
    assert cli is not None and as_json(cli) == instance(deployment)


def test_names_and_ids_it_cannot_answer_are_4xx_with_a_reason(deployment: Deployment) -> None:
    for path, status, reason in [
        ("/processes/nope/r-1", 404, "unknown_process"),
        ("/processes/settlement/r-never-played", 404, "unknown_instance"),
        ("/processes/settlement/r%01x", 400, "invalid_identifier"),
        (f"/processes/settlement/{'r' * 300}", 400, "invalid_identifier"),
    ]:
        answer = get(deployment, path)
        assert (answer.status_code, answer.json()["reason"]) == (status, reason), (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    anonymous = httpx.get(f"{deployment.url()}/processes/settlement/{ROUND}", timeout=30)
    assert (anonymous.status_code, anonymous.json()["reason"]) == (401, "unauthorized")
    by_query = get(deployment, f"/processes/settlement/{ROUND}", headers={}, params={"access_token": TOKEN})
    assert by_query.status_code in (200, 404), by_query.text
    document = get(deployment, "/openapi.json").json()
    operation = document["paths"]["/processes/{process}/{correlation_id}"]["get"]
    assert operation["parameters"][0]["schema"]["enum"] == ["settlement"]
