"""The games chaos checker's verdict (pure): the logs as `bench.games.logs` read them, held
against the ledger of what was played.

- every bet settled exactly once: one terminal games event, the one its outcome says, and in the
  wallet one reservation with one capture (and one credit of the payout when it won) or one
  release (voided, cancelled), nothing for an unfunded player's refused bet;
- every wallet's balance as the fold of its events is the view's and the expected one, with
  nothing left reserved;
- no command applied twice: each command id's events are one run of versions of one aggregate,
  each aggregate's versions are 1..n, and each command has at most one result that is not a
  marked duplicate;
- every deadline fired at most once, none past due is still pending or emitted at the end, and
  the close deadline of every round closed by it fired exactly once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.games.ledger import (
    CANCELLED,
    LOST,
    REFUSED,
    TIMED_OUT,
    VOIDED,
    WON,
    Expected,
    Ledger,
    bet_key,
    expected,
    expected_balances,
)

TERMINAL = {
    "BetWon": WON,
    "BetLost": LOST,
    "BetVoided": VOIDED,
    "BetCancelled": CANCELLED,
    "BetRefused": REFUSED,
}
"""The games events that end a bet, and the status each means."""
RESERVED, RELEASED, CAPTURED, CREDITED = (
    "FundsReserved",
    "ReservationReleased",
    "StakeCaptured",
    "WinningsCredited",
)
OPEN = ("pending", "emitted")
"""Deadline states that must not remain at the end."""


@dataclass(frozen=True)
class Applied:
    """An event record: the context, the command that made it, its aggregate and version."""

    context: str
    command_id: str
    aggregate: str
    version: int


@dataclass(frozen=True)
class Scheduled:
    """A deadline as a committed process instance held it."""

    correlation_id: str
    name: str
    deadline_id: str
    status: str
    due_ms: int = 0


@dataclass
class Observed:
    """What the logs hold, reduced to what the judge needs."""

    placed: Counter[tuple[str, str]] = field(default_factory=Counter)
    """BetPlaced per (round, bet)."""
    terminal: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    """(event type, reason) of every terminal event per (round, bet)."""
    round_events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(round, event type) of the rounds' own events."""
    wallet_ops: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(event type, reservation or credit id) of every wallet event that moves money."""
    credited: dict[str, int] = field(default_factory=dict)
    """The amount of each credit id (the last seen)."""
    folded: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(balance, reserved) per player: the fold of the wallet's events."""
    viewed: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(balance, reserved) per player: the wallet-balance view."""
    applied: list[Applied] = field(default_factory=list)
    results: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Results that are not marked duplicates, per (context, command id)."""
    duplicates: int = 0
    """Results marked duplicate: commands sent again and answered from the dedupe."""
    deadlines: dict[str, Scheduled] = field(default_factory=dict)
    """Every deadline any committed instance record held, by id (the latest record's view)."""
    final: list[Scheduled] = field(default_factory=list)
    """The deadlines of every instance's last committed record."""
    fired: Counter[str] = field(default_factory=Counter)
    """DeadlineReached records per deadline id on the timers topic."""
    fired_names: dict[str, tuple[str, str]] = field(default_factory=dict)
    """(correlation id, name) of each fired deadline id."""
    read_at_ms: int = 0
    """When the logs were read: a deadline due later may still be pending."""


@dataclass
class Verdict:
    """Counts, the bets refused because their reservation timed out, and every problem."""

    counts: dict[str, int]
    timed_out: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


class _Problems(list[str]):
    def add(self, what: str, items: Iterable[Any]) -> None:
        listed = sorted(items, key=str)
        if listed:
            self.append(f"{len(listed)} {what}, e.g. {listed[:3]}")


