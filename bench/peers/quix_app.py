"""Scenario g, the child process: our orders rules in a Quix Streams application, exactly once.

    python -m bench.peers.quix_app BOOTSTRAP INPUT OUTPUT GROUP STATE_DIR EXPECTED COMMIT_INTERVAL_S

commands topic (JSON) → `StreamingDataFrame.apply(decide_command, stateful=True, expand=True)` on
the RocksDB state (with its changelog topic) → events topic (JSON), `processing_guarantee=
"exactly-once"`. It stops itself once EXPECTED commands are processed (the stop commits the last
checkpoint) and prints its outcome counts and when it processed the first command (seconds since
the epoch) as one JSON line. `bench/peers/run.py` times it up to the last output on the output
topic.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

from quixstreams import Application
from quixstreams.state import State

from bench.peers.rules import decide_command


def build(
    bootstrap: str, source: str, sink: str, group: str, state_dir: str, expected: int, commit_interval: float
) -> tuple[Application, Counter[str], list[float]]:
    """The application, the outcome counters its processing fills (`accepted`, `rejected`) and
    a one-item list that gets the time the first command was processed."""
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=commit_interval,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    commands = app.topic(source, key_deserializer="str", value_deserializer="json")
    events = app.topic(sink, key_serializer="str", value_serializer="json")
    counts: Counter[str] = Counter()
    first = [0.0]  # when the first command was processed (seconds since the epoch)

    def step(value: dict[str, Any], state: State) -> list[dict[str, Any]]:
        if not counts:
            first[0] = time.time()
        outputs = decide_command(value, state)
        counts["rejected" if "rejected" in outputs[0] else "accepted"] += 1
        if counts.total() == expected:
            app.stop()  # the run loop ends after this record and commits the checkpoint
        return outputs

    app.dataframe(commands).apply(step, stateful=True, expand=True).to_topic(events)
    return app, counts, first


def main(argv: list[str]) -> int:
    """Run until the expected number of commands is processed; 0 when all were."""
    bootstrap, source, sink, group, state_dir, expected, interval = argv
    app, counts, first = build(bootstrap, source, sink, group, state_dir, int(expected), float(interval))
    app.run()
    processed = counts.total()
    complete = processed == int(expected)
    print(
        json.dumps({"processed": processed, **counts, "complete": complete, "first_processed_at": first[0]})
    )
    return 0 if processed == int(expected) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
