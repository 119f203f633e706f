"""The live page in real headless Chromium (Debian's `chromium`, driven by playwright-core).

The worker runs with an auth token. The read side is another module: this test subscribes the
page to a view topic that a tiny projector thread below fills from the committed events (one
`streams.ReadModelDocument`-shaped record per event), so the page shows a read model updating.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.client import CommandClient, consumer_config
from streams.contexts.orders import PlaceOrder
from streams.core import headers as h
from streams.core.topics import TopicSpec
from streams.runtime import ensure_topics
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
TOKEN = "browser-token"
DOC_SCHEMA = {
    "type": "record",
    "name": "ReadModelDocument",
    "namespace": "streams",
    "fields": [
        {"name": "entity_id", "type": "string"},
        {"name": "entity_type", "type": "string"},
        {"name": "state", "type": {"type": "string", "connect.name": "io.debezium.data.Json"}},
        {"name": "last_event_version", "type": "long"},
        {"name": "last_updated", "type": "string"},
    ],
}


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not Path("/usr/bin/chromium").exists() or shutil.which("node") is None:
        pytest.fail("needs /usr/bin/chromium and node (.ci/run installs them)")
    if not (HERE / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    dep = Deployment(
        prefix=f"b{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("worker"),
        extra_env={"STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SINKS": "0"},
    )
    dep.start("w1")
    dep.wait_healthy("w1")
    with CommandClient(dep.settings(), "orders") as client:  # waits out the group join
        client.execute("warm-up", PlaceOrder("c-0"), timeout=120)
    yield dep
    dep.stop_all()


def project(dep: Deployment, view_topic: str, stop: threading.Event) -> None:
    """A stand-in projector: committed events -> one document per aggregate on the view topic."""
    settings = dep.settings()
    registry = SchemaRegistryClient({"url": settings.registry_url})
    schema_id = registry.register_schema("streams.ReadModelDocument", Schema(json.dumps(DOC_SCHEMA), "AVRO"))
    parsed = fastavro.parse_schema(DOC_SCHEMA)
    consumer = Consumer(consumer_config(settings))
    consumer.subscribe([f"{settings.topic_prefix}orders.events"])
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    seen: dict[str, list[str]] = {}
    try:
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            hdrs = h.as_dict(msg.headers())
            agg = hdrs[h.AGGREGATE_ID]
            seen.setdefault(agg, []).append(hdrs[h.EVENT_TYPE])
            doc = {
                "entity_id": agg,
                "entity_type": view_topic.removeprefix(settings.topic_prefix),
                "state": json.dumps({"events": seen[agg]}),
                "last_event_version": int(hdrs[h.AGGREGATE_VERSION]),
                "last_updated": hdrs[h.OCCURRED_AT],
            }
            out = io.BytesIO(b"\x00" + schema_id.to_bytes(4, "big"))
            out.seek(0, io.SEEK_END)
            fastavro.schemaless_writer(out, parsed, doc)
            producer.produce(view_topic, out.getvalue(), agg.encode())
            producer.flush(10)
    finally:
        consumer.close()


def test_live_page_shows_events_and_read_model_updates(deployment: Deployment) -> None:
    settings = deployment.settings()
    view_topic = f"{settings.topic_prefix}orders.live-view"
    ensure_topics(settings, [TopicSpec(view_topic, settings.partitions, {"cleanup.policy": "compact"})])
    stop = threading.Event()
    projector = threading.Thread(target=project, args=(deployment, view_topic, stop), daemon=True)
    projector.start()
    aggregate = f"order-{uuid.uuid4().hex[:6]}"
    try:
        run = subprocess.run(
            [
                "node",
                "live_page.mjs",
                f"http://127.0.0.1:{deployment.ports['w1']}",
                TOKEN,
                "live-view",
                aggregate,
            ],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        stop.set()
        projector.join(timeout=10)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert [c.split()[:2] for c in result["commands"]] == [["200", "accepted"], ["200", "accepted"]]
    assert result["events"][0].startswith(f"{aggregate} v1 OrderPlaced")
    assert (
        result["events"][1].startswith(f"{aggregate} v2 ItemAdded") and '"sku":"book"' in result["events"][1]
    )
    assert result["readmodel"] == {"version": "2", "state": {"events": ["OrderPlaced", "ItemAdded"]}}
