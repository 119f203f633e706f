"""Re-keying a context's events by a view's document id, for views not keyed by aggregate id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from streams import metrics
from streams.config import Settings
from streams.core.views import View
from streams.kafka.runtime import ContextRuntime
from streams.read.stage import Batch, HaltProjection, Stage, failure_reason
from streams.wire.codec import RegistryUnavailable
from streams.wire.dlq import ErrorPolicy, dead_letter, source_of
from streams.wire.topics import partition_for

KEY_PREFIX = b"k:"


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
        if key != previous:
            batch.put(partition, map_key, None if key is None else key.encode())
        if key is None:
            return  # by the view's own rule, this aggregate has no document (yet)
        encoded = key.encode()
        headers = [(k, v or b"") for k, v in (msg.headers() or [])]
        size = batch.fits(encoded, msg.value(), headers)
        if size:
            detail = f"re-keyed, the event would take {size} bytes (the topic's limit: {batch.limit})"
            self.reject(msg, batch, "output_too_large", detail)
            return
        _, ts = msg.timestamp()
        target = partition_for(encoded, self.partitions)
        batch.produce(self.output, target, encoded, msg.value(), headers, ts, sources=(msg,))

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
