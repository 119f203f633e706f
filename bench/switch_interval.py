"""`python -m bench.switch_interval`: how long an event loop waits for the GIL behind busy threads,
at several GIL switch intervals (streams/scheduling.py, `STREAMS_SWITCH_INTERVAL_MS`).

A worker's web event loop shares the GIL with its stage threads and gives it up at every system
call. This reproduces that without Kafka: `SWITCH_THREADS` (6) threads spin in Python while an
event loop writes 20 small frames to a socket pair (one `send` each, as 20 SSE frames), yielding
to the loop after each, for `SWITCH_SECONDS` (8) per interval. For each switch interval it
records the rounds done, the p50 and p95 of a round (ms), and the spinning threads' work (their
loops done: the throughput the shorter interval costs them). Writes
bench/results/switch-interval-<time>.json with the provenance (the machine's load matters: the
figures are of a shared machine unless the load says otherwise).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from bench.provenance import provenance, write_result

INTERVALS_MS = (5.0, 1.0, 0.5)
"""Python's default, the worker's default, and a shorter one."""
FRAMES_PER_ROUND = 20


def measure_one(interval_ms: float, threads: int, seconds: float) -> dict[str, Any]:
    """One interval, in this process: the loop's rounds and their times, and the threads' work."""
    sys.setswitchinterval(interval_ms / 1000)
    stop = threading.Event()
    work = [0] * threads

    def spin(slot: int) -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i
            work[slot] += 1

    for slot in range(threads):
        threading.Thread(target=spin, args=(slot,), daemon=True).start()

    async def rounds() -> list[float]:
        writer, reader = socket.socketpair()
        writer.setblocking(False)
        reader.setblocking(False)
        times: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            begun = time.monotonic()
            for _ in range(FRAMES_PER_ROUND):
                writer.send(b"x" * 100)
                await asyncio.sleep(0)
            try:
                while reader.recv(65536):
                    pass
            except BlockingIOError:
                pass
            times.append(time.monotonic() - begun)
        writer.close()
        reader.close()
        return times

    times = sorted(asyncio.run(rounds()))
    stop.set()
    return {
        "interval_ms": interval_ms,
        "rounds": len(times),
        "round_p50_ms": round(times[len(times) // 2] * 1000, 2),
        "round_p95_ms": round(times[int(len(times) * 0.95)] * 1000, 2),
        "spinning_work": sum(work),
    }


def main() -> None:
    """Each interval in a process of its own (threads do not outlive it); the JSON under `SWITCH_OUT`."""
    if len(sys.argv) == 2:
        threads, seconds = (
            int(os.environ.get("SWITCH_THREADS", "6")),
            float(os.environ.get("SWITCH_SECONDS", "8")),
        )
        print(json.dumps(measure_one(float(sys.argv[1]), threads, seconds)))
        return
    started = provenance()
    runs = []
    for interval in INTERVALS_MS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.switch_interval", str(interval)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout))
        print(runs[-1], flush=True)
    result = {
        "provenance_at_start": started,
        "threads": int(os.environ.get("SWITCH_THREADS", "6")),
        "seconds": float(os.environ.get("SWITCH_SECONDS", "8")),
        "frames_per_round": FRAMES_PER_ROUND,
        "runs": runs,
    }
    write_result("switch-interval", result, "SWITCH_OUT")


if __name__ == "__main__":
    main()
