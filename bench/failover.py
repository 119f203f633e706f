"""`python -m bench.failover`: how long a new owner of a view's partitions takes to serve.

One isolated deployment on the local stack; the view is `order-summary`.

1. fill: `BENCH_FAILOVER_EVENTS` events over `BENCH_FAILOVER_AGGREGATES` orders (an OrderPlaced,
   then ItemAdded), produced straight to `<ctx>.events` with the write path's headers and
   partitioner by an idempotent producer (not through the command handler: the figure is the
   read side's; the log therefore has no transaction markers);
2. before: a projector with an empty store and `STREAMS_VIEW_RESTORE=0` (what every new owner of
   a partition did before: fold the log from offset 0) takes all partitions; the time until its
   lag is 0, from its start and from its assignment. It is then stopped: its view topic holds
   the documents;
3. `BENCH_FAILOVER_TAIL` more events arrive while no projector runs;
4. after: a projector with another empty store and restore on (the default) takes over: it
   restores every partition from the view topic and folds only the tail; the same times, and
   what it restored.

Prints a JSON document, also written with its provenance to bench/results/failover-<time>.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer, TopicPartition

from bench.provenance import provenance, write_result
from streams.config import Settings
from streams.contexts.orders import ItemAdded, OrderPlaced
from streams.contexts.orders import context as orders
from streams.core.clock import utc_now
from streams.kafka import clients
from streams.kafka.clients import watermarks
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.read.projector import ViewProjector
from streams.wire import headers as h
from streams.wire.topics import partition_for

EVENTS = int(os.environ.get("BENCH_FAILOVER_EVENTS", "1000000"))
AGGREGATES = int(os.environ.get("BENCH_FAILOVER_AGGREGATES", "100000"))
TAIL = int(os.environ.get("BENCH_FAILOVER_TAIL", "10000"))
VIEW = "order-summary"


def fill(settings: Settings, runtime: ContextRuntime, start: int, count: int) -> float:
    """Produce events `start .. start + count - 1` of the round-robin history; seconds."""
    codec = runtime.codec
    placed = codec.encode(OrderPlaced("customer", "EUR"))
    items = [codec.encode(ItemAdded(f"sku-{i}", 1, 100)) for i in range(20)]
    placed_version = codec.version_of(OrderPlaced)
    item_version = codec.version_of(ItemAdded)
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "linger.ms": 20,
         "compression.type": "lz4", "batch.size": 1_000_000}
    )  # fmt: skip
    topic = runtime.topics.events
    now = utc_now()
    started = time.perf_counter()
    for n in range(start, start + count):
        aggregate = f"fo-{n % AGGREGATES}"
        version = n // AGGREGATES + 1
        first = version == 1
        headers = h.event_headers(
            event_type="OrderPlaced" if first else "ItemAdded",
            schema_version=placed_version if first else item_version,
            aggregate_type="Order", aggregate_id=aggregate, aggregate_version=version,
            command_id=f"c-{n}", correlation_id="", occurred_at=now,
        )  # fmt: skip
        value = placed if first else items[version % len(items)]
        key = aggregate.encode()
        while True:
            try:
                producer.produce(
                    topic, value, key, partition=partition_for(key, settings.partitions), headers=headers
                )
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("events not acknowledged")
    return time.perf_counter() - started


def run_projector(settings: Settings, runtime: ContextRuntime, data_dir: Path) -> dict[str, Any]:
    """Start a projector of the view on an empty store; time until all partitions are
    assigned and its lag is 0, then stop it."""
    view = next(v for v in runtime.context.views if v.name == VIEW)
    projector = ViewProjector(
        settings, runtime, view, 1, group_id=runtime.groups.view(VIEW, 1), inputs=[runtime.topics.events],
        data_dir=data_dir, client_id=f"bench-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    topic = runtime.topics.events
    probe = clients.reader(settings)
    ends = {p: watermarks(probe, TopicPartition(topic, p))[1] for p in range(settings.partitions)}
    probe.close()
    started = time.monotonic()
    projector.start()
    try:
        while True:
            time.sleep(0.05)
            stores = dict(projector.stores)
            if len(stores) == settings.partitions and all(
                s.position(topic) >= ends[p] for p, s in stores.items()
            ):
                break
            if projector.error:
                raise RuntimeError(projector.error)
            if time.monotonic() - started > 3600:
                raise TimeoutError("the projector did not catch up within an hour")
        done = time.monotonic()
    finally:
        projector.stop()
    restored = projector.restored
    return {
        "seconds_from_start": round(done - started, 2),
        "seconds_from_assignment": round(done - projector.assigned_at, 2),
        "events_folded": projector.consumed,
        "restored_documents": sum(r.keys for r in restored.values()),
        "restored_view_records_read": sum(r.records for r in restored.values()),
        "restored_partitions": len(restored),
    }


def measure() -> dict[str, Any]:
    """Fill, before, tail, after."""
    prefix = f"bfo-{uuid.uuid4().hex[:8]}."
    base = Settings()
    root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    settings = replace(base, topic_prefix=prefix, app_id=prefix.rstrip("."), data_dir=root)
    runtime = ContextRuntime.connect(settings, orders)
    topics = runtime.topics
    ensure_topics(settings, topics.specs(settings.partitions))
    ensure_topics(settings, topics.view_specs(VIEW, 1, settings.partitions, repartitioned=False))
    result: dict[str, Any] = {"config": {"events": EVENTS, "aggregates": AGGREGATES, "tail": TAIL}}
    try:
        result["fill_seconds"] = round(fill(settings, runtime, 0, EVENTS), 1)
        result["before"] = run_projector(replace(settings, view_restore=False), runtime, root / "before")
        result["tail_fill_seconds"] = round(fill(settings, runtime, EVENTS, TAIL), 1)
        result["after"] = run_projector(replace(settings, view_restore=True), runtime, root / "after")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        admin_drop(settings, prefix)
    before, after = result["before"]["seconds_from_assignment"], result["after"]["seconds_from_assignment"]
    result["speed_up_from_assignment"] = round(before / after, 1) if after else None
    return result


def admin_drop(settings: Settings, prefix: str) -> None:
    """Delete the deployment's topics (best effort)."""
    admin = clients.admin(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # already gone
                future.result()


def main() -> None:
    """Run, print, and write the JSON with its provenance to bench/results/failover-<time>.json
    (BENCH_OUT names another directory)."""
    started = provenance()
    result = {"provenance_at_start": started, **measure(), "provenance_at_end": provenance()}
    print(json.dumps(result, indent=2))
    write_result("failover", result, "BENCH_OUT")


if __name__ == "__main__":
    main()