def _money_matches(want: Expected, ops: dict[str, int], timed_out: bool) -> bool:
    if timed_out:  # refused while the process was away: whatever was reserved is released
        return (
            ops[RESERVED] <= 1 and ops[RELEASED] == ops[RESERVED] and not ops[CAPTURED] and not ops[CREDITED]
        )
    if want.status == REFUSED:
        return not any(ops.values())
    if want.captured:
        won = 1 if want.status == WON else 0
        return (ops[RESERVED], ops[CAPTURED], ops[RELEASED], ops[CREDITED]) == (1, 1, 0, won)
    return (ops[RESERVED], ops[RELEASED], ops[CAPTURED], ops[CREDITED]) == (1, 1, 0, 0)


def judge_bets(ledger: Ledger, seen: Observed, problems: _Problems) -> tuple[set[tuple[str, str]], int]:
    """The bets' part of the verdict; returns the bets refused `reservation_timeout`, and how many
    bets of unfunded players were settled (won, lost, voided) before the wallet's refusal reached
    the process (their money must not move either way)."""
    timed_out: set[tuple[str, str]] = set()
    unsettled, twice, wrong, money, credit, settled_unfunded = [], [], [], [], [], []
    for bet in ledger.bets:
        key = bet_key(bet)
        want = expected(ledger, bet)
        ends = seen.terminal.get(key, [])
        if not ends:
            unsettled.append(key)
            continue
        if len(ends) > 1:
            twice.append((key, ends))
        kind, reason = ends[0]
        if TERMINAL[kind] == REFUSED and reason == TIMED_OUT and want.status != REFUSED:
            timed_out.add(key)
        elif want.status == REFUSED and TERMINAL[kind] != REFUSED:
            settled_unfunded.append(key)  # settled before the wallet's refusal came back: never paid
        elif TERMINAL[kind] != want.status:
            wrong.append((key, want.status, kind, reason))
        rid, cid = f"bet:{bet.round_id}:{bet.bet_id}", f"win:{bet.round_id}:{bet.bet_id}"
        ops = {t: seen.wallet_ops[(t, rid)] for t in (RESERVED, RELEASED, CAPTURED)}
        ops[CREDITED] = seen.wallet_ops[(CREDITED, cid)]
        if not _money_matches(want, ops, key in timed_out):
            money.append((key, want.status, ops))
        elif ops[CREDITED] and seen.credited.get(cid) != want.payout:
            credit.append((key, want.payout, seen.credited.get(cid)))
    played = {bet_key(b) for b in ledger.bets}
    problems.add("bets never settled (no terminal event)", unsettled)
    problems.add("bets settled more than once", twice)
    problems.add("bets that ended otherwise than their outcome says", wrong)
    problems.add("bets whose wallet operations are not exactly one settlement", money)
    problems.add("winning bets credited another amount than their payout", credit)
    problems.add("bets placed more than once", (k for k, n in seen.placed.items() if n > 1))
    problems.add("bets in the log the player never saw accepted", set(seen.placed) - played)
    ops_ids = {op for _, op in seen.wallet_ops}
    known = {f"{p}:{r}:{b}" for r, b in played for p in ("bet", "win")}
    problems.add("wallet operations of no played bet", ops_ids - known)
    return timed_out, len(settled_unfunded)


def judge_rounds(ledger: Ledger, seen: Observed, problems: _Problems) -> None:
    """Each round started once, closed at most once (once when settled), settled or voided once."""
    bad = []
    for r in ledger.rounds.values():
        got = (
            seen.round_events[(r.round_id, "RoundStarted")],
            seen.round_events[(r.round_id, "RoundSettled")],
            seen.round_events[(r.round_id, "RoundVoided")],
            seen.round_events[(r.round_id, "BettingClosed")],
        )
        settled = r.outcome is not None
        if got[:3] != (1, int(settled), int(not settled)) or got[3] > 1 or (settled and got[3] != 1):
            bad.append((r.round_id, got))
    problems.add("rounds not started, closed, settled or voided exactly once", bad)


