"""`streams trace <context> <command id>`: one command's way through the pipeline, as a timeline.

The hops are found from what the records already carry, and timed by the records' own timestamps:
- the **result** on `<ctx>.command-results` (keyed by the command id, on the command's partition),
  which names the events' partition and offsets;
- the **command** on `<ctx>.commands` (its `command_id` header), on that partition;
- the **events** at those offsets of `<ctx>.events` (their `command_id` and `correlation_id`
  headers name the command and the conversation it belongs to);
- the **documents**: for every view of the context (each version whose topic exists), the first
  record of the view topic, from the event's time on, whose document has folded the aggregate's
  version (its `versions`): the view published the command's effect then.

- the **sink rows**: each event's row on `<ctx>.events-sink` (keyed by its event id, written by
  the sink deriver when sinks are on), then whether PostgreSQL's EventStore holds it (when the
  database answers: the JDBC sink copies it there; a row carries no time it was written, so that
  hop is not timed).

Each hop shows when it was written after the command, and how long it took after the hop it
follows (result and events: after the command; documents and sink records: after the last
event).

- the **real-time frames** (with `--url`, once per worker): each worker keeps a ring of its
  recent frames with the time its feed published each and the number of subscribers it reached;
  `streams.cli.trace_frames` asks it (`GET /realtime/frames`) about the events and documents
  above. A frame the ring no longer holds, or a view no client follows there, is shown as such,
  untimed. Its time is the worker's clock (the others are the records' timestamps): on other
  machines, the clocks' skew is in the figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click
import psycopg
from confluent_kafka import Message, TopicPartition
from psycopg import sql
from rich.console import Console
from rich.table import Table

from streams.cli.inputs import context_named, identifier
from streams.config import Settings
from streams.kafka.clients import reader
from streams.kafka.readers import PartitionReader, read_offsets
from streams.wire import headers as h
from streams.wire.topics import partition_for


@dataclass(frozen=True)
class Hop:
    """One record of a command's way."""

    kind: str
    """command, result, event or document."""
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    """The record's timestamp (None: a PostgreSQL row, which carries no time it was written)."""
    detail: str
    after: str = ""
    """The kind of hop this one follows (its `took` is counted from it)."""
    after_ms: int | None = None
    """The time of the one record this hop follows, when it follows one (a real-time frame:
    its record's); None: the latest hop of kind `after`."""


@dataclass
class Timeline:
    """The hops of one command, in the order it went through them."""

    command_id: str
    correlation_id: str = ""
    hops: list[Hop] = field(default_factory=list)

    def first(self, kind: str) -> Hop | None:
        """The first hop of a kind."""
        return next((hop for hop in self.hops if hop.kind == kind), None)

    def since_command_ms(self, hop: Hop) -> int | None:
        """Milliseconds from the command record to `hop` (None: the command was not found)."""
        command = self.first("command")
        if command is None or command.timestamp_ms is None or hop.timestamp_ms is None:
            return None
        return hop.timestamp_ms - command.timestamp_ms

    def took_ms(self, hop: Hop) -> int | None:
        """Milliseconds from the hop `hop` follows (its record, else the latest of that kind) to `hop`."""
        if hop.after_ms is not None:
            return None if hop.timestamp_ms is None else hop.timestamp_ms - hop.after_ms
        before = [x.timestamp_ms for x in self.hops if x.kind == hop.after and x.timestamp_ms is not None]
        return None if not before or hop.timestamp_ms is None else hop.timestamp_ms - max(before)


