"""The games figures as docs/games.md shows them, generated from result files:
`python -m bench.games.markdown bench/results/games-chaos-<time>.json` prints the chaos run's
summary, `... bench/results/games-bench-<time>.json` the bench's table (the kind is read from
the file), and a unit test holds docs/games.md to both (nothing measured is typed by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def chaos_markdown(result: dict[str, Any]) -> str:
    """The chaos run's counts, kills and verdict, in Markdown."""
    c = result["check"]["counts"]
    kills = result["kills"]
    restart = [k["hosting_after_s"] for k in kills]
    rows = [
        ("rounds (every fifth voided)", f"{c['rounds']:,}"),
        ("bets placed", f"{c['bets']:,}"),
        (
            "bets won / lost / voided / cancelled / refused (no funds)",
            f"{c['bets_won']:,} / {c['bets_lost']:,} / {c['bets_voided']:,} / {c['bets_cancelled']:,} / "
            f"{c['bets_refused']:,}",
        ),
        (
            "bets refused `reservation_timeout` (the process was down)",
            f"{c['bets_refused_reservation_timeout']:,}",
        ),
        ("SIGKILLs of the process manager's worker", f"{len(kills)}"),
        (
            "its restarts, kill to the process assigned again (min / max s)",
            f"{min(restart):.0f} / {max(restart):.0f}" if kills else "-",
        ),
        (
            "events / commands applied / results",
            f"{c['events']:,} / {c['commands_applied']:,} / {c['results']:,}",
        ),
        ("commands sent again and answered from the dedupe", f"{c['duplicate_results']:,}"),
        (
            "deadlines scheduled / fired / cancelled before due",
            f"{c['deadlines_scheduled']:,} / {c['deadlines_fired']:,} / "
            f"{c['deadlines_cancelled_before_due']:,}",
        ),
        ("problems found by the checker", f"{len(result['check']['problems'])}"),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


def bench_markdown(result: dict[str, Any]) -> str:
    """The bench's two figures, in Markdown."""
    b, s = result["burst"], result["settlement"]
    lat = b["latency_s"]
    return "\n".join(
        [
            "| figure | value |",
            "|---|---|",
            f"| burst: bets offered on one round | {b['bets']:,} at {b['offered_rate']:,.0f}/s "
            f"(sent at {b['sent_rate']:,.0f}/s) over {b['stakes']:,} stakes on "
            f"{b['partitions_hit']} partitions |",
            f"| burst: the generator's rate | {_validity(b)} |",
            f"| burst: results came back at | {b['results_rate']:,.0f} bets/s |",
            f"| burst: bet -> result latency p50 / p99 / max | {lat['p50']:.2f} s / {lat['p99']:.2f} s / "
            f"{lat['max']:.2f} s |",
            f"| settlement: `RoundSettled` -> last credit ({s['winning_bets']} winning of "
            f"{s['bets']} bets) | "
            f"{s['round_settled_to_last_credit_s']:.2f} s |",
            f"| settlement: `RoundSettled` -> last capture | {s['round_settled_to_last_capture_s']:.2f} s |",
            f"| load average (1 min) before / after: burst, settlement | {b['load_avg_before']:.1f} / "
            f"{b['load_avg_after']:.1f}, {s['load_avg_before']:.1f} / {s['load_avg_after']:.1f} |",
        ]
    )


def _validity(burst: dict[str, Any]) -> str:
    """Whether the burst was offered at the rate asked (files before the check: unknown)."""
    if "valid" not in burst:
        return "not checked"
    if burst["valid"]:
        return f"valid: {burst['sent_rate']:,.0f}/s sent of {burst['offered_rate']:,.0f}/s asked"
    return f"**invalid**: {burst['invalid_because']}"


def markdown(result: dict[str, Any]) -> str:
    """The table of a chaos or a bench result file."""
    return chaos_markdown(result) if "check" in result else bench_markdown(result)


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
