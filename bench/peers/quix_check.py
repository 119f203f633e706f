"""The rules check of scenario g on Quix Streams' own machinery, without a broker.

    python -m bench.peers.quix_check < commands      (run in the Quix Streams virtualenv)

Reads `key<TAB>json` commands from stdin, runs each through a `StreamingDataFrame` applying
`decide_command` (`stateful=True, expand=True`) with `StreamingDataFrame.test` on Quix Streams'
RocksDB state (changelog off, no broker contacted), and prints the outcome counts as one JSON line,
`{"accepted:ItemAdded": n, "rejected:order_not_found": n, ...}`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter

import orjson
from quixstreams import Application
from quixstreams.models.messagecontext import MessageContext
from quixstreams.models.topics import Topic, TopicConfig

from bench.peers.rules import decide_command
from bench.peers.wire import outcome


def check(lines: list[str]) -> Counter[str]:
    """The outcome counts of the `key<TAB>json` commands in `lines`."""
    with tempfile.TemporaryDirectory(prefix="quix-rules-check-") as state_dir:
        app = Application(
            broker_address="127.0.0.1:1",  # never contacted
            consumer_group="rules-check",
            state_dir=state_dir,
            use_changelog_topics=False,
            auto_create_topics=False,
            loglevel=None,
        )
        topic = Topic("commands", key_deserializer="str", value_deserializer="json")
        topic.broker_config = TopicConfig(
            num_partitions=1, replication_factor=1, extra_config={"retention.ms": "-1"}
        )
        sdf = app.dataframe(topic).apply(decide_command, stateful=True, expand=True)
        context = sdf.processing_context
        context.init_checkpoint()
        context.state_manager.on_partition_assign(stream_id=sdf.stream_id, partition=0, committed_offsets={})
        counts: Counter[str] = Counter()
        try:
            for offset, line in enumerate(lines):
                key, value = line.split("\t", 1)
                ctx = MessageContext("commands", 0, offset, len(value))
                counts.update(outcome(out) for out, *_ in sdf.test(orjson.loads(value), key=key, ctx=ctx))
        finally:
            context.state_manager.close()
    return counts


if __name__ == "__main__":
    print(json.dumps(check([line.rstrip("\n") for line in sys.stdin if line.strip()])))
