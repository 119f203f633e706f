"""What a result file must say about where it was measured: the commit, the versions and the machine.

Every committed result file (bench/results/) carries this, so a figure quoted from it can be traced
to the code and the machine that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
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
