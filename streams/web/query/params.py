"""Query parameters of the read API, parsed from any mapping (a request's `query`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.core.clock import iso_to_ms
from streams.core.views import Document

MAX_TIMEOUT_S = 60.0


class BadParameter(Exception):
    """A malformed query parameter; the message names it."""


def int_param(
    query: Mapping[str, str], name: str, default: int | None, low: int = 0, high: int | None = None
) -> Any:
    """An integer query parameter within bounds, or BadParameter naming it."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise BadParameter(f"{name} must be between {low} and {high if high is not None else 'inf'}")
    return value


def timeout_param(query: Mapping[str, str]) -> float:
    """`timeout` in seconds (default 5, at most 60)."""
    raw = query.get("timeout", "5")
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(f"timeout must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= MAX_TIMEOUT_S:
        raise BadParameter(f"timeout must be between 0 and {MAX_TIMEOUT_S}")
    return value


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
