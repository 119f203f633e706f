"""The chaos suite's table as the docs show it, generated from a result file:
`python -m bench.chaos.markdown bench/results/chaos-<time>.json` prints it, and a unit test holds
docs/operations.md to it (nothing measured is typed by hand)."""

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
    c = result["check"]
    lines += [
        "",
        f"Checker: {c['accepted']:,} accepted commands, {c['results']:,} results, {c['events']:,} events, "
        f"{len(c['problems'])} problems; {c['aborted_records']:,} aborted records in the log, "
        f"{'none' if c['passed'] else 'some'} of them seen by the read_committed reader.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
