"""The chaos suite's table as the docs show it, generated from a result file:
`python -m bench.chaos.markdown bench/results/chaos-<time>.json` prints it, `--runs <file>...` one
line per run, and a unit test holds docs/operations.md to both (nothing measured is typed by
hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LABELS = {
    "leader": "kill -9 an events leader",
    "coordinator": "kill -9 the transaction coordinator",
    "pause": "SIGSTOP a broker",
    "worker": "kill -9 the worker while a broker is down",
    "rolling": "rolling restart",
    "two-down": "two brokers down",
    "stale": "a stale replica, its leader away",
}
"""What the docs call each scenario."""


def markdown(result: dict[str, Any]) -> str:
    """The scenarios' table and the checker's counts, in Markdown."""
    lines = [
        "| scenario | node(s) | healed s | recovered s | slowest command s |",
        "|---|---|---|---|---|",
    ]
    for o in result["outcomes"]:
        slowest = "no result" if o["max_latency_s"] is None else f"{o['max_latency_s']:.1f}"
        nodes = ", ".join(map(str, o["nodes"]))
        label = LABELS.get(o["scenario"], o["scenario"])
        lines.append(f"| {label} | {nodes} | {o['healed_s']:.1f} | {o['recovered_s']:.1f} | {slowest} |")
    observed = [o for o in result["outcomes"] if o.get("details") or o.get("problems")]
    if observed:
        lines.append("")
    for o in observed:
        seen = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in o.get("details", {}).items())
        problems = "; ".join(o.get("problems", [])) or "none"
        lines.append(f"- {LABELS.get(o['scenario'], o['scenario'])}: {seen}; problems: {problems}")
    c = result["check"]
    lines += [
        "",
        f"Checker: {c['accepted']:,} accepted commands, {c['results']:,} results, {c['events']:,} events, "
        f"{len(c['problems'])} problems; {c['aborted_records']:,} aborted records in the log, "
        f"{'none' if c['passed'] else 'some'} of them seen by the read_committed reader.",
    ]
    if "windows" in result or "views" in result:
        lines.append("")
    for w in result.get("windows", []):
        refused = ", ".join(f"{n:,} {reason}" for reason, n in sorted(w["dead_lettered"].items())) or "none"
        verdict = (
            "every window closed once and equal to the replay"
            if not w["problems"]
            else "; ".join(w["problems"])
        )
        lines.append(
            f"- Windows ({w['aggregation']}): {w['readings']:,} readings sent to the raw topic, "
            f"{w['windows']:,} windows in their replay; dead-lettered: {refused}; {verdict}."
        )
    if "views" in result:
        views = "; ".join(result["views"]) or "every view's topic equals the fold of its events log"
        lines.append(f"- Views: {views}.")
    return "\n".join(lines)


def runs(files: dict[str, dict[str, Any]]) -> str:
    """One line per run (its file, verdict, seconds and scenarios' recovery), in Markdown: what
    the docs show of repeated short runs."""
    lines = []
    for name, result in files.items():
        scenarios = "; ".join(
            f"{o['scenario']}: recovered {o['recovered_s']:.1f} s, slowest command "
            + ("no result" if o["max_latency_s"] is None else f"{o['max_latency_s']:.1f} s")
            for o in result["outcomes"]
        )
        verdict = "passed" if result.get("passed") else "failed"
        lines.append(
            f"- `{name}`: {verdict}, {result['seconds']:.0f} s in all, "
            f"{result['check']['accepted']:,} commands; {scenarios}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--runs":
        print(runs({name: json.loads(Path(name).read_text()) for name in sys.argv[2:]}))
    else:
        print(markdown(json.loads(Path(sys.argv[1]).read_text())))
