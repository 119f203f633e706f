"""Re-keying a context's events by a view's document id, for views not keyed by aggregate id.

The repartitioner remembers each aggregate's current document key (`k:<aggregate id>`). When a
view's key moves (a view keyed by status), it first sends the old key a *retraction*: a record
without a value, with the event's headers and `view_retract`, which the projector folds with
`apply_retraction`; then the event goes to the new key. Every key change is also written to the
compacted `<ctx>.<view>.vN-keys` topic on the input's partition, and each batch writes there the
input position it reached (key `\x00position`), so a new owner of a partition restores its keys
from that topic instead of re-reading the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from streams import metrics
from streams.config import Settings
from streams.core.views import View
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.restore import last_position, latest_values
from streams.read.stage import Batch, HaltProjection, Restored, Stage, failure_reason
from streams.wire import headers as h
from streams.wire.codec import RegistryUnavailable
from streams.wire.dlq import ErrorPolicy, dead_letter, source_of
from streams.wire.topics import partition_for

KEY_PREFIX = b"k:"
POSITION_KEY = b"\x00position"
"""The key of a partition's position record on the keys topic (no aggregate id holds a NUL)."""
RETRACTED = (h.RETRACT, b"1")


class Repartitioner(Stage):
    """Re-keys a context's events by a view's document id (sticky per aggregate)."""

    label = "repartition"

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, view: View, version: int, **kw: Any
    ) -> None:
        super().__init__(settings, runtime, **kw)
        assert view.key_by is not None
        self.key_by: Callable[[Any, str | None], str | None] = view.key_by
        self.view = view
        self.output = runtime.topics.repartition(view.name, version)
        self.keys = runtime.topics.repartition_keys(view.name, version)
        self.dlq = runtime.topics.view_dlq(view.name)
        self.partitions = settings.partitions
        self.policy = ErrorPolicy.parse(settings.view_errors)
        self._labels = (runtime.context.name, view.name, str(version))

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        map_key = KEY_PREFIX + (msg.key() or b"")
        raw = batch.get(partition, map_key)
        previous = None if raw is None else raw.decode()
        try:
            event = self.runtime.codec.decode(msg.value()).message
            key = self.key_by(event, previous)
        except RegistryUnavailable:
            raise  # not the event's fault: the session restarts with back-off and reads it again
        except Exception as exc:  # the view's key_by failed: same rule as a failing handler
            reason, source = failure_reason(exc), source_of(msg.topic(), partition, msg.offset())
            if self.policy is ErrorPolicy.HALT:
                raise HaltProjection(
                    f"{self.runtime.context.name}.{self.view.name} v{self._labels[2]} repartition: "
                    f"{source}: {reason}: {exc}"
                ) from exc
            letter = dead_letter(
                key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=str(exc),
                source=source, view_version=self._labels[2],
            )  # fmt: skip
            batch.dead_letter(self.dlq, letter)
            metrics.VIEW_DLQ.labels(*self._labels, reason).inc()
            return
        headers = [(k, v or b"") for k, v in (msg.headers() or [])]
        _, ts = msg.timestamp()
        if key != previous:
            batch.put(partition, map_key, None if key is None else key.encode())
            batch.produce(self.keys, partition, msg.key() or b"", None if key is None else key.encode())
            if previous is not None and not self.view.keep_on_move:  # it leaves its old document
                old = previous.encode()
                target = partition_for(old, self.partitions)
                batch.produce(self.output, target, old, None, [*headers, RETRACTED], ts, sources=(msg,))
        if key is None:
            return  # by the view's own rule, this aggregate has no document (now)
        encoded = key.encode()
        size = batch.fits(encoded, msg.value(), headers)
        if size:
            detail = f"re-keyed, the event would take {size} bytes (the topic's limit: {batch.limit})"
            self.reject(msg, batch, "output_too_large", detail)
            return
        target = partition_for(encoded, self.partitions)
        batch.produce(self.output, target, encoded, msg.value(), headers, ts, sources=(msg,))

    def complete(self, batch: Batch) -> None:
        """Record on the keys topic how far each partition's input is folded."""
        for partition, positions in batch.positions.items():
            position = positions.get(self.inputs[0])
            if position is not None:
                header = [(h.VIEW_POSITION, str(position).encode())]
                batch.produce(self.keys, partition, POSITION_KEY, b"", header)

    def restore(self, partition: int, store: PartitionStore) -> Restored | None:
        """Fill an empty store from the keys topic: each aggregate's current key, and the input
        position of the partition's last batch."""
        position = last_position(self.settings, self.keys, partition)
        if position is None:
            return None
        keys = records = 0
        for chunk in latest_values(self.settings, self.keys, partition):
            chunk.values.pop(POSITION_KEY, None)
            records += chunk.records
            store.write({KEY_PREFIX + aggregate: value for aggregate, value in chunk.values.items()}, {})
            keys += len(chunk.values)
        store.write({}, {self.inputs[0]: position})
        return Restored(self.output, keys, records, position)

    def reject(self, msg: Message, batch: Batch, reason: str, detail: str) -> None:
        """The view's DLQ, or a halt (`STREAMS_VIEW_ERRORS=halt`)."""
        source = source_of(msg.topic(), msg.partition(), msg.offset())
        if self.policy is ErrorPolicy.HALT:
            raise HaltProjection(
                f"{self.runtime.context.name}.{self.view.name} v{self._labels[2]} repartition: "
                f"{source}: {reason}: {detail}"
            )
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=source, view_version=self._labels[2],
        )  # fmt: skip
        batch.dead_letter(self.dlq, letter)
        metrics.VIEW_DLQ.labels(*self._labels, reason).inc()
