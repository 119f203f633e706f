"""What a result file must say about where it was measured: the commit, the versions and the machine.

Every committed result file (bench/results/) carries this, so a figure quoted from it can be traced
to the code and the machine that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def provenance() -> dict[str, Any]:
    """The commit (and whether the tree had uncommitted changes), the client versions, the cores
    and the load average at the time of the call."""
    import confluent_kafka

    return {
        "commit": _git("rev-parse", "HEAD"),
        "tree_dirty": _git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version(),  # a str (indexing it gave its first digit)
        "librdkafka": confluent_kafka.libversion()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg()[0],
    }


def write_result(name: str, result: dict[str, Any], out_variable: str) -> Path:
    """Write `result` with the load average now as `<name>-<time>.json` under the directory that
    the environment variable `out_variable` names (bench/results by default); its path."""
    out = Path(os.environ.get(out_variable, "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({**result, "load_avg_at_end": os.getloadavg()[0]}, indent=2))
    print(f"written to {path}")
    return path
