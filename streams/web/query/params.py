"""Query parameters of the read API, parsed from any mapping (a request's `query`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streams.core.clock import iso_to_ms
from streams.core.views import Document

MAX_TIMEOUT_S = 60.0


class BadParameter(Exception):
    """A malformed query parameter; the message names it, `field` is its name."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field or message.split(" ", 1)[0].rstrip(":")


def flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no."""
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadParameter(f"{name} must be true or false, got {raw!r}", name)


def seconds(query: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds between 0 and MAX_TIMEOUT_S."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a number of seconds, got {raw!r}", name) from None
    if not 0 <= value <= MAX_TIMEOUT_S:  # also refuses nan and inf
        raise BadParameter(f"{name} must be between 0 and {MAX_TIMEOUT_S}", name)
    return value


_INTEGER = re.compile(r"-?[0-9]{1,19}")
LONG_MAX = 2**63 - 1
"""Versions and offsets are Avro/Kafka longs."""


def int_param(
    query: Mapping[str, str], name: str, default: int | None, low: int = 0, high: int = LONG_MAX
) -> Any:
    """An integer query parameter within bounds, or BadParameter naming it."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise BadParameter(f"{name} must be an integer, got {raw!r}", name)
    value = int(raw)
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}", name)
    return value


def timeout_param(query: Mapping[str, str]) -> float:
    """`timeout` in seconds (default 5, at most 60)."""
    return seconds(query, "timeout", 5.0)


def timestamp_param(query: Mapping[str, str], name: str) -> int | None:
    """An ISO-8601 timestamp with a zone (or epoch milliseconds) as epoch milliseconds."""
    raw = query.get(name)
    if raw is None:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        return iso_to_ms(raw)
    except ValueError:
        raise BadParameter(
            f"{name} must be an ISO-8601 timestamp with a time zone (e.g. ...Z) or epoch milliseconds, "
            f"got {raw!r}"
        ) from None


def document_json(view: str, doc: Document) -> dict[str, Any]:
    """A document as the API returns it."""
    return {
        "entity_id": doc.entity_id,
        "view": view,
        "state": doc.state,
        "last_event_version": doc.last_event_version,
        "last_updated": doc.last_updated,
    }