def trace(settings: Settings, runtime: Any, command_id: str, aggregate_id: str | None = None) -> Timeline:
    """The timeline of one command of `runtime`'s context (`aggregate_id`: read only its
    partition of the results topic; else every partition)."""
    topics, codec = runtime.topics, runtime.codec
    timeline = Timeline(command_id)
    partitions = (
        [partition_for(aggregate_id.encode(), settings.partitions)]
        if aggregate_id
        else range(settings.partitions)
    )
    found = _result(settings, topics.results, partitions, command_id.encode())
    if found is None:
        return timeline
    result_msg = found
    result = codec.decode(result_msg.value(), keep_personal=False).message
    partition = result_msg.partition()
    command = next(
        _records(settings, topics.commands, partition, lambda m: _header(m, h.COMMAND_ID) == command_id), None
    )
    if command is not None:
        timeline.hops.append(
            _hop("command", command, f"{result.command_type} for {result.aggregate_id}", after="")
        )
    status = (
        result.status
        + (f": {result.reason}" if result.reason else "")
        + (" (duplicate)" if result.duplicate else "")
    )
    timeline.hops.append(
        _hop("result", result_msg, f"{status}, version {result.aggregate_version}", after="command")
    )
    events = (
        read_offsets(settings, topics.events, result.event_partition, result.event_offsets)
        if result.event_offsets
        else []
    )
    for event in events:
        meta = h.pick(event.headers(), frozenset({h.EVENT_TYPE, h.AGGREGATE_VERSION, h.CORRELATION_ID}))
        timeline.correlation_id = timeline.correlation_id or meta.get(h.CORRELATION_ID, "")
        detail = f"{meta.get(h.EVENT_TYPE, '?')} v{meta.get(h.AGGREGATE_VERSION, '?')}"
        timeline.hops.append(_hop("event", event, detail, after="command"))
    if events:
        last = events[-1]
        version = int(h.pick(last.headers(), frozenset({h.AGGREGATE_VERSION}))[h.AGGREGATE_VERSION])
        for view_topic in _view_topics(settings, runtime):
            document = _document(
                settings, codec, view_topic, result.aggregate_id, version, last.timestamp()[1]
            )
            if document is not None:
                timeline.hops.append(document)
        for event in events:
            timeline.hops += _sink_hops(settings, runtime, event)
    return timeline


def _hop(kind: str, msg: Message, detail: str, after: str) -> Hop:
    return Hop(
        kind, msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.timestamp()[1], detail, after
    )


def _header(msg: Message, name: str) -> str:
    return h.pick(msg.headers(), frozenset({name})).get(name, "")


def _records(settings: Settings, topic: str, partition: int, keep: Any, start: int = 0) -> Iterator[Message]:
    """The records of a partition from `start` that `keep` accepts, to the partition's end."""
    with PartitionReader(settings, topic, partition, start) as partition_reader:
        for batch in partition_reader.batches():
            yield from (m for m in batch if keep(m))


def _result(settings: Settings, topic: str, partitions: Any, key: bytes) -> Message | None:
    for partition in partitions:
        found = next(_records(settings, topic, partition, lambda m: m.key() == key), None)
        if found is not None:
            return found
    return None


def _view_topics(settings: Settings, runtime: Any) -> list[str]:
    """The topics of every version of the context's views that exist on the cluster."""
    consumer = reader(settings)
    try:
        existing = set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()
    out = []
    for view in runtime.context.views:
        first = runtime.topics.view_version(view.name, 1)
        replays = [t for t in existing if t.startswith(f"{first}.v") and t[len(first) + 2 :].isdigit()]
        out += sorted(t for t in existing if t == first) + sorted(replays)
    return out


def _document(
    settings: Settings, codec: Any, topic: str, aggregate_id: str, version: int, since_ms: int
) -> Hop | None:
    """The first record of a view topic, from `since_ms` on, whose document folded `aggregate_id`
    up to `version` (a tombstone cannot say: it is not counted)."""

    def folded(msg: Message) -> bool:
        if msg.value() is None:
            return False
        try:
            document = codec.decode(msg.value(), keep_personal=False).message
            return bool(document.versions.get(aggregate_id, 0) >= version)
        except Exception:  # a record of another shape: not this document
            return False

    msg = _first_since(settings, topic, since_ms, folded)
    if msg is None:
        return None
    document = codec.decode(msg.value(), keep_personal=False).message
    return _hop("document", msg, f"{document.entity_type} {document.entity_id!r}", after="event")