def judge_wallets(
    ledger: Ledger, seen: Observed, timed_out: set[tuple[str, str]], problems: _Problems
) -> None:
    """Each wallet's folded balance is the view's and the expected one; nothing stays reserved."""
    want = expected_balances(ledger, timed_out)
    problems.add(
        "wallets whose folded balance is not the expected one",
        (
            (p, b, seen.folded.get(p, (None,))[0])
            for p, b in want.items()
            if seen.folded.get(p, (None,))[0] != b
        ),
    )
    problems.add("wallets with funds still reserved", ((p, f[1]) for p, f in seen.folded.items() if f[1]))
    problems.add(
        "wallets whose view is not the fold of their events",
        ((p, f, seen.viewed.get(p)) for p, f in seen.folded.items() if seen.viewed.get(p) != f),
    )


def judge_commands(seen: Observed, problems: _Problems) -> None:
    """No command applied twice: one run of versions per command id, versions 1..n per aggregate,
    at most one result per command that is not marked duplicate."""
    per_command: dict[tuple[str, str], list[Applied]] = defaultdict(list)
    per_aggregate: dict[tuple[str, str], list[int]] = defaultdict(list)
    for a in seen.applied:
        per_command[(a.context, a.command_id)].append(a)
        per_aggregate[(a.context, a.aggregate)].append(a.version)
    twice = []
    for key, events in per_command.items():
        versions = sorted(e.version for e in events)
        one_run = versions == list(range(versions[0], versions[0] + len(versions)))
        if len({e.aggregate for e in events}) > 1 or not one_run:
            twice.append(key)
    problems.add("commands whose events were appended twice", twice)
    problems.add(
        "aggregates whose versions are not 1..n",
        (k for k, v in per_aggregate.items() if v != list(range(1, len(v) + 1))),
    )
    problems.add("commands with more than one result", (k for k, n in seen.results.items() if n > 1))
    problems.add("applied commands without a result", set(per_command) - set(seen.results))


def judge_deadlines(ledger: Ledger, seen: Observed, problems: _Problems) -> None:
    """Every deadline fired at most once and none is left open; a round closed by its deadline
    saw that deadline fire exactly once."""
    problems.add("deadlines fired more than once", (d for d, n in seen.fired.items() if n > 1))
    problems.add(
        "deadlines past due still pending or emitted at the end",
        (d for d in seen.final if d.status in OPEN and d.due_ms <= seen.read_at_ms),
    )
    closes = Counter(
        c for d, (c, name) in seen.fired_names.items() if name == "close" for _ in range(seen.fired[d])
    )
    problems.add(
        "rounds closed by their deadline whose close deadline did not fire exactly once",
        (r.round_id for r in ledger.rounds.values() if r.closed_by == "deadline" and closes[r.round_id] != 1),
    )


def judge(ledger: Ledger, seen: Observed) -> Verdict:
    """The whole verdict."""
    problems = _Problems()
    timed_out, settled_unfunded = judge_bets(ledger, seen, problems)
    judge_rounds(ledger, seen, problems)
    judge_wallets(ledger, seen, timed_out, problems)
    judge_commands(seen, problems)
    judge_deadlines(ledger, seen, problems)
    statuses = Counter(expected(ledger, b).status for b in ledger.bets if bet_key(b) not in timed_out)
    fired = set(seen.fired)
    counts = {
        "rounds": len(ledger.rounds),
        "bets": len(ledger.bets),
        **{f"bets_{s}": statuses[s] for s in (WON, LOST, VOIDED, CANCELLED, REFUSED)},
        "bets_refused_reservation_timeout": len(timed_out),
        "bets_unfunded_settled_before_refusal": settled_unfunded,
        "players": len(ledger.deposits) + len(ledger.unfunded),
        "events": len(seen.applied),
        "commands_applied": len({(a.context, a.command_id) for a in seen.applied}),
        "results": sum(seen.results.values()),
        "duplicate_results": seen.duplicates,
        "deadlines_scheduled": len(set(seen.deadlines) | fired),
        "deadlines_fired": len(fired),
        "deadlines_fired_after_cancel": sum(
            1 for d in fired if seen.deadlines.get(d) and seen.deadlines[d].status == "void"
        ),
        "deadlines_cancelled_before_due": len(set(seen.deadlines) - fired),
    }
    return Verdict(counts, sorted(f"{r}/{b}" for r, b in timed_out), list(problems))
