"""Sending commands and waiting for their results (confluent-kafka, the codec's Avro bytes)."""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from confluent_kafka import OFFSET_END, KafkaError, TopicPartition

from streams.config import Settings
from streams.core.commands import CommandResult
from streams.core.decider import BoundedContext
from streams.kafka import clients
from streams.kafka.clients import take, watermarks
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.wire import headers as h
from streams.wire.identifiers import check_identifier
from streams.wire.schemas import to_record

EXIT_FLUSH_S = 10.0


def flush_at_exit(owner: object, producer: Any) -> None:
    """Flush `producer` before it is destroyed with `owner` (garbage or interpreter exit), so a
    client that is never closed still delivers what it produced instead of librdkafka dropping
    it with `Producer terminating with N messages … still in queue`."""
    weakref.finalize(owner, producer.flush, EXIT_FLUSH_S)


class ResultWaiter:
    """Follows `<ctx>.command-results` from its current end and resolves per-command futures.

    Start it before sending, so that no result can be missed between the send and the first read.
    """

    def __init__(self, settings: Settings, runtime: ContextRuntime) -> None:
        self._codec = runtime.codec
        self._consumer = clients.reader(settings)
        topic = runtime.topics.results
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"{topic}: {metadata.error}")
        assignment = []
        for partition in metadata.partitions:
            _, high = watermarks(self._consumer, TopicPartition(topic, partition))
            assignment.append(TopicPartition(topic, partition, high if high >= 0 else OFFSET_END))
        self._consumer.assign(assignment)
        self._pending: dict[str, list[Future[CommandResult]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-waiter", daemon=True)
        self._thread.start()

    def expect(self, command_id: str) -> Future[CommandResult]:
        """A future that resolves with the result of `command_id`."""
        future: Future[CommandResult] = Future()
        with self._lock:
            self._pending.setdefault(command_id, []).append(future)
        return future

    def forget(self, command_id: str, future: Future[CommandResult] | None = None) -> None:
        """Stop waiting for a command (after a timeout): for `future` only, or for every waiter."""
        with self._lock:
            waiting = self._pending.get(command_id, [])
            kept = [f for f in waiting if future is not None and f is not future]
            if kept:
                self._pending[command_id] = kept
            else:
                self._pending.pop(command_id, None)
        if future is not None:
            future.cancel()

    @property
    def pending(self) -> int:
        """Commands waited for."""
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in clients.records(take(self._consumer, 500, 0.2), "result waiter"):
                key = (msg.key() or b"").decode()
                with self._lock:
                    futures = self._pending.pop(key, [])
                if futures:
                    result = self._codec.decode(msg.value()).message
                    for future in futures:
                        if not future.done():
                            future.set_result(result)

    def close(self) -> None:
        """Stop following the topic."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


class CommandClient:
    """Produces commands to `<ctx>.commands` (key = aggregate id) and optionally waits."""

    def __init__(
        self,
        settings: Settings,
        context: str | BoundedContext[Any],
        *,
        wait: bool = True,
        runtime: ContextRuntime | None = None,
    ) -> None:
        """`runtime`: the context's runtime when the caller has one already (a worker's: no second
        codec and schema catalog); otherwise the client connects its own."""
        if isinstance(context, str):
            from streams.contexts.registry import get_context  # a name: the installed contexts

            context = get_context(context)
        self.settings = settings
        self.runtime = runtime or ContextRuntime.connect(settings, context, retry_for_s=30)
        self.runtime.ensure_topics(settings)
        self._producer = clients.producer(settings)
        flush_at_exit(self, self._producer)
        self._waiter = ResultWaiter(settings, self.runtime) if wait else None

    def send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        correlation_id: str = "",
        actor: str = "",
    ) -> tuple[str, Future[CommandResult] | None]:
        """Produce a command; returns its id and, when waiting is on, its result future.

        ValueError (`InvalidIdentifier`, `FieldTooLong`) for what the worker would dead-letter."""
        check_identifier("aggregate_id", aggregate_id)
        for name, value in (
            ("command_id", command_id or ""),
            ("correlation_id", correlation_id),
            ("actor", actor),
        ):
            check_identifier(name, value, required=False)
        self.runtime.limits.check(type(command).__name__, to_record(command))
        command_id = command_id or str(uuid.uuid4())
        headers: list[tuple[str, str | bytes | None]] = [(h.COMMAND_ID, command_id.encode())]
        if correlation_id:
            headers.append((h.CORRELATION_ID, correlation_id.encode()))
        if actor:
            headers.append((h.ACTOR, actor.encode()))
        if expected_version is not None:
            headers.append((h.EXPECTED_VERSION, str(expected_version).encode()))
        future = self._waiter.expect(command_id) if self._waiter else None
        try:
            self._producer.produce(
                self.runtime.topics.commands,
                key=aggregate_id.encode(),
                value=self.runtime.codec.encode(command),
                headers=headers,
            )
        except BaseException:
            self.forget(command_id, future)
            raise
        self._producer.poll(0)
        return command_id, future

    def forget(self, command_id: str, future: Future[CommandResult] | None) -> None:
        """Stop waiting for a command's result (the caller gave up: a timeout)."""
        if self._waiter is not None and future is not None:
            self._waiter.forget(command_id, future)

    @property
    def pending(self) -> int:
        """Commands whose results this client still waits for."""
        return self._waiter.pending if self._waiter is not None else 0

    def execute(self, aggregate_id: str, command: Any, *, timeout: float = 30.0, **kw: Any) -> CommandResult:
        """Send a command and block until its result arrives (TimeoutError otherwise)."""
        command_id, future = self.send(aggregate_id, command, **kw)
        self.flush()
        assert future is not None, "execute() needs a client created with wait=True"
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            self.forget(command_id, future)
            raise TimeoutError(f"no result for command {command_id} within {timeout}s") from None

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every produced command is acknowledged by the broker."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} commands not acknowledged within {timeout}s")

    def close(self) -> None:
        """Flush and release the producer and the result follower (the follower even when the
        flush times out)."""
        try:
            self.flush()
        finally:
            if self._waiter:
                self._waiter.close()

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordSender:
    """Produces raw records of a context's windowed aggregation to `<ctx>.<name>` (key = the
    aggregate id, e.g. a device's telemetry readings), as Confluent Avro of the record type."""

    def __init__(
        self, settings: Settings, context: str | BoundedContext[Any], aggregation: str | None = None
    ) -> None:
        if isinstance(context, str):
            from streams.contexts.registry import get_context  # a name: the installed contexts

            context = get_context(context)
        names = [w.name for w in context.windows]
        if not names or (aggregation is not None and aggregation not in names):
            raise ValueError(f"{context.name} has no windowed aggregation {aggregation or ''} (has {names})")
        self.name = aggregation or names[0]
        self.settings = settings
        self.runtime = ContextRuntime.connect(settings, context, retry_for_s=30)
        topics = self.runtime.topics
        ensure_topics(
            settings,
            [*topics.specs(settings.partitions), *topics.window_specs(self.name, settings.partitions)],
        )
        self.topic = topics.window_input(self.name)
        self._producer = clients.producer(settings)
        flush_at_exit(self, self._producer)

    def send(self, key: str, record: Any, *, timestamp_ms: int | None = None) -> None:
        """Produce one record (its Kafka timestamp: `timestamp_ms`, default now)."""
        self.send_raw(key.encode(), self.runtime.codec.encode(record), timestamp_ms=timestamp_ms)

    def send_raw(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        timestamp_ms: int | None = None,
        partition: int | None = None,
    ) -> None:
        """Produce bytes as they are (JSON readings, bad input in tests)."""
        kwargs: dict[str, Any] = {}
        if timestamp_ms:
            kwargs["timestamp"] = timestamp_ms
        if partition is not None:
            kwargs["partition"] = partition
        clients.produce(self._producer, self.topic, value, key, **kwargs)
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record is acknowledged."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} records not acknowledged within {timeout}s")

    def close(self) -> None:
        """Flush."""
        self.flush()

    def __enter__(self) -> RecordSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_topic(
    settings: Settings,
    topic: str,
    *,
    idle_timeout: float = 2.0,
    from_beginning: bool = True,
    reach_timeout: float = 60.0,
) -> Iterator[Any]:
    """Committed records of a topic, from the start, until every assigned partition reached its
    end and then none arrives for `idle_timeout`.

    The idle clock starts at the end of the partitions, not at the subscription: joining the
    reader's group and reaching the leaders takes longer on some clusters (TLS and SASL handshakes)
    than any fixed idle time. A topic whose ends are not reached within `reach_timeout` (it does
    not exist) counts as idle from then on."""
    consumer = clients.reader(
        settings, eof=True, overrides={"auto.offset.reset": "earliest" if from_beginning else "latest"}
    )
    consumer.subscribe([topic])
    ended: set[tuple[str, int]] = set()
    give_up = time.monotonic() + reach_timeout
    try:
        idle = 0.0
        while idle < idle_timeout:
            batch = take(consumer, 1000, 0.25)
            for msg in batch:  # in order: a record after a partition's end moves it away again
                err = msg.error()
                if err is None:
                    ended.discard((msg.topic(), msg.partition()))
                elif err.code() == KafkaError._PARTITION_EOF:
                    ended.add((msg.topic(), msg.partition()))
            found = clients.records(batch, f"reading {topic}")
            if found:
                idle = 0.0
                yield from found
                continue
            assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            if (assigned and assigned <= ended) or time.monotonic() > give_up:
                idle += 0.25
    finally:
        consumer.close()
