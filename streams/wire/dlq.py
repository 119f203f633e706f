"""The one dead-letter format, and the policy for records a stage cannot handle.

A dead-lettered record keeps its key, its value bytes and its headers unchanged, plus three
headers saying why and where it came from (and any a stage adds, e.g. `view_version`). Every
stage builds its DLQ records here, so a DLQ consumer reads one format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from streams.wire import headers as h

MAX_DETAIL_BYTES = 4000
"""A reason's human-readable detail is cut to this many bytes (it can quote a whole record)."""


class ErrorPolicy(StrEnum):
    """What a stage does with a record it cannot handle (like Kafka Streams' exception handlers)."""

    DLQ = "dlq"
    """Dead-letter it with the reason and go on with the next record."""
    HALT = "halt"
    """Stop the stage at that record, with the reason as its error."""

    @classmethod
    def parse(cls, text: str) -> ErrorPolicy:
        """The policy named `text` (ValueError naming the choices otherwise)."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown error policy {text!r}; one of {', '.join(cls)}") from None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record on its way to a DLQ topic."""

    key: bytes | None
    value: bytes | None
    headers: h.Headers
    reason: str


def source_of(topic: str, partition: int, offset: int) -> str:
    """Where a record came from, as the `dlq_source` header writes it."""
    return f"{topic}/{partition}/{offset}"


def dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, str | bytes | None]] | None,
    reason: str,
    detail: str,
    source: str,
    **extra: str,
) -> DeadLetter:
    """The DLQ record of an original record: its bytes and headers, plus `dlq_reason`,
    `dlq_detail` (cut to MAX_DETAIL_BYTES), `dlq_source` and any `extra` headers."""
    out: h.Headers = [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in headers or ()]
    out += [
        (h.DLQ_REASON, reason.encode()),
        (h.DLQ_DETAIL, detail.encode()[:MAX_DETAIL_BYTES]),
        (h.DLQ_SOURCE, source.encode()),
    ]
    out += [(name, value.encode()) for name, value in extra.items()]
    return DeadLetter(key, value, out, reason)
