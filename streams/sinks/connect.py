"""`streams connect`: the sink tables and connectors (connectors/*.json) via the Connect REST API."""

from __future__ import annotations

import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import KafkaException, TopicPartition

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import watermarks
from streams.kafka.readers import read_partition
from streams.wire.topics import ContextTopics

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS_DIR = ROOT / "connectors"
SQL_DIR = CONNECTORS_DIR / "sql"
SINKS = ("eventstore", "snapshots", "readmodels")
TASK_FIELDS = {"id": "id", "state": "state", "worker": "worker_id", "trace": "trace"}

log = logging.getLogger(__name__)


class ConnectError(Exception):
    """The Connect REST API refused a request (message includes its answer)."""


def template_vars(settings: Settings, context: str) -> dict[str, str]:
    """Values substituted into connectors/*.json and connectors/sql/*.sql. The credentials are
    references to the Connect worker's FileConfigProvider when `connect_secrets` names its file."""
    pg = psycopg.conninfo.conninfo_to_dict(settings.pg_dsn)
    if settings.connect_secrets:
        user = f"${{file:{settings.connect_secrets}:username}}"
        password = f"${{file:{settings.connect_secrets}:password}}"
    else:
        user, password = str(pg.get("user", "")), str(pg.get("password", ""))
    return {
        "prefix": settings.topic_prefix,
        "context": context,
        "schema": settings.sink_schema,
        "jdbc_url": f"jdbc:postgresql://{pg.get('host', '127.0.0.1')}:{pg.get('port', 5432)}/{pg['dbname']}",
        "pg_user": user,
        "pg_password": password,
        "registry_v2": settings.registry_url.split("/apis/")[0] + "/apis/registry/v2",
    }


def connector_specs(settings: Settings, context: str) -> list[dict[str, Any]]:
    """The rendered connector definitions ({"name", "config"}) of one context (every value is
    escaped for its JSON string)."""
    values = {k: json.dumps(v)[1:-1] for k, v in template_vars(settings, context).items()}
    return [
        json.loads(string.Template((CONNECTORS_DIR / f"{sink}.json").read_text()).substitute(values))
        for sink in SINKS
    ]


def apply_sql(settings: Settings) -> list[str]:
    """Create the seed's tables and indexes when missing; returns the files applied."""
    values = {"schema": settings.sink_schema}
    applied = []
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        for path in sorted(SQL_DIR.glob("*.sql")):
            conn.execute(string.Template(path.read_text()).substitute(values).encode())
            applied.append(path.name)
    return applied


@dataclass
class ConnectClient:
    """Thin client of the Connect REST API."""

    url: str

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            resp = http.request(method, path, **kw)
        if resp.status_code >= 400:
            raise ConnectError(f"{method} {path}: {resp.status_code} {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def put_config(self, name: str, config: dict[str, str]) -> Any:
        """Create or update a connector."""
        return self._call("PUT", f"/connectors/{name}/config", json=config)

    def status(self, name: str) -> dict[str, Any] | None:
        """Connector and task states (None when the connector does not exist)."""
        try:
            return dict(self._call("GET", f"/connectors/{name}/status"))
        except ConnectError as exc:
            if " 404 " in str(exc):
                return None
            raise

    def delete(self, name: str) -> bool:
        """Remove a connector; False when it did not exist."""
        try:
            self._call("DELETE", f"/connectors/{name}")
            return True
        except ConnectError as exc:
            if " 404 " in str(exc):
                return False
            raise


def deploy(settings: Settings, contexts: tuple[str, ...] | None = None) -> list[str]:
    """Apply the SQL migration, then create/update every connector; returns connector names."""
    apply_sql(settings)
    if not settings.connect_secrets:
        log.warning(
            "the database password goes into the connector configs: set STREAMS_CONNECT_SECRETS to the "
            "credentials file of the Connect worker's FileConfigProvider (docs/realtime-and-sinks.md)"
        )
    client = ConnectClient(settings.connect_url)
    names = []
    for context in contexts or settings.contexts:
        for spec in connector_specs(settings, context):
            client.put_config(spec["name"], spec["config"])
            names.append(spec["name"])
    return names


def remove(settings: Settings, contexts: tuple[str, ...] | None = None) -> list[str]:
    """Delete the connectors (tables and rows are kept); returns the names removed."""
    client = ConnectClient(settings.connect_url)
    return [
        spec["name"]
        for context in contexts or settings.contexts
        for spec in connector_specs(settings, context)
        if client.delete(spec["name"])
    ]


def sink_lag(settings: Settings, connector: str, topic: str) -> dict[str, Any]:
    """Records of `topic` not yet committed by the connector's consumer group (`connect-<name>`)."""
    consumer = clients.reader(settings, overrides={"group.id": f"connect-{connector}"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {"topic": topic, "error": str(metadata.error if metadata else "no such topic")}
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        committed = consumer.committed(partitions, timeout=10)
        per_partition = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            position = tp.offset if tp.offset >= 0 else low
            per_partition[tp.partition] = max(high - position, 0)
        return {"topic": topic, "lag": sum(per_partition.values()), "partitions": per_partition}
    finally:
        consumer.close()


def dead_letters(settings: Settings, context: str) -> dict[str, int]:
    """Records a context's sinks set aside: in Connect's DLQ (its converter could not read them)
    and in the context's DLQ from the sink deriver (their rows would have been refused)."""
    topics = ContextTopics(context, settings.topic_prefix)
    consumer = clients.reader(settings)
    try:
        low, high = watermarks(consumer, TopicPartition(topics.connect_dlq, 0), wait_s=0)
        connect = max(high - low, 0)
    except KafkaException:
        connect = 0  # no such topic yet: nothing was set aside
    finally:
        consumer.close()
    try:
        records = read_partition(settings, topics.dlq, 0)
    except KafkaException:
        records = []
    deriver = sum(1 for msg in records if (dict(msg.headers() or []).get("dlq_stage") or b"") == b"sink")
    return {"connect": connect, "deriver": deriver}


def status(settings: Settings, contexts: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Per connector: its state, each task's state and error trace, its sink lag, and the
    dead-letter counts of its context."""
    client = ConnectClient(settings.connect_url)
    report = []
    for context in contexts or settings.contexts:
        dlq = dead_letters(settings, context)
        for spec in connector_specs(settings, context):
            name, topic = spec["name"], spec["config"]["topics"]
            state = client.status(name)
            entry: dict[str, Any] = {"name": name, "topic": topic, "dlq": dlq}
            if state is None:
                entry["state"] = "NOT_DEPLOYED"
            else:
                entry["state"] = state.get("connector", {}).get("state", "?")
                entry["tasks"] = [
                    {
                        "id": t.get("id"),
                        "state": t.get("state"),
                        "worker": t.get("worker_id"),
                        "trace": t.get("trace"),
                    }
                    for t in state.get("tasks", [])
                ]
                entry["lag"] = sink_lag(settings, name, topic)
            report.append(entry)
    return report
