"""Read a games deployment's committed logs into what `bench.games.judge` needs: the games and
wallet events and results, the settlement process's changelog and timers, and the wallet-balance
view of every player (served by a worker)."""

from __future__ import annotations

import time
from typing import Any

from bench.games.judge import TERMINAL, Applied, Observed, Scheduled
from streams.client import read_topic
from streams.config import Settings
from streams.contexts.registry import get_context
from streams.contexts.settlement import process
from streams.contexts.wallet import INITIAL, WalletState, evolve
from streams.core.processes import DeadlineReached, ProcessInstance
from streams.kafka.runtime import ContextRuntime
from streams.processes.records import INSTANCE, process_codec
from streams.wire import headers as h
from streams.wire.topics import ProcessTopics
from tests.integration.workers import json_answer

ROUND_EVENTS = ("RoundStarted", "BettingClosed", "RoundSettled", "RoundVoided")
MONEY = ("FundsReserved", "ReservationReleased", "StakeCaptured", "WinningsCredited")
IDLE_S = 3.0


def _events(settings: Settings, runtime: ContextRuntime, seen: Observed) -> list[tuple[str, Any]]:
    """(aggregate id, event) of a context's events topic, each noted in `seen.applied`."""
    found = []
    for m in read_topic(settings, runtime.topics.events, idle_timeout=IDLE_S):
        meta = h.as_dict(m.headers())
        aggregate = m.key().decode()
        seen.applied.append(
            Applied(runtime.context.name, meta[h.COMMAND_ID], aggregate, int(meta[h.AGGREGATE_VERSION]))
        )
        found.append((aggregate, runtime.codec.decode(m.value()).message))
    return found


def _results(settings: Settings, runtime: ContextRuntime, seen: Observed) -> None:
    for m in read_topic(settings, runtime.topics.results, idle_timeout=IDLE_S):
        if m.value() is None:
            continue
        result = runtime.codec.decode(m.value()).message
        if result.duplicate:
            seen.duplicates += 1
        else:
            seen.results[(runtime.context.name, result.command_id)] += 1


def _games(settings: Settings, seen: Observed) -> None:
    runtime = ContextRuntime.connect(settings, get_context("games"))
    for _, event in _events(settings, runtime, seen):
        kind = type(event).__name__
        if kind == "BetPlaced":
            seen.placed[(event.round_id, event.bet_id)] += 1
        elif kind in TERMINAL:
            seen.terminal[(event.round_id, event.bet_id)].append((kind, getattr(event, "reason", "")))
        elif kind in ROUND_EVENTS:
            round_id = event.terms.round_id if kind == "RoundStarted" else event.round_id
            seen.round_events[(round_id, kind)] += 1
    _results(settings, runtime, seen)


def _wallets(settings: Settings, seen: Observed) -> None:
    runtime = ContextRuntime.connect(settings, get_context("wallet"))
    states: dict[str, WalletState] = {}
    for player, event in _events(settings, runtime, seen):
        states[player] = evolve(states.get(player, INITIAL), event)
        kind = type(event).__name__
        if kind in MONEY:
            op = event.credit_id if kind == "WinningsCredited" else event.reservation_id
            seen.wallet_ops[(kind, op)] += 1
            if kind == "WinningsCredited":
                seen.credited[op] = event.amount
    seen.folded = {p: (s.balance, s.reserved_total) for p, s in states.items()}
    _results(settings, runtime, seen)


def _process(settings: Settings, seen: Observed) -> None:
    topics = ProcessTopics(process.name, settings.topic_prefix)
    codec = process_codec(settings)
    last: dict[str, ProcessInstance] = {}
    for m in read_topic(settings, topics.changelog, idle_timeout=IDLE_S):
        if not (m.key() or b"").startswith(INSTANCE) or m.value() is None:
            continue
        record: ProcessInstance = codec.decode(m.value()).message
        last[record.correlation_id] = record
        for d in record.deadlines:
            seen.deadlines[d.deadline_id] = Scheduled(
                record.correlation_id, d.name, d.deadline_id, d.status, d.due_ms
            )
    seen.final = [
        Scheduled(r.correlation_id, d.name, d.deadline_id, d.status)
        for r in last.values()
        for d in r.deadlines
    ]
    for m in read_topic(settings, topics.timers, idle_timeout=IDLE_S):
        reached: DeadlineReached = codec.decode(m.value()).message
        seen.fired[reached.deadline_id] += 1
        seen.fired_names[reached.deadline_id] = (reached.correlation_id, reached.name)


def view_balances(url: str, players: list[str]) -> dict[str, tuple[int, int]]:
    """(balance, reserved) of each player's wallet-balance document, served at `url`."""
    found = {}
    for player in players:
        status, body = json_answer(f"{url}/wallet/views/wallet-balance/{player}")
        if status == 200:
            found[player] = (body["state"]["balance"], body["state"]["reserved"])
    return found


def observe(settings: Settings, url: str) -> Observed:
    """Everything the judge needs, read now."""
    seen = Observed(read_at_ms=int(time.time() * 1000))
    _games(settings, seen)
    _wallets(settings, seen)
    _process(settings, seen)
    seen.viewed = view_balances(url, sorted(seen.folded))
    return seen
