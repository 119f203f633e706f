"""The window stage's dead letters, in the one DLQ format (`streams.wire.dlq`): a refused or late
raw record, kept whole; a window `close` failed on, or whose state outgrew the changelog, kept
as JSON. Every one is marked `dlq_stage: windows` and `window: <aggregation>`."""

from __future__ import annotations

import orjson
from confluent_kafka import Message

from streams.core.windows import ClosedWindow
from streams.wire.dlq import DeadLetter, dead_letter, source_of

MAX_KEPT_BYTES = 4 * 1024 * 1024
"""A window's state larger than this is not copied into its dead letter (the DLQ takes 8 MiB)."""


def refused(window: str, msg: Message, reason: str, detail: str, **extra: str) -> DeadLetter:
    """A raw record the aggregation refused (or received late), with its key, bytes and headers."""
    return dead_letter(
        key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
        source=source_of(msg.topic(), msg.partition(), msg.offset()), dlq_stage="windows", window=window,
        **extra,
    )  # fmt: skip


def close_failed(
    window: str, partition: int, closed: ClosedWindow, raw_key: bytes, exc: Exception
) -> DeadLetter:
    """A window whose `close` raised (`close_failed`): its key, group, bounds and accumulator as JSON."""
    value = orjson.dumps(
        {"key": closed.key, "group": closed.group, "start": closed.start, "end": closed.end,
         "accumulator": closed.accumulator}
    )  # fmt: skip
    return dead_letter(
        key=raw_key, value=value, headers=None, reason="close_failed", detail=f"{type(exc).__name__}: {exc}",
        source=f"window/{partition}/{closed.group}/{closed.start}", dlq_stage="windows", window=window,
    )  # fmt: skip


def too_large(
    window: str, partition: int, raw_key: bytes, group: bytes, end: int, encoded: bytes, limit: int
) -> DeadLetter:
    """A window whose state would pass the changelog's record limit (`window_too_large`)."""
    detail = f"the window ending at {end} ({group.decode()}) holds {len(encoded)} bytes (limit {limit})"
    return dead_letter(
        key=raw_key, value=encoded if len(encoded) <= MAX_KEPT_BYTES else None, headers=None,
        reason="window_too_large", detail=detail, source=f"window/{partition}/{group.decode()}/{end}",
        dlq_stage="windows", window=window,
    )  # fmt: skip