def _first_since(settings: Settings, topic: str, since_ms: int, keep: Any) -> Message | None:
    """The first record `keep` accepts among those written to any partition of `topic` from
    `since_ms` on (found through the broker's time index)."""
    consumer = reader(settings, eof=True)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return None
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in sorted(metadata.partitions)], timeout=10
        )
    finally:
        consumer.close()
    for tp in starts:
        if tp.offset >= 0:  # -1: nothing written since
            found = next(_records(settings, topic, tp.partition, keep, tp.offset), None)
            if found is not None:
                return found
    return None


def _sink_hops(settings: Settings, runtime: Any, event: Message) -> list[Hop]:
    """The event's row on the events sink topic (the sink deriver's), and in PostgreSQL's EventStore
    (when the database answers; a row carries no time it was written, so it is not timed)."""
    event_id = _header(event, h.EVENT_ID)
    if not event_id:
        return []
    key = event_id.encode()
    found = _first_since(settings, runtime.topics.events_sink, event.timestamp()[1], lambda m: m.key() == key)
    if found is None:
        return []
    hops = [_hop("sink record", found, f"EventStore row {event_id}", after="event")]
    try:
        with psycopg.connect(settings.pg_dsn, connect_timeout=3) as conn:
            query = sql.SQL("SELECT 1 FROM {}.EventStore WHERE EventID = %s").format(
                sql.Identifier(settings.sink_schema)
            )
            present = conn.execute(query, (event_id,)).fetchone() is not None
    except psycopg.Error as exc:
        why = "not reachable" if isinstance(exc, psycopg.OperationalError) else "not looked up"
        hops.append(Hop("sink row", "PostgreSQL", -1, -1, None, f"{why}: {str(exc).splitlines()[0]}"))
        return hops
    table = f"{settings.sink_schema}.EventStore"
    hops.append(Hop("sink row", table, -1, -1, None, "present" if present else "not there (yet)"))
    return hops


def show(timeline: Timeline, console: Console) -> None:
    """Print a timeline as a table."""
    title = f"command {timeline.command_id}" + (
        f"  correlation {timeline.correlation_id}" if timeline.correlation_id else ""
    )
    table = Table(title=title, title_justify="left")
    for column in ("hop", "where", "what", "at +ms", "took ms"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    for hop in timeline.hops:
        since, took = timeline.since_command_ms(hop), timeline.took_ms(hop)
        where = f"{hop.topic}[{hop.partition}]@{hop.offset}" if hop.partition >= 0 else hop.topic
        table.add_row(
            hop.kind, where, hop.detail,
            "-" if since is None else str(since), "-" if took is None else str(took),
        )  # fmt: skip
    console.print(table)


@click.command()
@click.argument("context")
@click.argument("command_id")
@click.option("--id", "aggregate_id", default=None, help="The aggregate id: read only its partition.")
@click.option(
    "--url",
    "urls",
    multiple=True,
    help="A worker's base URL: show its real-time frames of the events and documents (repeatable).",
)
@click.option("--token", default=None, help="Bearer token for --url (default: STREAMS_AUTH_TOKEN).")
def trace_command(
    context: str, command_id: str, aggregate_id: str | None, urls: tuple[str, ...], token: str | None
) -> None:
    """One command's timeline: command -> result -> events -> view documents -> sink rows ->
    real-time frames (with --url), with the time each hop took."""
    from streams.cli.trace_frames import frame_hops  # it builds this module's hops
    from streams.kafka.runtime import ContextRuntime

    identifier("command_id", command_id)
    settings = Settings()
    runtime = ContextRuntime.connect(settings, context_named(context))
    timeline = trace(settings, runtime, command_id, aggregate_id)
    if not timeline.hops:
        raise click.ClickException(f"no result for command {command_id} in {runtime.topics.results}")
    for url in urls:
        timeline.hops += frame_hops(timeline, context, url, settings.auth_token if token is None else token)
    show(timeline, Console())
