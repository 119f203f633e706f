"""What a result file must say about where it was measured: the commit, the versions and the machine.

Every committed result file (bench/results/) carries this, so a figure quoted from it can be traced
to the code and the machine that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STACK_ENV = ROOT / "ops" / "stack.env"


def _git(*args: str) -> str:
    """git's output in this checkout (whatever the working directory), or 'unknown'."""
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=ROOT)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def kafka_version() -> str:
    """The broker's Kafka version: $KAFKA_VERSION, else the default of ops/stack.env (what
    ops/stack.sh installs and runs)."""
    if os.environ.get("KAFKA_VERSION"):
        return os.environ["KAFKA_VERSION"]
    try:
        found = re.search(r"KAFKA_VERSION:=([^}\s]+)", STACK_ENV.read_text())
    except OSError:
        return "unknown"
    return found.group(1) if found else "unknown"


def jdk_version() -> str:
    """`java -version`'s first line (the JDK that runs the broker and the Kafka Streams peer)."""
    java = (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    if not java:
        return "none"
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def quixstreams_version() -> str:
    """The Quix Streams version that scenario g runs (its own virtualenv, bench/peers/quix_env.py)."""
    from bench.peers.quix_env import VERSION

    return VERSION


def _text(version: Any) -> str:
    """A version string, whether the client gives a str or a (str, int) pair."""
    return str(version[0] if isinstance(version, tuple) else version)


def provenance() -> dict[str, Any]:
    """The commit (and whether the tree had uncommitted changes), the client, broker, JDK and peer
    versions, the cores and the load average at the time of the call."""
    import confluent_kafka

    return {
        "commit": _git("rev-parse", "HEAD"),
        "tree_dirty": _git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
        "python": platform.python_version(),
        "confluent_kafka": _text(confluent_kafka.version()),
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka": kafka_version(),
        "jdk": jdk_version(),
        "quixstreams": quixstreams_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg()[0],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
